// Command credvault is the credential vault of the workflow platform: it
// stores outbound credentials encrypted through Vault transit, injects them
// into outbound calls, and issues and verifies inbound API keys.
package main

import (
	"context"
	"errors"
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

const usage = `usage: credvault <command> [flags]

commands:
  dev                      run everything locally on embedded defaults
  serve                    run in production (needs DATABASE_URL and Vault)
  migrate [up|status]      apply or list the database migrations
  bootstrap --org NAME --email EMAIL
                           create an org and its owner; prints the owner's API key once
  rewrap [--batch N] [--raise-min-version]
                           re-encrypt every credential under the latest transit key version
  bench [--quick] [--json FILE]
                           measure credvault against its baselines (see BENCHMARKS.md)
  devtransit [flags]       run the Vault-compatible dev transit server alone
  login --url URL          save credvault's URL and an API key (read from stdin or a prompt)
  keys list|create|get|roll|revoke
  credentials list|create|share|rotate|test|delete
  users list|create|get|update|delete
                           manage credvault as the logged-in key (--output table|json)
  completion bash|zsh|fish print a shell completion script
  help                     show this text

Configuration comes from the environment; see README.md.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		var exit cli.ExitError // the commands for people report their own errors
		if !errors.As(err, &exit) {
			fmt.Fprintln(os.Stderr, "credvault: "+cliMessage(err))
			exit.Code = 1
		}
		os.Exit(exit.Code)
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
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "devtransit":
		return runDevTransit(ctx, rest, getenv, stdout, stderr)
	}

	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	switch cmd {
	case "serve":
		if len(rest) > 0 {
			return fmt.Errorf("serve takes no arguments (got %q)", rest[0])
		}
		return runServe(ctx, cfg, log, stdout)
	case "dev":
		if len(rest) > 0 {
			return fmt.Errorf("dev takes no arguments (got %q)", rest[0])
		}
		return runDev(ctx, cfg, log, stdout)
	case "migrate":
		return runMigrate(ctx, cfg, rest, stdout)
	case "bootstrap":
		return runBootstrap(ctx, cfg, rest, log, stdout, stderr)
	case "rewrap":
		return runRewrap(ctx, cfg, rest, log, stdout, stderr)
	case "bench":
		return runBench(ctx, cfg, rest, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// cliMessage renders an error as the one line start-up prints: a domain
// error's caller-safe message plus its cause, which never holds a secret.
func cliMessage(err error) string {
	var e *credvault.Error
	if errors.As(err, &e) {
		if e.Err != nil && e.Code != credvault.EINVALID {
			return e.Message + ": " + e.Err.Error()
		}
		return e.Message
	}
	return err.Error()
}
