package main

import (
	"context"
	"fmt"
	"os"

	"credvault/internal/bench"
)

// init lets the test binary stand in for the credvault binary when `bench`
// re-executes itself (os.Executable() is the test binary here): run as
// `credvault.test bench-generator` or `bench-upstream`, it is that child
// process and never runs the tests.
func init() {
	if len(os.Args) > 1 && (os.Args[1] == bench.GeneratorCommand || os.Args[1] == bench.UpstreamCommand) {
		if err := runBenchChild(context.Background(), os.Args[1], os.Args[2:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}
