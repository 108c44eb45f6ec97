package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"credvault/internal/cli"
)

// TestCLIIntegrations: `credvault integrations create|list|get|disable|
// enable|usage|delete`, `keys create --integration`, `keys list
// --integration` and `keys disable|enable`, with their exit codes, and no
// key in any output but its creation.
func TestCLIIntegrations(t *testing.T) {
	t.Parallel() // with the other integration tests, after the package's serial ones: their waits overlap
	cl := newCluster(t, nil)
	inst := cl.start()
	_, owner := cl.bootstrap(inst, "cli")
	home := t.TempDir()
	env := map[string]string{"HOME": home, "XDG_CONFIG_HOME": filepath.Join(home, "cfg")}
	secrets := []string{owner}
	if _, errOut, code := cliRun(t, env, owner+"\n", secrets, "login", "--url", inst.url); code != 0 {
		t.Fatalf("login: %d %s", code, errOut)
	}
	out, errOut, code := cliRun(t, env, "", secrets, "integrations", "create", "--name", "support bot", "--agent", "claude",
		"--environment", "production", "--tag", "team=cx", "--output", "json")
	var integ map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &integ) != nil || integ["enabled"] != true {
		t.Fatalf("integrations create: %d %s %s", code, out, errOut)
	}
	iid := integ["id"].(string)
	out, errOut, code = cliRun(t, env, "", secrets, "keys", "create", "--name", "bot", "--scope", "keys:read", "--integration", iid)
	key := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(key, "cv_") {
		t.Fatalf("keys create --integration: %d %q %s", code, out, errOut)
	}
	secrets = append(secrets, key)
	out, _, code = cliRun(t, env, "", secrets, "keys", "list", "--integration", iid)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 2 || !strings.Contains(lines[1], " bot ") || !strings.Contains(lines[1], iid) {
		t.Fatalf("keys list --integration: %d\n%s", code, out)
	}
	out, _, code = cliRun(t, env, "", secrets, "integrations", "list")
	if code != 0 || !strings.Contains(out, "support bot") || !strings.Contains(out, "claude") || !strings.Contains(out, "team=cx") {
		t.Fatalf("integrations list: %d\n%s", code, out)
	}
	if _, errOut, code := cliRun(t, env, "", secrets, "integrations", "disable", iid); code != 0 {
		t.Fatalf("integrations disable: %d %s", code, errOut)
	}
	waitForStatus(t, "disabled", time.Second, 403, "integration_disabled", func() response { return cl.as(key, "GET", inst.url+"/v1/whoami", nil) })
	out, _, code = cliRun(t, env, "", secrets, "integrations", "list", "--enabled", "false")
	if code != 0 || !strings.Contains(out, "support bot") {
		t.Fatalf("integrations list --enabled false: %d\n%s", code, out)
	}
	if _, _, code := cliRun(t, env, "", secrets, "integrations", "enable", iid); code != 0 {
		t.Fatalf("integrations enable: %d", code)
	}
	waitForStatus(t, "enabled", time.Second, 200, "", func() response { return cl.as(key, "GET", inst.url+"/v1/whoami", nil) })
	out, _, code = cliRun(t, env, "", secrets, "integrations", "usage", iid, "--days", "3")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[0], "DAY") {
		t.Fatalf("integrations usage: %d\n%s", code, out)
	}
	// Keys alone.
	keyID := cl.as(owner, "GET", inst.url+"/v1/api-keys?integration_id="+iid, nil).json(t)["data"].([]any)[0].(map[string]any)["id"].(string)
	out, _, code = cliRun(t, env, "", secrets, "keys", "disable", keyID)
	if code != 0 || !strings.Contains(out, "false") {
		t.Fatalf("keys disable: %d\n%s", code, out)
	}
	waitForStatus(t, "key disabled", time.Second, 403, "api_key_disabled", func() response { return cl.as(key, "GET", inst.url+"/v1/whoami", nil) })
	if _, _, code := cliRun(t, env, "", secrets, "keys", "enable", keyID); code != 0 {
		t.Fatalf("keys enable: %d", code)
	}
	// Errors map to exit codes.
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"integrations", "create"}, cli.ExitUsage},
		{[]string{"integrations", "create", "--name", "support bot"}, cli.ExitConflict},
		{[]string{"integrations", "create", "--name", "x", "--environment", "Not Valid"}, cli.ExitInvalid},
		{[]string{"integrations", "list", "--enabled", "maybe"}, cli.ExitUsage},
		{[]string{"integrations", "get", "nope"}, cli.ExitUsage},
		{[]string{"integrations", "get", "00000000-0000-0000-0000-000000000000"}, cli.ExitNotFound},
		{[]string{"integrations", "delete", iid}, cli.ExitConflict},
		{[]string{"integrations", "usage", iid, "--days", "0"}, cli.ExitInvalid},
		{[]string{"keys", "create", "--name", "y", "--scope", "keys:read", "--integration", "nope"}, cli.ExitUsage},
		{[]string{"keys", "create", "--name", "y", "--scope", "keys:read", "--integration", "00000000-0000-0000-0000-000000000000"}, cli.ExitInvalid},
	} {
		if _, errOut, code := cliRun(t, env, "", secrets, tc.args...); code != tc.code {
			t.Errorf("%v: exit %d (%s), want %d", tc.args, code, errOut, tc.code)
		}
	}
	cl.as(owner, "POST", inst.url+"/v1/api-keys/"+keyID+"/revoke", nil)
	// Like every delete, with --output json too (it was exit 2: no such flag).
	out, errOut, code = cliRun(t, env, "", secrets, "integrations", "delete", iid, "--output", "json")
	var deleted map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &deleted) != nil || deleted["id"] != iid || deleted["deleted"] != true {
		t.Fatalf("integrations delete --output json: %d %q %s", code, out, errOut)
	}
	if _, errOut, code := cliRun(t, env, "", secrets, "integrations", "get", iid); code != cli.ExitNotFound {
		t.Fatalf("integrations get after delete: %d %s", code, errOut)
	}
}
