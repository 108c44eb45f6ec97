package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"

	"credvault/internal/cli"
	"credvault/internal/postgres/pgtest"
)

// TestHelpExitsZero: every command answers --help (and -h) with its usage
// on stdout and success, without needing any configuration.
func TestHelpExitsZero(t *testing.T) {
	for _, cmd := range []string{"serve", "dev", "migrate", "bootstrap", "rewrap", "bench", "devtransit"} {
		for _, flag := range []string{"--help", "-h"} {
			var out, errOut bytes.Buffer
			err := run(context.Background(), []string{"credvault", cmd, flag}, envOf(nil), &out, &errOut)
			if err != nil {
				t.Errorf("%s %s: %v", cmd, flag, err)
			}
			if !strings.Contains(strings.ToLower(out.String()), "usage") {
				t.Errorf("%s %s: no usage on stdout: %q (stderr %q)", cmd, flag, out.String(), errOut.String())
			}
		}
	}
	// The usage names the command, not Go's default "Usage of …".
	var out bytes.Buffer
	if err := run(context.Background(), []string{"credvault", "rewrap", "--help"}, envOf(nil), &out, io.Discard); err != nil ||
		!strings.HasPrefix(out.String(), "usage: credvault rewrap") {
		t.Errorf("rewrap --help: %v %q", err, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"credvault", "version", "--help"}, envOf(nil), &out, io.Discard); err != nil ||
		!strings.HasPrefix(out.String(), "usage: credvault version") {
		t.Errorf("version --help: %v %q", err, out.String())
	}
	// Help does not read the configuration: a bad variable does not hide it.
	err := run(context.Background(), []string{"credvault", "bootstrap", "--help"}, envOf(map[string]string{"CREDVAULT_ADDR": "nonsense"}), io.Discard, io.Discard)
	if err != nil {
		t.Errorf("bootstrap --help with a bad CREDVAULT_ADDR: %v", err)
	}
}

// TestUsageListsEveryCommand: `credvault --help` names every command run
// dispatches, the commands for people included (logout was missing).
func TestUsageListsEveryCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"credvault", "--help"}, envOf(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") {
			listed[f[0]] = true
		}
	}
	commands := append([]string{"dev", "serve", "migrate", "bootstrap", "rewrap", "bench", "devtransit", "version", "help"}, cli.Commands...)
	for _, c := range commands {
		if !listed[c] {
			t.Errorf("usage does not list %q:\n%s", c, out.String())
		}
	}
}

// TestEveryCommandTakesOutput: the top-level usage lists every verb each
// noun's own usage lists (credentials connect was missing), every verb
// answers --help, and every command for people, each verb of each noun
// included, takes --output (integrations delete refused it with exit 2).
// The verbs are read from the usages, so a new one is checked too.
func TestEveryCommandTakesOutput(t *testing.T) {
	help := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := run(context.Background(), append([]string{"credvault"}, args...), envOf(nil), &out, &errOut); err != nil {
			t.Fatalf("%v: %v (%s)", args, err, errOut.String())
		}
		return out.String()
	}
	top := help("--help")
	commands := [][]string{}
	for _, c := range cli.Commands {
		nounHelp := help(c, "--help")
		m := regexp.MustCompile(`^usage: credvault ` + c + ` (\S+) \[args\]`).FindStringSubmatch(nounHelp)
		if m == nil { // a command without subcommands
			commands = append(commands, []string{c})
			continue
		}
		if !strings.Contains(top, "\n  "+c+" "+m[1]+"\n") {
			t.Errorf("credvault --help does not list %s %s:\n%s", c, m[1], top)
		}
		for _, verb := range strings.Split(m[1], "|") {
			commands = append(commands, []string{c, verb})
		}
	}
	if len(commands) < 29 {
		t.Fatalf("only %d commands found: %v", len(commands), commands)
	}
	home := t.TempDir()
	env := envOf(map[string]string{"HOME": home, "XDG_CONFIG_HOME": home})
	for _, c := range commands {
		if h := help(append(c, "--help")...); !strings.Contains(h, "-output") {
			t.Errorf("%s --help lists no --output:\n%s", strings.Join(c, " "), h)
		}
		for _, flag := range []string{"--output", "-o"} {
			var errOut bytes.Buffer
			_ = run(context.Background(), append(append([]string{"credvault"}, c...), flag, "json"), env, io.Discard, &errOut)
			if strings.Contains(errOut.String(), "flag provided but not defined") {
				t.Errorf("%s %s json: %s", strings.Join(c, " "), flag, errOut.String())
			}
		}
	}
	t.Logf("%d commands take --output", len(commands))
}

func TestVersionCommand(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"credvault", arg}, envOf(nil), &out, io.Discard); err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		if !regexp.MustCompile(`^credvault \S+ \(go1\.\S+ \w+/\w+.*\)\n$`).MatchString(out.String()) {
			t.Errorf("%s printed %q", arg, out.String())
		}
	}
	old := version
	version = "v1.2.3"
	defer func() { version = old }()
	if got := versionLine(); !strings.HasPrefix(got, "credvault v1.2.3 (") {
		t.Errorf("with -X main.version: %q", got)
	}
}

// TestBootstrapExistingOrg: a second bootstrap of one org fails with one
// line that says what happened, and no driver text.
func TestBootstrapExistingOrg(t *testing.T) {
	_, dbURL := pgtest.New(t)
	env := envOf(map[string]string{"DATABASE_URL": dbURL})
	args := []string{"credvault", "bootstrap", "--org", "acme", "--email", "ada@acme.example"}
	var out bytes.Buffer
	if err := run(context.Background(), args, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err := run(context.Background(), args, env, &out, io.Discard)
	if err == nil {
		t.Fatal("second bootstrap of acme succeeded")
	}
	msg := cliMessage(err)
	if !strings.Contains(msg, `org "acme" already exists`) || strings.Contains(msg, "\n") ||
		strings.Contains(msg, "pq:") || strings.Contains(msg, "23505") || strings.Contains(msg, "duplicate") {
		t.Errorf("message %q, want one clean line", msg)
	}
	if out.Len() != 0 {
		t.Errorf("second bootstrap printed %q", out.String())
	}
}

func TestRewrapNamesItselfWithoutDatabaseURL(t *testing.T) {
	err := run(context.Background(), []string{"credvault", "rewrap"}, envOf(nil), io.Discard, io.Discard)
	if msg := cliMessage(err); !strings.HasPrefix(msg, "DATABASE_URL: required by `credvault rewrap`") {
		t.Errorf("rewrap without DATABASE_URL: %q", msg)
	}
}
