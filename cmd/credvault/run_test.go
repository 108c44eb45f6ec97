package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"credvault/internal/credvault"
	"credvault/internal/postgres/pgtest"
	"credvault/vault"
	"credvault/vault/vaulttest"
)

// lineBuffer is a goroutine-safe writer that tests can wait on.
type lineBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls the buffer until re matches, returning the first group.
func (b *lineBuffer) waitFor(t *testing.T, re *regexp.Regexp, errc <-chan error) string {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-errc:
			t.Fatalf("run ended before %s: %v", re, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("timed out waiting for %s; output so far:\n%s", re, b.String())
	return ""
}

var listeningRe = regexp.MustCompile(`credvault listening on (http://\S+)`)

// started is a credvault run in the background.
type started struct {
	url    string
	stdout *lineBuffer
	stderr *lineBuffer
	stop   func() error
}

func startRun(t *testing.T, env map[string]string, cmd string) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{stdout: &lineBuffer{}, stderr: &lineBuffer{}}
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, []string{"credvault", cmd}, envOf(env), s.stdout, s.stderr) }()
	var once sync.Once
	var result error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-errc:
			case <-time.After(60 * time.Second):
				// Every goroutine's stack, so that what holds the
				// shutdown is named in the log of the run that saw it.
				var stacks bytes.Buffer
				_ = pprof.Lookup("goroutine").WriteTo(&stacks, 2)
				t.Fatalf("run did not stop within 60s after cancel; goroutines:\n%s", stacks.String())
			}
		})
		return result
	}
	t.Cleanup(func() { _ = s.stop() })
	s.url = s.stdout.waitFor(t, listeningRe, errc)
	return s
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeEndToEnd(t *testing.T) {
	_, dbURL := pgtest.New(t)
	tg := vaulttest.Start(t)
	tg.CreateKey(t, "credvault", true)
	tg.CreateSigningKey(t, "credvault-jwt")
	s := startRun(t, map[string]string{
		"CREDVAULT_ADDR": "127.0.0.1:0", "DATABASE_URL": dbURL,
		"VAULT_ADDR": tg.Addr, "VAULT_TOKEN": tg.Token, "CREDVAULT_TRANSIT_MOUNT": tg.Mount,
		"CREDVAULT_LOG_LEVEL": "debug",
	}, "serve")
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/nothing": 404, "/v1/whoami": 401} {
		if code, body := get(t, s.url+path); code != want {
			t.Errorf("GET %s = %d, want %d: %s", path, code, want, body)
		}
	}
	if err := s.stop(); err != nil {
		t.Fatalf("serve after SIGTERM: %v", err)
	}
	logs := s.stderr.String()
	if strings.Contains(logs, tg.Token) || strings.Contains(logs, dbURL) {
		t.Fatalf("logs hold the vault token or the database URL:\n%s", logs)
	}
}

func TestServeRefusesNonDerivedKey(t *testing.T) {
	_, dbURL := pgtest.New(t)
	tg := vaulttest.Start(t)
	tg.CreateKey(t, "plain", false)
	env := map[string]string{
		"CREDVAULT_ADDR": "127.0.0.1:0", "DATABASE_URL": dbURL,
		"VAULT_ADDR": tg.Addr, "VAULT_TOKEN": tg.Token, "CREDVAULT_TRANSIT_MOUNT": tg.Mount,
	}
	for key, want := range map[string]string{"plain": "is not derived", "absent": "not found"} {
		env["CREDVAULT_TRANSIT_KEY"] = key
		err := run(context.Background(), []string{"credvault", "serve"}, envOf(env), io.Discard, io.Discard)
		msg := cliMessage(err)
		if err == nil || !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
			t.Errorf("key %s: err = %q, want one line containing %q", key, msg, want)
		}
	}
	// serve never creates the key.
	if s, _ := tg.API.Logical().Read(tg.Mount + "/keys/absent"); s != nil {
		t.Errorf("serve created the missing transit key")
	}
}

// TestServeRefusesBadSigningKey: serve checks the JWT signing key at
// start like the encryption key: missing, or not a non-derived ed25519
// key, is one line naming it, and serve never creates it.
func TestServeRefusesBadSigningKey(t *testing.T) {
	_, dbURL := pgtest.New(t)
	tg := vaulttest.Start(t)
	tg.CreateKey(t, "credvault", true)
	tg.CreateKey(t, "aes", false)
	tg.CreateKey(t, "derived", true)
	env := map[string]string{
		"CREDVAULT_ADDR": "127.0.0.1:0", "DATABASE_URL": dbURL,
		"VAULT_ADDR": tg.Addr, "VAULT_TOKEN": tg.Token, "CREDVAULT_TRANSIT_MOUNT": tg.Mount,
	}
	for key, want := range map[string]string{"absent": "not found", "aes": "ed25519", "derived": "ed25519"} {
		env["CREDVAULT_SIGNING_KEY"] = key
		err := run(context.Background(), []string{"credvault", "serve"}, envOf(env), io.Discard, io.Discard)
		msg := cliMessage(err)
		if err == nil || !strings.Contains(msg, want) || !strings.Contains(msg, `"`+key+`"`) || strings.Contains(msg, "\n") {
			t.Errorf("signing key %s: err = %q, want one line naming it, containing %q", key, msg, want)
		}
	}
	if s, _ := tg.API.Logical().Read(tg.Mount + "/keys/absent"); s != nil {
		t.Errorf("serve created the missing signing key")
	}
}

func TestMigrateCommand(t *testing.T) {
	dbURL := pgtest.NewEmpty(t)
	env := envOf(map[string]string{"DATABASE_URL": dbURL})
	var out bytes.Buffer
	if err := run(context.Background(), []string{"credvault", "migrate", "status"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "0001_init\tpending") {
		t.Fatalf("status before: %s", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"credvault", "migrate", "up"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "migration(s) applied") {
		t.Fatalf("up: %s", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"credvault", "migrate", "status"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "pending") || !strings.Contains(out.String(), "0001_init\tapplied") {
		t.Fatalf("status after: %s", out.String())
	}
}

var devVaultRe = regexp.MustCompile(`Vault:\s+(http://\S+) \(built-in`)

// TestDevRestartStillDecrypts runs `credvault dev` twice on one data
// directory: a value encrypted through its dev transit server before the
// restart decrypts after it.
func TestDevRestartStillDecrypts(t *testing.T) {
	if vaulttest.Real() {
		t.Skip("exercises the built-in dev transit server")
	}
	_, dbURL := pgtest.New(t)
	dataDir := t.TempDir()
	env := map[string]string{"CREDVAULT_ADDR": "127.0.0.1:0", "DATABASE_URL": dbURL, "CREDVAULT_DATA_DIR": dataDir}
	secret := []byte("sk_live_before_restart")
	derivation := []byte("org:o1|cred:c1")

	var ciphertext string
	for round := range 2 {
		s := startRun(t, env, "dev")
		if code, body := get(t, s.url+"/readyz"); code != 200 {
			t.Fatalf("round %d: readyz %d %s", round, code, body)
		}
		vaultAddr := devVaultRe.FindStringSubmatch(s.stdout.String())[1]
		token, err := os.ReadFile(filepath.Join(dataDir, "vault.token"))
		if err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(filepath.Join(dataDir, "vault.token")); fi.Mode().Perm() != 0o600 {
			t.Fatalf("vault.token mode %v, want 0600", fi.Mode().Perm())
		}
		c, err := vault.New(context.Background(), vault.Config{Addr: vaultAddr, Token: credvault.NewSecret(strings.TrimSpace(string(token))), Mount: "transit", Key: "credvault"})
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			ciphertext, err = c.Encrypt(context.Background(), secret, derivation)
			if err != nil {
				t.Fatal(err)
			}
		} else {
			got, err := c.Decrypt(context.Background(), ciphertext, derivation)
			if err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("after restart: %q, %v", got, err)
			}
		}
		c.Close()
		if err := s.stop(); err != nil {
			t.Fatalf("round %d: dev after Ctrl-C: %v", round, err)
		}
	}
}

// TestDevPrivateClusterReadiness is `make dev` on a machine with no
// DATABASE_URL: it creates its own cluster, /readyz follows that cluster
// going down and coming back, and Ctrl-C stops it.
func TestDevPrivateClusterReadiness(t *testing.T) {
	if testing.Short() {
		t.Skip("creates a PostgreSQL cluster")
	}
	if _, err := findPGBin(); err != nil {
		t.Skipf("no PostgreSQL server binaries: %v", err)
	}
	dataDir := t.TempDir() // mode 0700: as root, the cluster goes where postgres can reach it
	s := startRun(t, map[string]string{"CREDVAULT_ADDR": "127.0.0.1:0", "CREDVAULT_DATA_DIR": dataDir}, "dev")
	removeRootCluster(t, dataDir)
	pgDir, err := filepath.EvalSymlinks(filepath.Join(dataDir, "pg"))
	if err != nil {
		t.Fatal(err)
	}
	pg := &privatePG{dir: pgDir, log: nil}
	if pg.bin, err = findPGBin(); err != nil {
		t.Fatal(err)
	}
	if pg.runAs, err = unprivilegedUser(); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, s.url+"/readyz"); code != 200 {
		t.Fatalf("readyz = %d %s", code, body)
	}
	if err := pg.pgctl("stop", "-m", "fast", "-w"); err != nil {
		t.Fatalf("pg_ctl stop: %v", err)
	}
	// The instance serves from its caches: the load balancer's check stays
	// 200 naming postgres; the strict form is 503.
	waitStatus(t, s.url+"/readyz", 200, `"degraded":["postgres"]`, 5*time.Second)
	waitStatus(t, s.url+"/readyz?strict=1", 503, "postgres", 5*time.Second)
	if err := pg.pgctl("start", "-w", "-l", filepath.Join(pgDir, "server.log")); err != nil {
		t.Fatalf("pg_ctl start: %v", err)
	}
	waitStatus(t, s.url+"/readyz?strict=1", 200, "", 5*time.Second)
	if err := s.stop(); err != nil {
		t.Fatalf("dev after Ctrl-C: %v", err)
	}
	// Ctrl-C stops the cluster dev started.
	if err := pg.pgctl("status"); err == nil {
		_ = pg.pgctl("stop", "-m", "immediate", "-w")
		t.Fatalf("private postgres still runs after dev stopped")
	}
}

func waitStatus(t *testing.T, url string, want int, mention string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var code int
	var body string
	for time.Now().Before(deadline) {
		code, body = get(t, url)
		if code == want && strings.Contains(body, mention) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %d %s; want %d mentioning %q within %s", url, code, body, want, mention, within)
}
