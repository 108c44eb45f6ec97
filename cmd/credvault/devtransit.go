package main

import (
	"context"
	"fmt"
	"io"
	"net"

	"credvault/vault/devtransit"
)

// runDevTransit runs the Vault-compatible dev transit server alone, for
// tests and tools: `credvault devtransit --addr 127.0.0.1:8200 [--token T]
// [--data DIR]`.
func runDevTransit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("devtransit", args, stdout, stderr)
	addr := fs.String("addr", "127.0.0.1:8200", "listen address")
	token := fs.String("token", getenv("VAULT_DEV_ROOT_TOKEN_ID"), "root token (default $VAULT_DEV_ROOT_TOKEN_ID, else a random one printed at start)")
	data := fs.String("data", ".credvault/transit", "directory where keys persist")
	maxStrings := fs.Int("max-request-json-strings", devtransit.DefaultMaxRequestJSONStrings,
		"most JSON strings (keys and values) one request body may hold, like OpenBao's listener setting; -1 for no limit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("devtransit: unexpected argument %q", fs.Arg(0))
	}
	if *maxStrings == 0 || *maxStrings < -1 {
		return fmt.Errorf("--max-request-json-strings must be positive, or -1 for no limit (got %d)", *maxStrings)
	}
	if err := checkListenAddr(*addr); err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	printToken := *token == ""
	if printToken {
		*token = randomToken()
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	srv, err := devtransit.New(devtransit.Options{Token: *token, DataDir: *data, Logger: log, MaxRequestJSONStrings: *maxStrings})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("--addr: cannot listen on %s: %w", *addr, err)
	}
	fmt.Fprintf(stdout, "devtransit listening on http://%s (transit mounted at transit/; keys in %s)\n", ln.Addr(), *data)
	if printToken {
		// A development token for a development server, shown so that the
		// operator can use it; never do this with a real Vault token.
		fmt.Fprintf(stdout, "root token: %s\n", *token)
	}
	return srv.Serve(ctx, ln)
}
