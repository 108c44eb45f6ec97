package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// GeneratorCommand is the (hidden) credvault subcommand a re-executed
// generator runs: `credvault bench-generator` reads one Spec as JSON on
// stdin, runs it with InProcess and writes the Result as JSON on stdout.
const GeneratorCommand = "bench-generator"

// Exec is the generator used when wrk is not installed: the credvault
// binary re-executed as `credvault bench-generator`, one process per run,
// so that its work is not charged to the process under test.
type Exec struct {
	exe string
}

// NewExec runs exe (os.Executable()) as the generator.
func NewExec(exe string) *Exec { return &Exec{exe: exe} }

// Name is "exec".
func (e *Exec) Name() string { return "exec" }

// Run starts `exe bench-generator`, hands it spec and reads its Result.
func (e *Exec) Run(ctx context.Context, spec Spec) (Result, error) {
	if err := spec.check(); err != nil {
		return Result{}, err
	}
	in, err := json.Marshal(spec)
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Duration+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.exe, GeneratorCommand)
	var out, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &out, &stderr
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("bench: generator process: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var r Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return Result{}, fmt.Errorf("bench: generator process printed %q: %v", out.String(), err)
	}
	return r, nil
}

// ServeGenerator is `credvault bench-generator`: one Spec in, one Result
// out, with connections to a single host.
func ServeGenerator(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	var spec Spec
	if err := json.NewDecoder(stdin).Decode(&spec); err != nil {
		return fmt.Errorf("bench-generator: read the spec from stdin: %w", err)
	}
	r, err := NewInProcess(spec.Connections).Run(ctx, spec)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(r)
}
