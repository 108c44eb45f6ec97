package cli

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestTableNeutralisesControlCharacters: names and emails come from other
// people (a member's name, a key's name), and credvault stores them as
// given. A table cell holding ESC, BEL, a newline or a tab must not reach
// the terminal raw: it would run escape sequences (clear the screen, set
// the title) or forge a row. Each control character is printed as a
// visible escape and the columns stay one line a row.
func TestTableNeutralisesControlCharacters(t *testing.T) {
	var out strings.Builder
	s := &session{env: Env{Stdout: &out}}
	evil := "evil\x1b[2J\x1b]0;pwned\a\nFAKE ROW\tx\r\u009b31m\u202eabc"
	if err := s.table([]string{"ID", "NAME", "ROLE"}, [][]string{{"1", evil, "member"}, {"2", "Ada Lovelace", "owner"}}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, c := range []string{"\x1b", "\a", "\r", "\u009b", "\u202e"} {
		if strings.Contains(got, c) {
			t.Errorf("table printed control character %q raw:\n%s", c, got)
		}
	}
	lines := strings.Split(strings.TrimRight(got, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("table has %d lines, want 3 (header and 2 rows):\n%s", len(lines), got)
	}
	if !strings.Contains(lines[1], `evil\x1b[2J`) || !strings.Contains(lines[1], `\nFAKE ROW\tx`) || !strings.HasSuffix(strings.TrimSpace(lines[1]), "member") {
		t.Errorf("row 1 is not the escaped name then the role: %q", lines[1])
	}
	if !strings.Contains(lines[2], "Ada Lovelace") {
		t.Errorf("a plain name changed: %q", lines[2])
	}
}

// TestKeysCreateRefusesRepeatedTag: `--tag team=a --tag team=b` names the
// tag team twice; the CLI refuses it (exit 2) before sending anything,
// rather than silently keeping the last value.
func TestKeysCreateRefusesRepeatedTag(t *testing.T) {
	var sent atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		sent.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	vars := map[string]string{"CREDVAULT_URL": srv.URL, "CREDVAULT_API_KEY": "cv_live_test"}
	var stderr strings.Builder
	env := Env{Getenv: func(k string) string { return vars[k] }, ConfigDir: t.TempDir(), HTTPClient: srv.Client(),
		Stdout: io.Discard, Stderr: &stderr}
	err := Run(context.Background(), []string{"keys", "create", "--name", "x", "--scope", "credentials:read",
		"--tag", "team=a", "--tag", "team=b"}, env)
	var exit ExitError
	if !errors.As(err, &exit) || exit.Code != ExitUsage || !strings.Contains(stderr.String(), `tag "team" is given twice`) {
		t.Errorf("repeated tag: %v; stderr %q", err, stderr.String())
	}
	if n := sent.Load(); n != 0 {
		t.Errorf("%d requests sent for a refused command", n)
	}
}
