package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
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
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var steps []tourStep
	for _, marker := range tourMarkers {
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
	api := recordForSpec(t, s.url)
	outDir := t.TempDir()
	var script strings.Builder
	for i, st := range steps {
		cmd := strings.ReplaceAll(st.cmd, "http://127.0.0.1:8080", api)
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
