package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"credvault/internal/cli"
)

// cliRun runs `credvault args...` through run with env as the whole
// environment and in as standard input. It fails the test if any argument
// holds one of secrets: secrets never travel in argv.
func cliRun(t *testing.T, env map[string]string, in string, secrets []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	for _, a := range args {
		for _, s := range secrets {
			if s != "" && strings.Contains(a, s) {
				t.Fatalf("test bug: a secret in argv")
			}
		}
	}
	old := stdin
	stdin = strings.NewReader(in)
	defer func() { stdin = old }()
	var out, errb bytes.Buffer
	err := run(context.Background(), append([]string{"credvault"}, args...), envOf(env), &out, &errb)
	var exit cli.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.Code
	default:
		t.Fatalf("credvault %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// TestCLI drives the commands for people against a running credvault with
// a fake environment: login (key from stdin, saved 0600 with nothing but
// the URL and key), a created key printed once to stdout only, listings in
// table and JSON, a credential created and rotated from stdin (the new
// value is what the proxy injects), exit codes by error class, and no
// secret in argv, the config file or error output.
func TestCLI(t *testing.T) {
	cl := newCluster(t, privateEgress())
	inst := cl.start()
	_, owner := cl.bootstrap(inst, "cli")
	home := t.TempDir()
	env := map[string]string{"HOME": home, "XDG_CONFIG_HOME": filepath.Join(home, "cfg")}
	var secrets = []string{owner}

	// Help works before login, on stdout, exit 0.
	for _, args := range [][]string{{"keys", "create", "--help"}, {"credentials", "--help"}, {"login", "-h"}} {
		if out, _, code := cliRun(t, env, "", secrets, args...); code != 0 || !strings.Contains(out, "usage: credvault") {
			t.Errorf("%v: exit %d, %q", args, code, out)
		}
	}
	// Not logged in yet.
	if _, errOut, code := cliRun(t, env, "", secrets, "keys", "list"); code != cli.ExitUnauthorized || !strings.Contains(errOut, "not logged in") {
		t.Fatalf("before login: exit %d, %q", code, errOut)
	}
	// A wrong key does not log in, and is not echoed.
	wrong := owner[:len(owner)-3] + "zzz"
	if wrong == owner { // the key ended in zzz (1 in 62^3)
		wrong = owner[:len(owner)-3] + "yyy"
	}
	if _, errOut, code := cliRun(t, env, wrong+"\n", append(secrets, wrong), "login", "--url", inst.url); code != cli.ExitUnauthorized || strings.Contains(errOut, wrong) {
		t.Fatalf("login with a wrong key: exit %d, %q", code, errOut)
	}
	out, errOut, code := cliRun(t, env, owner+"\n", secrets, "login", "--url", inst.url)
	if code != 0 || strings.Contains(out+errOut, owner) {
		t.Fatalf("login: exit %d, out %q err %q", code, out, errOut)
	}
	cfgPath := filepath.Join(home, "cfg", "credvault", "config.json")
	st, err := os.Stat(cfgPath)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v, want mode 0600", err, st)
	}
	raw, _ := os.ReadFile(cfgPath)
	var saved map[string]any
	if err := json.Unmarshal(raw, &saved); err != nil || len(saved) != 2 || saved["url"] != inst.url || saved["api_key"] != owner {
		t.Fatalf("config file holds %s, want exactly url and api_key", raw)
	}

	// A new key: printed once, to stdout only.
	out, errOut, code = cliRun(t, env, "", secrets, "keys", "create", "--name", "ci", "--scope", "keys:read", "--scope", "credentials:use")
	newKey := strings.TrimSpace(out)
	if code != 0 || strings.Count(out, newKey) != 1 || !strings.HasPrefix(newKey, "cv_") || strings.Contains(errOut, newKey) {
		t.Fatalf("keys create: exit %d, out %q, err %q", code, out, errOut)
	}
	secrets = append(secrets, newKey)
	if r := cl.as(newKey, "GET", inst.url+"/v1/whoami", nil); r.status != 200 {
		t.Fatalf("the printed key does not work: %d", r.status)
	}

	// Listings.
	out, _, code = cliRun(t, env, "", secrets, "keys", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(out, " ci ") || strings.Contains(out, newKey) {
		t.Fatalf("keys list (table): exit %d\n%s", code, out)
	}
	out, _, code = cliRun(t, env, "", secrets, "keys", "list", "--output", "json")
	var page struct {
		Data []map[string]any `json:"data"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Data) != 2 || strings.Contains(out, newKey) {
		t.Fatalf("keys list --output json: exit %d\n%s", code, out)
	}
	if _, _, code = cliRun(t, env, "", secrets, "users", "list", "-o", "json"); code != 0 {
		t.Fatalf("users list: exit %d", code)
	}

	// A credential created and rotated from stdin.
	up := newPathRecorder(t)
	value, rotated := "sk_live_"+strings.Repeat("a1", 12), "sk_live_"+strings.Repeat("b2", 12)
	secrets = append(secrets, value, rotated)
	out, errOut, code = cliRun(t, env, value+"\n", secrets, "credentials", "create", "--name", "pay", "--placement", "bearer",
		"--test-path", "/v1/health", "--base-url", up.srv.URL, "--allowed-host", strings.TrimPrefix(up.srv.URL, "http://"), "--output", "json")
	var cred map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &cred) != nil {
		t.Fatalf("credentials create: exit %d, %s %s", code, out, errOut)
	}
	id := cred["id"].(string)
	out, errOut, code = cliRun(t, env, rotated, secrets, "credentials", "rotate", id)
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "••••b2b2") {
		t.Fatalf("credentials rotate: exit %d, %s %s", code, out, errOut)
	}
	r := cl.as(owner, "GET", inst.url+"/v1/proxy/"+id+"/v1/me", nil)
	if r.status != 200 || !strings.Contains(string(r.body), "auth=Bearer [REDACTED]") {
		t.Fatalf("proxy after rotation: %d %s", r.status, r.body)
	}
	if _, errOut, code = cliRun(t, env, "", secrets, "credentials", "rotate", id); code != cli.ExitUsage || !strings.Contains(errOut, "stdin") {
		t.Errorf("rotate with empty stdin: exit %d %q", code, errOut)
	}
	// A credential test that passes exits 0; one whose upstream cannot be
	// reached exits 10, so that `credentials test ID && …` stops.
	if out, errOut, code = cliRun(t, env, "", secrets, "credentials", "test", id); code != 0 || !strings.Contains(out, `"ok":true`) {
		t.Errorf("credentials test (upstream answers 200): exit %d, %s %s", code, out, errOut)
	}
	deadOut, _, code := cliRun(t, env, "deadend-secret-0001\n", secrets, "credentials", "create", "--name", "dead", "--placement", "bearer",
		"--test-path", "/", "--base-url", "http://127.0.0.1:1", "--allowed-host", "127.0.0.1:1", "--output", "json")
	var deadCred map[string]any
	if code != 0 || json.Unmarshal([]byte(deadOut), &deadCred) != nil {
		t.Fatalf("create the unreachable credential: exit %d %s", code, deadOut)
	}
	if _, errOut, code = cliRun(t, env, "", secrets, "credentials", "test", deadCred["id"].(string)); code != cli.ExitTestFailed || !strings.Contains(errOut, "credential test failed") {
		t.Errorf("credentials test (upstream unreachable): exit %d, %q; want %d", code, errOut, cli.ExitTestFailed)
	}
	if _, _, code = cliRun(t, env, "", secrets, "credentials", "create", "--name", "x", "--value", "nope"); code != cli.ExitUsage {
		t.Errorf("a --value flag exists: exit %d", code)
	}

	// Exit codes by class, and errors carry the code and request id.
	_, errOut, code = cliRun(t, env, "", secrets, "keys", "get", "00000000-0000-4000-8000-000000000000")
	if code != cli.ExitNotFound || !strings.Contains(errOut, "not_found") || !strings.Contains(errOut, "request ") {
		t.Errorf("keys get unknown: exit %d, %q", code, errOut)
	}
	if _, _, code = cliRun(t, env, "", secrets, "keys", "create", "--scope", "keys:read"); code != cli.ExitUsage {
		t.Errorf("keys create without --name: exit %d", code)
	}
	if _, errOut, code = cliRun(t, env, "", secrets, "users", "create", "--email", "not-an-email"); code != cli.ExitUsage {
		t.Errorf("users create with a bad email: exit %d %q", code, errOut)
	}
	_, errOut, code = cliRun(t, env, "", secrets, "users", "create", "--email", "x@cli.test", "--role", "superuser")
	if code != cli.ExitInvalid || !strings.Contains(errOut, "role") {
		t.Errorf("users create with a bad role: exit %d %q", code, errOut)
	}
	if r := cl.as(owner, "GET", inst.url+"/v1/users", nil); strings.Contains(string(r.body), "x@cli.test") {
		t.Error("a refused user was written")
	}
	readOnly := map[string]string{"CREDVAULT_URL": inst.url, "CREDVAULT_API_KEY": newKey, "HOME": t.TempDir()}
	_, errOut, code = cliRun(t, readOnly, "", secrets, "users", "list")
	if code != cli.ExitForbidden || strings.Contains(errOut, newKey) {
		t.Errorf("users list without users:read: exit %d, %q", code, errOut)
	}
	if out, _, code = cliRun(t, readOnly, "", secrets, "keys", "list"); code != 0 || !strings.Contains(out, " ci ") {
		t.Errorf("keys list from the environment: exit %d %s", code, out)
	}
	down := map[string]string{"CREDVAULT_URL": "http://127.0.0.1:1", "CREDVAULT_API_KEY": newKey, "HOME": t.TempDir()}
	if _, errOut, code = cliRun(t, down, "", secrets, "keys", "list"); code != cli.ExitUnavailable || strings.Contains(errOut, newKey) {
		t.Errorf("credvault down: exit %d, %q", code, errOut)
	}
	if _, _, code = cliRun(t, env, "", secrets, "keys", "revoke", strings.TrimSpace(page.Data[0]["id"].(string))); code != 0 {
		t.Errorf("keys revoke: exit %d", code)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if out, _, code = cliRun(t, env, "", secrets, "completion", sh); code != 0 || !strings.Contains(out, "credentials") {
			t.Errorf("completion %s: exit %d", sh, code)
		}
	}

	// Nothing secret beyond the key in the config file.
	raw, _ = os.ReadFile(cfgPath)
	for _, s := range secrets[1:] {
		if strings.Contains(string(raw), s) {
			t.Error("the config file holds a secret besides the login key")
		}
	}
}
