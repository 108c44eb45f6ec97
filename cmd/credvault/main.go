// Command credvault is the credential vault of the workflow platform: it
// stores outbound credentials encrypted through Vault transit, injects them
// into outbound calls, and issues and verifies inbound API keys.
package main

import (
	"context"
	"credvault/internal/bench"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"credvault/internal/cli"
	"credvault/internal/credvault"
)

// stdin is what the commands for people (internal/cli) read a key or a
// credential value from; tests replace it.
var stdin io.Reader = os.Stdin

// usage is the top-level help; the lines of the commands with subcommands
// come from internal/cli's command table, so they list every verb it runs.
var usage = usageHead + cli.NounUsage() + usageTail

const usageHead = `usage: credvault <command> [flags]

commands:
  dev [--reset]            run everything locally on embedded defaults;
                           --reset removes everything it created
  serve                    run in production (needs DATABASE_URL and Vault)
  migrate [up|status]      apply or list the database migrations
  bootstrap --org NAME --email EMAIL
                           create an org and its owner; prints the owner's API key once
  rewrap [--batch N] [--raise-min-version]
                           re-encrypt every credential under the latest transit key version;
                           exit status 3 when some rows failed and stay on older versions
  bench [--quick] [--json FILE]
                           measure credvault against its baselines (see BENCHMARKS.md)
  devtransit [flags]       run the Vault-compatible dev transit server alone
  version                  print credvault's version and build
  login --url URL          save credvault's URL and an API key (read from stdin or a prompt)
  logout                   remove the saved URL and API key
`

const usageTail = `                           manage credvault as the logged-in key (--output table|json)
  completion bash|zsh|fish print a shell completion script
  help                     show this text

Every command takes --help.

Configuration comes from the environment; see README.md.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		var exit cli.ExitError // the commands for people report their own errors
		if errors.As(err, &exit) {
			os.Exit(exit.Code)
		}
		fmt.Fprintln(os.Stderr, "credvault: "+cliMessage(err))
		os.Exit(exitStatus(err))
	}
}

// run is the whole program behind main, with its inputs passed in so that
// tests can drive it: args as in os.Args, getenv for the environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[1], args[2:]
	if cli.Handles(cmd) {
		return cli.Run(ctx, args[1:], cli.Env{Getenv: getenv, Stdin: stdin, Stdout: stdout, Stderr: stderr})
	}
	switch cmd {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "version", "--version":
		if wantsHelp(rest) {
			fmt.Fprintln(stdout, "usage: credvault version\n\nPrints credvault's version, the Go version and the platform it was built for.")
			return nil
		}
		fmt.Fprintln(stdout, versionLine())
		return nil
	case "devtransit":
		return ignoreHelp(runDevTransit(ctx, rest, getenv, stdout, stderr))
	case bench.GeneratorCommand, bench.UpstreamCommand:
		// The separate processes of `credvault bench` (not for users).
		return ignoreHelp(runBenchChild(ctx, cmd, rest, stdout, stderr))
	}

	var cfg Config
	if wantsHelp(rest) {
		// Help needs no configuration: a newcomer asks before setting any.
		if text, ok := plainHelp[cmd]; ok {
			fmt.Fprint(stdout, text)
			return nil
		}
	} else {
		var err error
		if cfg, err = loadConfig(getenv); err != nil {
			return err
		}
	}
	log := newLogger(stderr, cfg.LogLevel)
	switch cmd {
	case "serve":
		if len(rest) > 0 {
			return fmt.Errorf("serve takes no arguments (got %q)", rest[0])
		}
		return runServe(ctx, cfg, log, stdout)
	case "dev":
		if len(rest) == 1 && rest[0] == "--reset" {
			return resetDev(cfg.DataDir, stdout)
		}
		if len(rest) > 0 {
			return fmt.Errorf("dev takes no arguments but --reset (got %q)", rest[0])
		}
		if getenv("CREDVAULT_ADDR") == "" {
			cfg.Addr = devAddr
		}
		return runDev(ctx, cfg, log, stdout)
	case "migrate":
		return runMigrate(ctx, cfg, rest, stdout)
	case "bootstrap":
		return ignoreHelp(runBootstrap(ctx, cfg, rest, log, stdout, stderr))
	case "rewrap":
		return ignoreHelp(runRewrap(ctx, cfg, rest, log, stdout, stderr))
	case "bench":
		return ignoreHelp(runBench(ctx, cfg, rest, stdout, stderr))
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// Exit statuses: 0 success, 1 any error, 3 `credvault rewrap` finished but
// some rows failed and are still on older key versions (see README).
const exitRewrapIncomplete = 3

// exitError is an error that ends the program with a status other than 1.
type exitError struct {
	status int
	err    error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitStatus is the process exit status for an error run returned.
func exitStatus(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.status
	}
	return 1
}

// cliMessage renders an error as the one line start-up prints: a domain
// error's caller-safe message, plus its cause when the cause is what an
// operator needs (a dependency unavailable or an internal failure); the
// cause never holds a secret. A conflict or a bad value says all in its
// message, so a driver's text (such as a constraint name) stays out.
func cliMessage(err error) string {
	var e *credvault.Error
	if errors.As(err, &e) {
		if e.Err != nil && (e.Code == credvault.EUNAVAILABLE || e.Code == credvault.EINTERNAL) {
			return e.Message + ": " + e.Err.Error()
		}
		return e.Message
	}
	return err.Error()
}

// plainHelp is the --help text of the commands without flags.
var plainHelp = map[string]string{
	"serve": `usage: credvault serve

Runs credvault for production. Needs DATABASE_URL, VAULT_ADDR and a Vault
token (VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID); see README.md.
`,
	"dev": `usage: credvault dev [--reset]

Runs the whole service locally: a private PostgreSQL cluster unless
DATABASE_URL is set, the built-in dev transit server unless VAULT_ADDR is
set, listening on 127.0.0.1:8080 unless CREDVAULT_ADDR says otherwise.
State is kept under CREDVAULT_DATA_DIR (default ./.credvault); run as
root, the cluster lives in /var/lib/credvault-dev/<hash>/pg instead.

  --reset   stop and remove everything dev created (the data directory's
            cluster, transit keys, tokens and admin key, and the cluster
            under /var/lib/credvault-dev/<hash>), then exit; refused
            while a credvault dev is running on the directory
`,
	"migrate": `usage: credvault migrate [up|status]

Applies the pending database migrations (up, the default) or lists every
migration and whether it is applied (status). Needs DATABASE_URL.
`,
}

// wantsHelp reports whether args ask for help before any "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// newFlagSet is a subcommand's flag set: errors and usage on stderr, but
// the usage asked for with --help on stdout, where a pager can read it.
func newFlagSet(name string, args []string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if wantsHelp(args) {
		fs.SetOutput(stdout)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: credvault %s [flags]\n\nflags:\n", name)
		fs.PrintDefaults()
	}
	return fs
}

// ignoreHelp turns the flag package's "help requested" into success: the
// usage was printed, as asked.
func ignoreHelp(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
