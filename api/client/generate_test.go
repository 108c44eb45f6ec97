package client

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedClientIsCurrent regenerates the client from
// api/openapi.yaml with the exact command of generate.go's go:generate
// line, into a temporary directory, and fails when client.gen.go differs:
// run `go generate ./api/client` after editing the OpenAPI document.
func TestGeneratedClientIsCurrent(t *testing.T) {
	src, err := os.ReadFile("generate.go")
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, line := range strings.Split(string(src), "\n") {
		if rest, ok := strings.CutPrefix(line, "//go:generate "); ok {
			args = strings.Fields(rest)
		}
	}
	if len(args) < 3 || args[0] != "go" || args[1] != "run" {
		t.Fatalf("generate.go has no `//go:generate go run ...` line")
	}
	// The same configuration, writing into a temporary directory.
	dir := t.TempDir()
	out := filepath.Join(dir, "client.gen.go")
	for i := range args[:len(args)-1] {
		if args[i] != "-config" {
			continue
		}
		conf, err := os.ReadFile(args[i+1])
		if err != nil {
			t.Fatal(err)
		}
		tmpConf := filepath.Join(dir, "oapi-codegen.yaml")
		conf = bytes.Replace(conf, []byte("output: client.gen.go"), []byte("output: "+out), 1)
		if err := os.WriteFile(tmpConf, conf, 0o600); err != nil {
			t.Fatal(err)
		}
		args[i+1] = tmpConf
	}
	cmd := exec.Command(args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("client.gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("api/client/client.gen.go is stale: api/openapi.yaml changed; run `go generate ./api/client` and commit the result")
	}
}
