package main

import (
	"context"
	"io"

	"credvault/internal/bench"
)

// runBenchChild runs one of the separate processes of `credvault bench`:
// the load generator re-executed when wrk is not installed
// (bench-generator: a Spec on stdin, the Result on stdout) or the upstream
// (bench-upstream [--cert F --key F]: its addresses on stdout, then serves
// until stdin closes). Neither needs credvault's configuration.
func runBenchChild(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	if cmd == bench.GeneratorCommand {
		fs := newFlagSet(cmd, args, stdout, stderr)
		if err := fs.Parse(args); err != nil {
			return err
		}
		return bench.ServeGenerator(ctx, stdin, stdout)
	}
	fs := newFlagSet(cmd, args, stdout, stderr)
	cert := fs.String("cert", "", "PEM server certificate: also serve TLS (HTTP/1.1 only, and h2)")
	key := fs.String("key", "", "PEM private key of --cert")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return bench.ServeUpstream(ctx, *cert, *key, stdin, stdout)
}
