package vault_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"credvault/internal/credvault"
	"credvault/vault"
	"credvault/vault/devtransit"
	"credvault/vault/vaulttest"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// batchRoundTrip encrypts n items through c, then decrypts and rewraps
// them, and checks every value comes back.
func batchRoundTrip(t *testing.T, c *vault.Client, n int) {
	t.Helper()
	ctx := context.Background()
	items := make([]vault.Item, n)
	for i := range items {
		items[i] = vault.Item{Plaintext: []byte(fmt.Sprintf("sk_split_%05d", i)), Context: ctxOf("o", fmt.Sprint(i))}
	}
	enc, err := c.EncryptBatch(ctx, items)
	if err != nil || len(enc) != n {
		t.Fatalf("EncryptBatch: %d results, %v", len(enc), err)
	}
	for i := range items {
		if enc[i].Err != nil {
			t.Fatalf("encrypt item %d: %v", i, enc[i].Err)
		}
		items[i].Ciphertext = enc[i].Ciphertext
	}
	rw, err := c.RewrapBatch(ctx, items)
	if err != nil || len(rw) != n {
		t.Fatalf("RewrapBatch: %d results, %v", len(rw), err)
	}
	dec, err := c.DecryptBatch(ctx, items)
	if err != nil || len(dec) != n {
		t.Fatalf("DecryptBatch: %d results, %v", len(dec), err)
	}
	for i := range items {
		if rw[i].Err != nil || dec[i].Err != nil || string(dec[i].Plaintext) != fmt.Sprintf("sk_split_%05d", i) {
			t.Fatalf("item %d: rewrap %v, decrypt %q %v", i, rw[i].Err, dec[i].Plaintext, dec[i].Err)
		}
	}
}

// TestDefaultBatchFitsOpenBaoLimit: 1,000 items through the dev transit
// server with OpenBao's default limit (1000 JSON strings) in force go
// through without a single refusal. Against a real server, its own limit.
func TestDefaultBatchFitsOpenBaoLimit(t *testing.T) {
	tg := vaulttest.Start(t)
	tg.CreateKey(t, "credvault", true)
	logs := &syncBuffer{}
	c, err := vault.New(context.Background(), vault.Config{Addr: tg.Addr, Token: credvault.NewSecret(tg.Token), Mount: tg.Mount, Key: "credvault",
		Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	batchRoundTrip(t, c, 1000)
	if strings.Contains(logs.String(), "JSON complexity") {
		t.Fatalf("the default batch size was refused:\n%s", logs.String())
	}
	// The largest allowed batch fits too.
	c2, err := vault.New(context.Background(), vault.Config{Addr: tg.Addr, Token: credvault.NewSecret(tg.Token), Mount: tg.Mount, Key: "credvault",
		BatchSize: vault.MaxBatch, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c2.Close)
	batchRoundTrip(t, c2, 2*vault.MaxBatch)
	if strings.Contains(logs.String(), "JSON complexity") {
		t.Fatalf("MaxBatch was refused:\n%s", logs.String())
	}
	for _, bad := range []int{-1, vault.MaxBatch + 1} {
		if _, err := vault.New(context.Background(), vault.Config{Addr: tg.Addr, Token: credvault.NewSecret(tg.Token), Mount: tg.Mount, Key: "credvault", BatchSize: bad}); err == nil ||
			!strings.Contains(err.Error(), "batch size must be from 1 to 249") {
			t.Errorf("BatchSize %d: err = %v", bad, err)
		}
	}
}

// TestRefusedBatchIsSplit: a server whose string limit is tighter than the
// client's batch refuses it (OpenBao's 400 and text); the client halves
// the batch until it passes, keeps the smaller size, logs once, and every
// item succeeds.
func TestRefusedBatchIsSplit(t *testing.T) {
	if vaulttest.Real() {
		t.Skip("needs the dev transit server's configurable JSON string limit (a real server's listener limit cannot be changed from a test)")
	}
	// 60 items with context: 1 + 60*4 = 241 strings.
	tg := vaulttest.StartDev(t, devtransit.Options{MaxRequestJSONStrings: 241})
	tg.CreateKey(t, "credvault", true)
	addr, calls := countingProxy(t, tg.Addr)
	logs := &syncBuffer{}
	c, err := vault.New(context.Background(), vault.Config{Addr: addr, Token: credvault.NewSecret(tg.Token), Mount: tg.Mount, Key: "credvault",
		BatchSize: 200, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx := context.Background()
	items := make([]vault.Item, 1000)
	for i := range items {
		items[i] = vault.Item{Plaintext: []byte(fmt.Sprintf("v%d", i)), Context: ctxOf("o", fmt.Sprint(i))}
	}
	enc, err := c.EncryptBatch(ctx, items)
	if err != nil || len(enc) != 1000 {
		t.Fatalf("EncryptBatch: %d results, %v", len(enc), err)
	}
	for i, r := range enc {
		if r.Err != nil {
			t.Fatalf("item %d: %v", i, r.Err)
		}
	}
	// 200 refused, 100 refused, 50+50, 100 refused, 50+50; then 16 x 50.
	if got := calls.Load(); got != 7+16 {
		t.Errorf("%d encrypt requests, want 23 (split once, then smaller batches)", got)
	}
	if n := strings.Count(logs.String(), "refused a batch for its JSON complexity"); n != 1 {
		t.Errorf("the split was logged %d times, want once:\n%s", n, logs.String())
	}
	batchRoundTrip(t, c, 300)
	if n := strings.Count(logs.String(), "refused a batch for its JSON complexity"); n != 1 {
		t.Errorf("logged %d times after more batches, want once", n)
	}
}

// TestVaultJSONLimitIsSplit: HashiCorp Vault's max_json_array_element_count
// refusal (500 "JSON array exceeds allowed element count") is split the
// same way. A proxy in front of the server applies that limit, so this
// runs against a real server too.
func TestVaultJSONLimitIsSplit(t *testing.T) {
	tg := vaulttest.Start(t)
	tg.CreateKey(t, "credvault", true)
	u, err := url.Parse(tg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 70
	var refused atomic.Int64
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var in struct {
			BatchInput []json.RawMessage `json:"batch_input"`
		}
		if json.Unmarshal(body, &in) == nil && len(in.BatchInput) > limit {
			refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"errors":["JSON array exceeds allowed element count"]}`)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := vault.New(context.Background(), vault.Config{Addr: srv.URL, Token: credvault.NewSecret(tg.Token), Mount: tg.Mount, Key: "credvault", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	batchRoundTrip(t, c, 500)
	// 200 refused, then both halves of 100; from then on 50 per request.
	// Vault's 500 is not retried: the same body would be refused again.
	if got := refused.Load(); got != 3 {
		t.Fatalf("the proxy refused %d requests, want 3 (one split of 200, then 50 per request, no retries)", got)
	}
}
