package devtransit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

const testRootToken = "devtransit-test-root"

// realServer reports whether the tests run against a real Vault/OpenBao
// (VAULT_ADDR and VAULT_TOKEN set) instead of the in-process server.
func realServer() bool { return os.Getenv("VAULT_ADDR") != "" && os.Getenv("VAULT_TOKEN") != "" }

// target returns the address and root token of the server under test: a
// fresh in-process devtransit server on loopback by default, or the real
// Vault/OpenBao named by VAULT_ADDR and VAULT_TOKEN.
func target(t *testing.T) (addr, token string) {
	t.Helper()
	if realServer() {
		addr = os.Getenv("VAULT_ADDR")
		u, err := url.Parse(addr)
		if err != nil {
			t.Fatalf("VAULT_ADDR %q: %v", addr, err)
		}
		if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			t.Fatalf("VAULT_ADDR %q: tests only talk to loopback addresses", addr)
		}
		return addr, os.Getenv("VAULT_TOKEN")
	}
	_, addr = startLocal(t, Options{Token: testRootToken})
	return addr, testRootToken
}

// localOnly skips a test that needs the in-process server's test hooks.
func localOnly(t *testing.T, why string) {
	t.Helper()
	if realServer() {
		t.Skipf("needs the in-process devtransit server (%s); VAULT_ADDR points at a real server", why)
	}
}

// startLocal runs a devtransit server over real HTTP on loopback.
func startLocal(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	if opts.Token == "" {
		opts.Token = testRootToken
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	hs := httptest.NewServer(s.Handler()) // binds 127.0.0.1
	t.Cleanup(hs.Close)
	return s, hs.URL
}

// newClient builds a real vault/api client with no retries.
func newClient(t *testing.T, addr, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.MaxRetries = 0
	cfg.Timeout = 30 * time.Second
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatalf("api.NewClient: %v", err)
	}
	c.SetToken(token)
	return c
}

// tenv is one test's view of the server: a client and a transit mount of
// its own.
type tenv struct {
	c     *api.Client
	mount string
}

// setup enables transit at a unique cvtest-<random> mount on the server
// under test and disables it when the test ends.
func setup(t *testing.T, c *api.Client) *tenv {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	mount := "cvtest-" + hex.EncodeToString(b)
	ctx := context.Background()
	if err := c.Sys().MountWithContext(ctx, mount, &api.MountInput{Type: "transit"}); err != nil {
		t.Fatalf("enabling transit at %s: %v", mount, err)
	}
	t.Cleanup(func() {
		if err := c.Sys().UnmountWithContext(context.Background(), mount); err != nil {
			t.Errorf("disabling %s: %v", mount, err)
		}
	})
	return &tenv{c: c, mount: mount}
}

// write calls Logical().WriteWithContext on a path below the test mount.
func (e *tenv) write(t *testing.T, path string, data map[string]any) (*api.Secret, error) {
	t.Helper()
	return e.c.Logical().WriteWithContext(context.Background(), e.mount+"/"+path, data)
}

// mustWrite is write that fails the test on error.
func (e *tenv) mustWrite(t *testing.T, path string, data map[string]any) *api.Secret {
	t.Helper()
	s, err := e.write(t, path, data)
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return s
}

// rawResult is a response read through RawRequestWithContext.
type rawResult struct {
	status int
	body   map[string]any
	text   string
}

// raw sends a request through the client's RawRequestWithContext so the
// exact status and body can be checked. path is below /v1/.
func raw(t *testing.T, c *api.Client, method, path string, body any) rawResult {
	t.Helper()
	r := c.NewRequest(method, "/v1/"+path)
	if body != nil {
		if err := r.SetJSONBody(body); err != nil {
			t.Fatalf("SetJSONBody: %v", err)
		}
	}
	//lint:ignore SA1019 any method, with the exact status and body, is the point of this helper
	resp, err := c.RawRequestWithContext(context.Background(), r)
	if resp == nil {
		t.Fatalf("%s %s: no response: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, rerr := io.ReadAll(resp.Body)
	if rerr != nil {
		t.Fatalf("reading body: %v", rerr)
	}
	out := rawResult{status: resp.StatusCode, text: string(b)}
	if len(bytes.TrimSpace(b)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&out.body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v: %s", method, path, err, b)
		}
	}
	return out
}

// errorsOf returns the top-level "errors" list of a body, or nil.
func errorsOf(body map[string]any) []string {
	list, ok := body["errors"].([]any)
	if !ok {
		return nil
	}
	out := make([]string, len(list))
	for i, v := range list {
		out[i], _ = v.(string)
	}
	return out
}

// wantAPIError checks that err is a Vault API error with this status and
// exactly these error texts.
func wantAPIError(t *testing.T, err error, status int, msgs ...string) {
	t.Helper()
	var re *api.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("got error %v, want *api.ResponseError %d %q", err, status, msgs)
	}
	if re.StatusCode != status {
		t.Errorf("got status %d, want %d (errors %q)", re.StatusCode, status, re.Errors)
	}
	if len(re.Errors) != len(msgs) {
		t.Fatalf("got errors %q, want %q", re.Errors, msgs)
	}
	for i := range msgs {
		if re.Errors[i] != msgs[i] {
			t.Errorf("got error %q, want %q", re.Errors[i], msgs[i])
		}
	}
}

// fakeClock is a settable clock for the in-process server.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func debugLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// num reads a JSON number the way the api client returns it.
func num(t *testing.T, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("got %T %v, want json.Number", v, v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("json.Number %v: %v", n, err)
	}
	return i
}

// clone copies a client without its token.
func clone(t *testing.T, c *api.Client) *api.Client {
	t.Helper()
	cl, err := c.Clone()
	if err != nil {
		t.Fatalf("Clone: %v", err)
	}
	cl.ClearToken()
	return cl
}
