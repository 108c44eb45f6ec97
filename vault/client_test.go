package vault_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"credvault/internal/credvault"
	"credvault/vault"
	"credvault/vault/devtransit"
	"credvault/vault/vaulttest"
)

// newClient returns a client on a fresh derived key of a fresh target.
func newClient(t *testing.T) (*vault.Client, *vaulttest.Target) {
	t.Helper()
	tg := vaulttest.Start(t)
	tg.CreateKey(t, "credvault", true)
	return clientFor(t, tg.Addr, tg.Token, tg.Mount, "credvault"), tg
}

func clientFor(t *testing.T, addr, token, mount, key string) *vault.Client {
	t.Helper()
	c, err := vault.New(context.Background(), vault.Config{
		Addr: addr, Token: credvault.NewSecret(token), Mount: mount, Key: key, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("vault.New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// countingProxy sits between the client and Vault and counts requests to
// transit paths, to prove which errors are retried.
func countingProxy(t *testing.T, target string) (string, *atomic.Int64) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/decrypt/") || strings.Contains(r.URL.Path, "/encrypt/") {
			n.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &n
}

func ctxOf(org, cred string) []byte { return []byte("org:" + org + "|cred:" + cred) }

func TestEncryptDecryptRoundTrip(t *testing.T) {
	c, _ := newClient(t)
	ctx := context.Background()
	for _, pt := range [][]byte{[]byte("sk_live_abc"), {}, []byte(strings.Repeat("ü", 3000))} {
		ct, err := c.Encrypt(ctx, pt, ctxOf("o1", "c1"))
		if err != nil {
			t.Fatalf("Encrypt: %v", err)
		}
		if v, err := credvault.CiphertextVersion(ct); err != nil || v != 1 {
			t.Fatalf("ciphertext %q: version %d, err %v; want vault:v1:", ct, v, err)
		}
		got, err := c.Decrypt(ctx, ct, ctxOf("o1", "c1"))
		if err != nil || string(got) != string(pt) {
			t.Fatalf("Decrypt = %q, %v; want the plaintext", got, err)
		}
	}
}

func TestRejectedCiphertextIsDistinctAndNotRetried(t *testing.T) {
	c0, tg := newClient(t)
	ctx := context.Background()
	ct, err := c0.Encrypt(ctx, []byte("value"), ctxOf("o1", "c1"))
	if err != nil {
		t.Fatal(err)
	}
	proxy, count := countingProxy(t, tg.Addr)
	c := clientFor(t, proxy, tg.Token, tg.Mount, "credvault")

	raw := strings.TrimPrefix(ct, "vault:v1:")
	tampered := "vault:v1:" + flipBase64(raw)
	cases := map[string]struct {
		ct  string
		ctx []byte
	}{
		"wrong context (row moved to another credential)": {ct, ctxOf("o1", "c2")},
		"wrong context (another org)":                     {ct, ctxOf("o2", "c1")},
		"tampered ciphertext":                             {tampered, ctxOf("o1", "c1")},
		"not base64":                                      {"vault:v1:!!!notbase64", ctxOf("o1", "c1")},
		"version too new":                                 {"vault:v9:" + raw, ctxOf("o1", "c1")},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := count.Load()
			_, err := c.Decrypt(ctx, tc.ct, tc.ctx)
			if !errors.Is(err, vault.ErrIntegrity) {
				t.Fatalf("err = %v, want ErrIntegrity", err)
			}
			if errors.Is(err, vault.ErrUnavailable) || credvault.ErrorCode(err) == credvault.EUNAVAILABLE {
				t.Fatalf("a rejected ciphertext must not look like an outage: %v", err)
			}
			if n := count.Load() - before; n != 1 {
				t.Fatalf("requests sent = %d, want 1 (never retried)", n)
			}
		})
	}
}

func flipBase64(s string) string {
	b := []byte(s)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestBatchCarriesPerItemErrors(t *testing.T) {
	c, _ := newClient(t)
	ctx := context.Background()
	const n = vault.MaxBatch + 250 // two requests
	items := make([]vault.Item, n)
	for i := range items {
		items[i] = vault.Item{Plaintext: []byte(fmt.Sprintf("secret-%d", i)), Context: ctxOf("o", fmt.Sprint(i))}
	}
	enc, err := c.EncryptBatch(ctx, items)
	if err != nil {
		t.Fatalf("EncryptBatch: %v", err)
	}
	if len(enc) != n {
		t.Fatalf("%d results, want %d", len(enc), n)
	}
	for i := range items {
		if enc[i].Err != nil {
			t.Fatalf("item %d: %v", i, enc[i].Err)
		}
		items[i].Ciphertext = enc[i].Ciphertext
	}
	items[7].Context = ctxOf("o", "someone-else") // one bad item
	dec, err := c.DecryptBatch(ctx, items)
	if err != nil {
		t.Fatalf("DecryptBatch: %v (a bad item must not fail the whole batch)", err)
	}
	for i := range items {
		if i == 7 {
			if !errors.Is(dec[i].Err, vault.ErrIntegrity) {
				t.Fatalf("item 7: err = %v, want ErrIntegrity", dec[i].Err)
			}
			continue
		}
		if dec[i].Err != nil || string(dec[i].Plaintext) != fmt.Sprintf("secret-%d", i) {
			t.Fatalf("item %d: %q, %v", i, dec[i].Plaintext, dec[i].Err)
		}
	}
}

func TestRotateRewrapAndRetireOldVersion(t *testing.T) {
	c, _ := newClient(t)
	ctx := context.Background()
	old, err := c.Encrypt(ctx, []byte("v"), ctxOf("o", "1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RotateKey(ctx); err != nil {
		t.Fatal(err)
	}
	ki, err := c.ReadKey(ctx)
	if err != nil || ki.LatestVersion != 2 || !ki.Derived {
		t.Fatalf("ReadKey = %+v, %v; want latest 2, derived", ki, err)
	}
	single, err := c.Rewrap(ctx, old, ctxOf("o", "1"))
	if err != nil || !strings.HasPrefix(single, "vault:v2:") {
		t.Fatalf("Rewrap = %q, %v", single, err)
	}
	res, err := c.RewrapBatch(ctx, []vault.Item{
		{Ciphertext: old, Context: ctxOf("o", "1")},
		{Ciphertext: old, Context: ctxOf("o", "2")}, // wrong context
	})
	if err != nil {
		t.Fatalf("RewrapBatch: %v", err)
	}
	if res[0].Err != nil || res[0].KeyVersion != 2 || !strings.HasPrefix(res[0].Ciphertext, "vault:v2:") {
		t.Fatalf("item 0: %+v", res[0])
	}
	if !errors.Is(res[1].Err, vault.ErrIntegrity) {
		t.Fatalf("item 1: err = %v, want ErrIntegrity", res[1].Err)
	}
	if err := c.SetMinDecryptionVersion(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decrypt(ctx, old, ctxOf("o", "1")); !errors.Is(err, vault.ErrIntegrity) {
		t.Fatalf("v1 after min_decryption_version=2: err = %v, want ErrIntegrity", err)
	}
	if got, err := c.Decrypt(ctx, single, ctxOf("o", "1")); err != nil || string(got) != "v" {
		t.Fatalf("rewrapped value: %q, %v", got, err)
	}
}

func TestCheckKey(t *testing.T) {
	tg := vaulttest.Start(t)
	tg.CreateKey(t, "derived", true)
	tg.CreateKey(t, "plain", false)
	ctx := context.Background()

	if err := clientFor(t, tg.Addr, tg.Token, tg.Mount, "derived").CheckKey(ctx); err != nil {
		t.Fatalf("derived key: %v", err)
	}
	err := clientFor(t, tg.Addr, tg.Token, tg.Mount, "plain").CheckKey(ctx)
	if credvault.ErrorCode(err) != credvault.EINVALID || !strings.Contains(err.Error(), "not derived") {
		t.Fatalf("plain key: err = %v, want EINVALID 'not derived'", err)
	}
	err = clientFor(t, tg.Addr, tg.Token, tg.Mount, "missing").CheckKey(ctx)
	if !errors.Is(err, vault.ErrKeyNotFound) || !strings.Contains(err.Error(), "derived=true") {
		t.Fatalf("missing key: err = %v, want ErrKeyNotFound with the command to create it", err)
	}
	wantHint(t, "missing key", err, tg.Mount, "missing")

	// Under the least-privilege policy a mistyped name answers 403 (the
	// policy names only the real key). A proxy plays that policy, so this
	// runs against a real server too.
	u, _ := url.Parse(tg.Addr)
	rp := httputil.NewSingleHostReverseProxy(u)
	policy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/"+tg.Mount+"/keys/typo" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"errors":["1 error occurred:\n\t* permission denied\n\n"]}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(policy.Close)
	err = clientFor(t, policy.URL, tg.Token, tg.Mount, "typo").CheckKey(ctx)
	if !errors.Is(err, vault.ErrPermissionDenied) {
		t.Fatalf("unreadable key: err = %v, want ErrPermissionDenied", err)
	}
	wantHint(t, "unreadable key", err, tg.Mount, "typo")
}

// wantHint checks a start-up error names both possibilities (missing, not
// readable), the key and mount, and the command that creates the key.
func wantHint(t *testing.T, what string, err error, mount, key string) {
	t.Helper()
	msg := credvault.ErrorMessage(err)
	for _, want := range []string{"is missing, or credvault's token may not read it", fmt.Sprintf("%q", key), fmt.Sprintf("%q", mount),
		fmt.Sprintf("vault write -f %s/keys/%s derived=true", mount, key), "vault/policy.hcl", "CREDVAULT_TRANSIT_KEY"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%s: message %q lacks %q", what, msg, want)
		}
	}
}

func TestEnsureKeyCreatesMountAndDerivedKey(t *testing.T) {
	tg := vaulttest.Start(t)
	mount := tg.Mount + "-ensure"
	t.Cleanup(func() { _ = tg.API.Sys().Unmount(mount) })
	c := clientFor(t, tg.Addr, tg.Token, mount, "credvault")
	ctx := context.Background()
	for range 2 { // idempotent
		if err := c.EnsureKey(ctx); err != nil {
			t.Fatalf("EnsureKey: %v", err)
		}
	}
	ki, err := c.ReadKey(ctx)
	if err != nil || !ki.Derived || ki.LatestVersion != 1 {
		t.Fatalf("ReadKey = %+v, %v", ki, err)
	}
}

func TestHealthAndOutages(t *testing.T) {
	c, tg := newClient(t)
	ctx := context.Background()
	if err := c.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}
	if tg.Dev != nil {
		tg.Dev.Seal()
		for name, err := range map[string]error{
			"health":  c.Health(ctx),
			"encrypt": func() error { _, err := c.Encrypt(ctx, []byte("x"), ctxOf("o", "1")); return err }(),
		} {
			if !errors.Is(err, vault.ErrUnavailable) || credvault.ErrorCode(err) != credvault.EUNAVAILABLE {
				t.Errorf("sealed %s: err = %v, want EUNAVAILABLE", name, err)
			}
		}
		tg.Dev.Unseal()
		if err := c.Health(ctx); err != nil {
			t.Fatalf("Health after unseal: %v", err)
		}
	}

	// Nothing listens on this loopback port any more.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	_, err := vault.New(ctx, vault.Config{Addr: dead, Token: credvault.NewSecret("t"), Mount: "transit", Key: "k"})
	if !errors.Is(err, vault.ErrUnavailable) || credvault.ErrorCode(err) != credvault.EUNAVAILABLE {
		t.Fatalf("unreachable: err = %v, want EUNAVAILABLE", err)
	}
}

func TestBadTokenIsRefused(t *testing.T) {
	tg := vaulttest.Start(t)
	_, err := vault.New(context.Background(), vault.Config{
		Addr: tg.Addr, Token: credvault.NewSecret("not-the-token"), Mount: tg.Mount, Key: "k",
	})
	if !errors.Is(err, vault.ErrPermissionDenied) {
		t.Fatalf("err = %v, want ErrPermissionDenied", err)
	}
	if strings.Contains(fmt.Sprint(err), "not-the-token") {
		t.Fatalf("error shows the token: %v", err)
	}
}

// TestAppRoleReloginWhenTokenEnds uses short-lived AppRole tokens on the dev
// transit server: the client must renew, then log in again when the token
// reaches its max TTL, without callers noticing.
func TestAppRoleReloginWhenTokenEnds(t *testing.T) {
	if vaulttest.Real() {
		t.Skip("needs an AppRole with second-scale TTLs; runs against the dev transit server only")
	}
	srv, err := devtransit.New(devtransit.Options{
		Token: "root", DataDir: t.TempDir(),
		AppRole: &devtransit.AppRole{RoleID: "role-1", SecretID: "secret-1", TokenTTL: 1 * time.Second, TokenMaxTTL: 2 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := "http://" + ln.Addr().String()
	root := clientFor(t, addr, "root", "transit", "credvault")
	if err := root.EnsureKey(context.Background()); err != nil {
		t.Fatal(err)
	}

	c, err := vault.New(context.Background(), vault.Config{
		Addr: addr, RoleID: "role-1", SecretID: credvault.NewSecret("secret-1"), Mount: "transit", Key: "credvault",
	})
	if err != nil {
		t.Fatalf("approle login: %v", err)
	}
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second) // beyond two max TTLs
	for time.Now().Before(deadline) {
		if _, err := c.Encrypt(context.Background(), []byte("x"), ctxOf("o", "1")); err != nil {
			t.Fatalf("encrypt at %s: %v", time.Until(deadline), err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	_, err = vault.New(context.Background(), vault.Config{
		Addr: addr, RoleID: "role-1", SecretID: credvault.NewSecret("wrong"), Mount: "transit", Key: "credvault",
	})
	if err == nil || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("bad secret id: err = %v, want a refusal that does not echo it", err)
	}
}
