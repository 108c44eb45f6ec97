package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"credvault/internal/cli"
)

// TestCLIKeyOptionsAndMembersByEmail: `keys create` takes every key option
// of the API (format, agent, mode, environment label, tags, expires-at,
// and the member by email); `users get|update|delete`, `keys list --user`
// and `credentials share --member` take a member's email or id and show
// emails; a reference to nobody exits 5 and writes nothing; every command
// answers --output json with JSON, and refuses another --output with 2.
func TestCLIKeyOptionsAndMembersByEmail(t *testing.T) {
	t.Parallel() // waits on processes and a browser more than the CPU: overlaps with the other slow ones
	cl := newCluster(t, privateEgress())
	inst := cl.start()
	_, owner := cl.bootstrap(inst, "clip")
	home := t.TempDir()
	env := map[string]string{"HOME": home, "XDG_CONFIG_HOME": filepath.Join(home, "cfg")}
	secrets := []string{owner}
	jsonOf := func(args []string, out string) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("%v: not JSON: %v\n%s", args, err, out)
		}
		return m
	}
	mustRun := func(in string, args ...string) string {
		t.Helper()
		out, errOut, code := cliRun(t, env, in, secrets, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out
	}
	who := jsonOf(nil, mustRun(owner+"\n", "login", "--url", inst.url, "--output", "json"))
	if who["org_id"] == nil || who["key_id"] == nil {
		t.Fatalf("login --output json: %v", who)
	}
	mia := jsonOf(nil, mustRun("", "users", "create", "--email", "mia@clip.test", "--name", "Mia", "-o", "json"))
	miaID := mia["id"].(string)

	// Members by email, in any case; an unknown email exits 5.
	if out := mustRun("", "users", "get", "MIA@clip.test"); !strings.Contains(out, miaID) || !strings.Contains(out, "mia@clip.test") {
		t.Errorf("users get by email:\n%s", out)
	}
	if out := mustRun("", "users", "update", "mia@clip.test", "--role", "admin"); !strings.Contains(out, "admin") {
		t.Errorf("users update by email:\n%s", out)
	}
	for _, args := range [][]string{{"users", "get", "ghost@clip.test"}, {"users", "delete", "ghost@clip.test"},
		{"keys", "create", "--name", "k", "--scope", "keys:read", "--user", "ghost@clip.test"}} {
		if _, errOut, code := cliRun(t, env, "", secrets, args...); code != cli.ExitNotFound || !strings.Contains(errOut, "no member ghost@clip.test") {
			t.Errorf("%v: exit %d %q, want %d", args, code, errOut, cli.ExitNotFound)
		}
	}
	if _, _, code := cliRun(t, env, "", secrets, "users", "get", "mia"); code != cli.ExitUsage {
		t.Errorf("users get mia (neither email nor id): exit %d", code)
	}

	// Every key option.
	args := []string{"keys", "create", "--name", "support", "--scope", "keys:read", "--format", "jwt", "--agent", "support-bot",
		"--mode", "test", "--environment", "staging", "--tag", "team=billing", "--tag", "tier=gold", "--expires-at", "2030-01-31T00:00:00Z",
		"--user", "mia@clip.test", "--output", "json"}
	k := jsonOf(args, mustRun("", args...))
	secrets = append(secrets, k["key"].(string))
	tags, _ := k["tags"].(map[string]any)
	for field, want := range map[string]any{"format": "jwt", "agent": "support-bot", "mode": "test", "environment": "staging", "user_id": miaID} {
		if k[field] != want {
			t.Errorf("keys create: %s = %v, want %v", field, k[field], want)
		}
	}
	if tags["team"] != "billing" || tags["tier"] != "gold" || !strings.HasPrefix(k["expires_at"].(string), "2030-01-31T00:00:00") {
		t.Errorf("keys create: tags %v expires_at %v", tags, k["expires_at"])
	}
	if r := cl.as(k["key"].(string), "GET", inst.url+"/v1/whoami", nil); r.status != 200 {
		t.Errorf("the JWT key does not work: %d", r.status)
	}
	out := mustRun("", "keys", "list", "--environment", "staging", "--user", "mia@clip.test")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.Contains(lines[0], "OWNER") || !strings.Contains(lines[1], "mia@clip.test") {
		t.Errorf("keys list --environment staging --user mia@…:\n%s", out)
	}
	// Refused options write nothing.
	before := len(cl.as(owner, "GET", inst.url+"/v1/api-keys?status=all", nil).json(t)["data"].([]any))
	for _, c := range []struct {
		extra []string
		code  int
	}{
		{[]string{"--tag", "team"}, cli.ExitUsage}, {[]string{"--expires-at", "2030-01-31"}, cli.ExitUsage},
		{[]string{"--format", "xml"}, cli.ExitInvalid}, {[]string{"--mode", "prod"}, cli.ExitInvalid},
		{[]string{"--environment", "Staging EU"}, cli.ExitInvalid}, {[]string{"--agent", "bot"}, cli.ExitInvalid},
	} {
		a := append([]string{"keys", "create", "--name", "bad", "--scope", "keys:read"}, c.extra...)
		if _, errOut, code := cliRun(t, env, "", secrets, a...); code != c.code {
			t.Errorf("%v: exit %d %q, want %d", c.extra, code, errOut, c.code)
		}
	}
	if after := len(cl.as(owner, "GET", inst.url+"/v1/api-keys?status=all", nil).json(t)["data"].([]any)); after != before {
		t.Errorf("refused key options stored %d keys", after-before)
	}

	// Sharing by email, shown by email.
	cred := jsonOf(nil, mustRun("local-value-0001\n", "credentials", "create", "--name", "crm", "--placement", "bearer",
		"--base-url", "https://api.example.com", "--allowed-host", "api.example.com", "-o", "json"))
	credID := cred["id"].(string)
	out = mustRun("", "credentials", "share", credID, "--mode", "members", "--member", "mia@clip.test:manage")
	if !strings.Contains(out, "Shared with: mia@clip.test (manage)") {
		t.Errorf("share --member email:\n%s", out)
	}
	sh := cl.as(owner, "GET", inst.url+"/v1/credentials/"+credID, nil).json(t)["sharing"].(map[string]any)
	if m := sh["members"].([]any); len(m) != 1 || m[0].(map[string]any)["user_id"] != miaID {
		t.Errorf("sharing after share --member mia@…: %v", sh)
	}
	if _, _, code := cliRun(t, env, "", secrets, "credentials", "share", credID, "--mode", "team", "--member", "ghost@clip.test"); code != cli.ExitNotFound {
		t.Errorf("share with an unknown email: exit %d", code)
	}
	if m := cl.as(owner, "GET", inst.url+"/v1/credentials/"+credID, nil).json(t)["sharing"].(map[string]any); m["mode"] != "members" {
		t.Errorf("a refused share changed the sharing: %v", m)
	}

	// credentials list narrows by service, as the API does.
	if out := mustRun("", "credentials", "list", "--service", "stripe"); strings.Contains(out, "crm") {
		t.Errorf("credentials list --service stripe lists crm:\n%s", out)
	}
	if out := mustRun("", "credentials", "list", "--scope", "mine"); !strings.Contains(out, "crm") {
		t.Errorf("credentials list --scope mine:\n%s", out)
	}

	// --output json on every command; any other value exits 2.
	for _, args := range [][]string{
		{"keys", "list"}, {"keys", "get", k["id"].(string)}, {"keys", "roll", k["id"].(string)}, {"keys", "revoke", k["id"].(string)},
		{"credentials", "list"}, {"users", "list"}, {"users", "get", "mia@clip.test"}, {"completion", "bash"},
		{"credentials", "delete", credID, "--force"}, {"users", "delete", "mia@clip.test"}, {"logout"},
	} {
		if _, errOut, code := cliRun(t, env, "", secrets, append(args, "--output", "yaml")...); code != cli.ExitUsage {
			t.Errorf("%v --output yaml: exit %d %q", args, code, errOut)
		}
		out, errOut, code := cliRun(t, env, "", secrets, append(args, "--output", "json")...)
		if code != 0 || !json.Valid([]byte(out)) || strings.TrimSpace(out) == "" {
			t.Errorf("%v --output json: exit %d, not JSON: %q %q", args, code, out, errOut)
		}
		if strings.HasPrefix(strings.Join(args, " "), "keys roll") {
			secrets = append(secrets, jsonOf(args, out)["key"].(string))
		}
	}
}
