package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"credvault/internal/postgres/pgtest"
	"credvault/vault/vaulttest"
)

// tourStep is one command of the README tour and the lines it must print.
type tourStep struct {
	cmd    string
	expect []string // "# → " lines; "…" matches anything
}

// tourMarkers precede the ```sh blocks of the README tour, in order; each
// block continues the shell of the one before (variables carry over).
var tourMarkers = []string{"<!-- tour -->", "<!-- tour continued -->"}

// readmeTour extracts the tour from README.md: the ```sh block after each
// of tourMarkers. Commands continued with "\" are joined; a comment
// "# → text" is a line the command before it prints; other comments are
// prose.
func readmeTour(t *testing.T, path string) []tourStep {
	t.Helper()
	return readmeBlocks(t, path, tourMarkers)
}

// readmeBlocks parses the ```sh block after each of markers in the README
// at path, as readmeTour does.
func readmeBlocks(t *testing.T, path string, markers []string) []tourStep {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var steps []tourStep
	for _, marker := range markers {
		_, rest, ok := strings.Cut(string(b), marker)
		if !ok {
			t.Fatalf("%s has no %s marker", path, marker)
		}
		_, rest, ok = strings.Cut(rest, "```sh\n")
		if !ok {
			t.Fatalf("%s: no ```sh block after the %s marker", path, marker)
		}
		block, _, ok := strings.Cut(rest, "\n```")
		if !ok {
			t.Fatalf("%s: the block after %s is not closed", path, marker)
		}
		steps = appendTourSteps(t, steps, block)
	}
	return steps
}

// appendTourSteps parses one ```sh block of the tour onto steps.
func appendTourSteps(t *testing.T, steps []tourStep, block string) []tourStep {
	t.Helper()
	var cont string
	sc := bufio.NewScanner(strings.NewReader(block))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cont != "":
			cont += "\n" + line
			if !strings.HasSuffix(line, "\\") {
				steps = append(steps, tourStep{cmd: cont})
				cont = ""
			}
		case strings.HasPrefix(trimmed, "# → "):
			if len(steps) == 0 {
				t.Fatalf("expected output %q before any command", trimmed)
			}
			steps[len(steps)-1].expect = append(steps[len(steps)-1].expect, strings.TrimPrefix(trimmed, "# → "))
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
		case strings.HasSuffix(line, "\\"):
			cont = line
		default:
			steps = append(steps, tourStep{cmd: line})
		}
	}
	return steps
}

// expectRe turns an expected line into an anchored regular expression in
// which "…" matches anything.
func expectRe(line string) *regexp.Regexp {
	parts := strings.Split(line, "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
}

// TestReadmeTour runs the README's tour, as written, against a `credvault
// dev` with its private cluster, and checks every line the README says a
// command prints. The README's address is replaced by the test's port.
func TestReadmeTour(t *testing.T) {
	skipWithoutPG(t)
	for _, tool := range []string{"bash", "curl", "sed", "grep"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the tour needs %s: %v", tool, err)
		}
	}
	steps := readmeTour(t, filepath.Join("..", "..", "README.md"))
	if len(steps) < 20 {
		t.Fatalf("found only %d tour commands", len(steps))
	}
	checked := 0
	for _, s := range steps {
		checked += len(s.expect)
	}
	if checked < 20 {
		t.Fatalf("the tour shows only %d expected lines", checked)
	}

	dir := t.TempDir()
	dataDir := filepath.Join(dir, ".credvault")
	removeRootCluster(t, dataDir)
	s := startRun(t, map[string]string{"CREDVAULT_ADDR": "127.0.0.1:0", "CREDVAULT_DATA_DIR": dataDir}, "dev")
	// Every call of the tour goes through a recorder that validates each
	// response against api/openapi.yaml when the test ends.
	runReadmeSteps(t, steps, dir, map[string]string{"http://127.0.0.1:8080": recordForSpec(t, s.url)})
}

// runReadmeSteps runs steps as one bash script in dir (each command's
// output and status kept apart), with every key of replace in a command
// replaced by its value, and checks each line the README says a command
// prints.
func runReadmeSteps(t *testing.T, steps []tourStep, dir string, replace map[string]string) {
	t.Helper()
	outDir := t.TempDir()
	var script strings.Builder
	for i, st := range steps {
		cmd := st.cmd
		for from, to := range replace {
			cmd = strings.ReplaceAll(cmd, from, to)
		}
		fmt.Fprintf(&script, "{ %s\n} > %q 2>&1; echo $? > %q\n", cmd, filepath.Join(outDir, fmt.Sprint("out.", i)), filepath.Join(outDir, fmt.Sprint("rc.", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bash := exec.CommandContext(ctx, "bash", "-c", script.String())
	bash.Dir = dir
	bash.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LC_ALL=C.UTF-8"}
	if out, err := bash.CombinedOutput(); err != nil {
		t.Fatalf("tour script: %v\n%s", err, out)
	}
	for i, st := range steps {
		out, _ := os.ReadFile(filepath.Join(outDir, fmt.Sprint("out.", i)))
		rc, _ := os.ReadFile(filepath.Join(outDir, fmt.Sprint("rc.", i)))
		if strings.TrimSpace(string(rc)) != "0" {
			t.Errorf("step %d exited %s:\n%s\noutput:\n%s", i, strings.TrimSpace(string(rc)), st.cmd, out)
			continue
		}
		lines := strings.Split(strings.ReplaceAll(string(out), "\r", ""), "\n")
	expect:
		for _, e := range st.expect {
			re := expectRe(e)
			for _, l := range lines {
				if re.MatchString(l) {
					continue expect
				}
			}
			t.Errorf("step %d:\n%s\nREADME says it prints\n  %s\nbut it printed:\n%s", i, st.cmd, e, out)
		}
	}
}

// TestReadmeLocalService runs the README's recipe for trying the proxy
// against a local service, as written: a service on a loopback port,
// `credvault dev` with CREDVAULT_EGRESS_ALLOW_LOOPBACK_PORTS naming that
// port, a credential pointed at it, a call through the proxy that arrives
// with the value injected. The README's port 9000 and address are replaced
// by free ones.
func TestReadmeLocalService(t *testing.T) {
	t.Parallel() // waits on processes and a browser more than the CPU: overlaps with the other slow ones
	if vaulttest.Real() {
		t.Skip("runs credvault dev with its built-in transit server")
	}
	for _, tool := range []string{"bash", "curl", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the recipe needs %s: %v", tool, err)
		}
	}
	steps := readmeBlocks(t, filepath.Join("..", "..", "README.md"), []string{"<!-- local service -->"})
	var mu sync.Mutex
	var auths []string
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		fmt.Fprintln(w, "hello from the local service")
	}))
	defer local.Close()
	port := local.URL[strings.LastIndexByte(local.URL, ':')+1:]
	dir := t.TempDir()
	// A throwaway database rather than dev's private cluster: the recipe
	// is about egress, and initdb would only make the test slower.
	_, dbURL := pgtest.New(t)
	s := startRun(t, map[string]string{"CREDVAULT_ADDR": "127.0.0.1:0", "CREDVAULT_DATA_DIR": filepath.Join(dir, ".credvault"),
		"DATABASE_URL": dbURL, "CREDVAULT_EGRESS_ALLOW_LOOPBACK_PORTS": port}, "dev")
	runReadmeSteps(t, steps, dir, map[string]string{"http://127.0.0.1:8080": recordForSpec(t, s.url), "127.0.0.1:9000": "127.0.0.1:" + port})
	mu.Lock()
	defer mu.Unlock()
	if len(auths) == 0 || auths[len(auths)-1] != "Bearer local-secret-123" {
		t.Errorf("the local service got Authorization %q, want the credential injected", auths)
	}
}
