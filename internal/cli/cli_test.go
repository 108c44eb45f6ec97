package cli

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"credvault/api/client"
)

func TestExitCode(t *testing.T) {
	apiErr := func(status int) error {
		return fmt.Errorf("call: %w", &client.APIError{Status: status, Code: "x"})
	}
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{usageErrorf("bad flag"), ExitUsage},
		{errNotLoggedIn, ExitUnauthorized},
		{apiErr(401), ExitUnauthorized},
		{apiErr(403), ExitForbidden},
		{apiErr(404), ExitNotFound},
		{apiErr(409), ExitConflict},
		{apiErr(400), ExitInvalid},
		{apiErr(413), ExitInvalid},
		{apiErr(429), ExitRateLimited},
		{apiErr(503), ExitUnavailable},
		{apiErr(500), ExitUnavailable},
		{&net.OpError{Op: "dial", Err: errors.New("refused")}, ExitUnavailable},
		{errors.New("disk full"), ExitFailure},
	} {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("ExitCode(%v): got %d, want %d", c.err, got, c.want)
		}
	}
}

func TestParseFlagsInterspersed(t *testing.T) {
	fs, out := newFlags("keys roll")
	grace := fs.Int("grace", 0, "")
	pos, err := parseFlags(fs, []string{"--grace", "60", "ID", "-o", "json"}, 1, "ID")
	if err != nil || len(pos) != 1 || pos[0] != "ID" || *out != "json" || *grace != 60 {
		t.Fatalf("got %v %v %q %d", pos, err, *out, *grace)
	}
	fs, _ = newFlags("keys get")
	if _, err := parseFlags(fs, []string{"a", "b"}, 1, "ID"); ExitCode(err) != ExitUsage {
		t.Errorf("two ids: %v", err)
	}
	fs, _ = newFlags("credentials create")
	if _, err := parseFlags(fs, []string{"--value", "s3cret"}, 0, ""); ExitCode(err) != ExitUsage || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("--value: %v", err)
	}
}

func TestReadSecretFromStdin(t *testing.T) {
	for in, want := range map[string]string{"abc\n": "abc", "abc\r\n": "abc", "abc": "abc", " a b \n": " a b "} {
		got, err := readSecret(Env{Stdin: strings.NewReader(in)}.withDefaults(), "value")
		if err != nil || got != want {
			t.Errorf("%q: got %q %v, want %q", in, got, err, want)
		}
	}
	if _, err := readSecret(Env{Stdin: strings.NewReader("\n")}.withDefaults(), "value"); ExitCode(err) != ExitUsage {
		t.Errorf("empty stdin: %v", err)
	}
}

func TestSessionNeedsLogin(t *testing.T) {
	env := Env{Getenv: func(string) string { return "" }, ConfigDir: t.TempDir(), HTTPClient: http.DefaultClient}.withDefaults()
	if _, err := (&session{env: env}).client(); !errors.Is(err, errNotLoggedIn) {
		t.Errorf("got %v, want not logged in", err)
	}
}
