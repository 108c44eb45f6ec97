// Package cli is credvault's command line for people: login, keys,
// credentials, users and shell completion, on the Go client (api/client).
// cmd/credvault only dispatches to Run.
//
// Conventions (as gh and vault): `credvault <noun> <verb> [args] [flags]`,
// flags before or after the arguments, `--output table|json` (default
// table), errors on stderr as one line with credvault's code and request
// id, and an exit code per error class (ExitCode). Secrets are never read
// from argv: an API key (login) or a credential value (create, rotate) is
// read from standard input when it is not a terminal, else from a prompt
// without echo.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"

	"credvault/api/client"
)

// Exit codes by error class, documented in README.md.
const (
	ExitOK           = 0
	ExitFailure      = 1 // anything else (local I/O, an unexpected answer)
	ExitUsage        = 2 // bad command, flag or argument
	ExitUnauthorized = 3 // not logged in, or credvault refused the key (401)
	ExitForbidden    = 4 // the key lacks a scope or the role forbids it (403)
	ExitNotFound     = 5 // no such object in the caller's org (404)
	ExitConflict     = 6 // conflict (409), e.g. a credential still in use
	ExitInvalid      = 7 // credvault refused the input (400, 413, 422)
	ExitRateLimited  = 8 // the key is over its rate limit (429)
	ExitUnavailable  = 9 // credvault unreachable or failing (5xx, network)
	// ExitTestFailed: `credentials test` ran, and the upstream did not
	// answer the expected status (or could not be reached).
	ExitTestFailed = 10
)

// errTestFailed is a credential test that ran and did not pass.
type errTestFailed struct{ detail string }

func (e errTestFailed) Error() string { return "credential test failed: " + e.detail }

// Env is what a command reads from and writes to; zero fields take the
// process's own (os.Stdin, os.UserConfigDir, http.DefaultClient).
type Env struct {
	Getenv         func(string) string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// ConfigDir is the user's configuration directory (os.UserConfigDir
	// unless Getenv has XDG_CONFIG_HOME).
	ConfigDir  string
	HTTPClient *http.Client
}

// Commands are the first words Run handles.
var Commands = []string{"login", "logout", "keys", "integrations", "credentials", "users", "completion"}

// Handles reports whether cmd is one of Commands.
func Handles(cmd string) bool {
	for _, c := range Commands {
		if c == cmd {
			return true
		}
	}
	return false
}

// ExitError is returned by Run for a failure already reported on stderr;
// Code is the process exit code.
type ExitError struct{ Code int }

func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Run runs one command (args[0] is one of Commands) and returns nil or an
// ExitError whose message is already on env.Stderr.
func Run(ctx context.Context, args []string, env Env) error {
	env = env.withDefaults()
	err := dispatch(ctx, args, env)
	if err == nil {
		return nil
	}
	var help helpText
	if errors.As(err, &help) {
		_, err := io.WriteString(env.Stdout, string(help))
		return err
	}
	fmt.Fprintln(env.Stderr, "credvault: "+err.Error())
	return ExitError{Code: ExitCode(err)}
}

func (env Env) withDefaults() Env {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Stdin == nil {
		env.Stdin = os.Stdin
	}
	if env.Stdout == nil {
		env.Stdout = os.Stdout
	}
	if env.Stderr == nil {
		env.Stderr = os.Stderr
	}
	if env.HTTPClient == nil {
		env.HTTPClient = http.DefaultClient
	}
	return env
}

func dispatch(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 {
		return usageErrorf("no command given")
	}
	switch args[0] {
	case "login":
		return runLogin(ctx, args[1:], env)
	case "logout":
		return runLogout(args[1:], env)
	case "completion":
		return runCompletion(args[1:], env)
	}
	if len(args) < 2 {
		return usageErrorf("%s needs a subcommand: %s", args[0], strings.Join(verbs(args[0]), ", "))
	}
	if args[1] == "-h" || args[1] == "--help" || args[1] == "help" {
		fmt.Fprintf(env.Stdout, "usage: credvault %s %s [args] [--output table|json]\n(see `credvault %s <subcommand> --help`)\n",
			args[0], strings.Join(verbs(args[0]), "|"), args[0])
		return nil
	}
	noun, verb, rest := args[0], args[1], args[2:]
	run := lookup(noun, verb)
	if run == nil {
		return usageErrorf("unknown command %q %q; one of: %s", noun, verb, strings.Join(verbs(noun), ", "))
	}
	return run(ctx, &session{env: env}, rest)
}

// subcommand is one verb of a noun (`credvault keys list`) and what runs
// it.
type subcommand struct {
	verb string
	run  func(context.Context, *session, []string) error
}

// nouns is the one table of `credvault <noun> <verb>` commands, in the
// order they are listed: dispatch, each noun's usage, completion and the
// top-level usage (NounUsage) all read it, so none can miss a verb.
var nouns = []struct {
	name  string
	verbs []subcommand
}{
	{"keys", keyCommands},
	{"integrations", integrationCommands},
	{"credentials", credentialCommands},
	{"users", userCommands},
}

// verbs lists a noun's subcommands in table order (nil for no noun).
func verbs(noun string) []string {
	var vs []string
	for _, n := range nouns {
		if n.name == noun {
			for _, v := range n.verbs {
				vs = append(vs, v.verb)
			}
		}
	}
	return vs
}

// lookup returns what runs `credvault noun verb`, or nil.
func lookup(noun, verb string) func(context.Context, *session, []string) error {
	for _, n := range nouns {
		for _, v := range n.verbs {
			if n.name == noun && v.verb == verb {
				return v.run
			}
		}
	}
	return nil
}

// NounUsage is the lines of the top-level usage that list the commands
// for people with subcommands, one per noun: "  keys list|create|...\n".
func NounUsage() string {
	var b strings.Builder
	for _, n := range nouns {
		fmt.Fprintf(&b, "  %s %s\n", n.name, strings.Join(verbs(n.name), "|"))
	}
	return b.String()
}

// helpText is what --help asked for: printed on stdout, exit 0.
type helpText string

func (h helpText) Error() string { return string(h) }

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usageErrorf(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// errNotLoggedIn is the error of a command run before login.
var errNotLoggedIn = errors.New("not logged in: run `credvault login --url URL` (the key is read from stdin or a prompt), or set CREDVAULT_URL and CREDVAULT_API_KEY")

// ExitCode maps an error to its exit code (see the Exit constants).
func ExitCode(err error) int {
	var ue usageError
	var ae *client.APIError
	var ne net.Error
	var oe *net.OpError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, new(errTestFailed)):
		return ExitTestFailed
	case errors.Is(err, errNotLoggedIn):
		return ExitUnauthorized
	case errors.As(err, new(errNoSuchMember)):
		return ExitNotFound
	case errors.As(err, &ae):
		switch {
		case errors.Is(err, client.ErrUnauthorized):
			return ExitUnauthorized
		case errors.Is(err, client.ErrForbidden):
			return ExitForbidden
		case errors.Is(err, client.ErrNotFound):
			return ExitNotFound
		case errors.Is(err, client.ErrConflict):
			return ExitConflict
		case errors.Is(err, client.ErrInvalid):
			return ExitInvalid
		case errors.Is(err, client.ErrRateLimited):
			return ExitRateLimited
		case ae.Status >= 500:
			return ExitUnavailable
		}
	case errors.As(err, &oe), errors.As(err, &ne):
		return ExitUnavailable
	}
	return ExitFailure
}

// parseFlags parses flags that may come before, between or after the
// positional arguments, and returns the positional ones; want is their
// exact count (-1: any).
func parseFlags(fs *flag.FlagSet, args []string, want int, names string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				// --help: the usage and flags on stdout, exit 0.
				var b strings.Builder
				fmt.Fprintf(&b, "usage: credvault %s %s\n", fs.Name(), names)
				fs.SetOutput(&b)
				fs.PrintDefaults()
				return nil, helpText(b.String())
			}
			return nil, usageErrorf("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if want >= 0 && len(pos) != want {
		return nil, usageErrorf("usage: credvault %s %s", fs.Name(), names)
	}
	return pos, nil
}

// newFlags is the flag set of the command named name ("keys list",
// "login"): every command's comes from here, so every command takes
// --output table|json (and -o), whose value is returned.
func newFlags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	o := fs.String("output", "table", "table or json")
	fs.StringVar(o, "o", "table", "table or json")
	return fs, o
}

func checkOutput(o string) error {
	if o != "table" && o != "json" {
		return usageErrorf("--output must be table or json (got %q)", o)
	}
	return nil
}

// stringList is a repeatable flag (--scope a --scope b, or --scope a,b).
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
