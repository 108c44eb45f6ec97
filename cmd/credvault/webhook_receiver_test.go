package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// verifyStandardWebhook checks a delivery the way the Standard Webhooks
// specification (standardwebhooks.com, "Verifying signatures") describes
// it, written here from the text rather than with the library credvault
// signs with: the three headers present; the timestamp within five
// minutes of now; the secret is the base64 after "whsec_"; the signed
// content is "<webhook-id>.<webhook-timestamp>.<body>"; the signature
// header holds space-separated "v1,<base64 HMAC-SHA256>" entries, one of
// which must match in constant time.
func verifyStandardWebhook(secret string, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("webhook-timestamp is not Unix seconds")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return errors.New("webhook-timestamp outside the 5-minute tolerance")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) == 0 {
		return errors.New("secret is not whsec_ base64")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(s, ",")
		if ok && version == "v1" && hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return errors.New("no v1 signature matches")
}

// received is one request the receiver got.
type received struct {
	header http.Header
	path   string
	body   []byte
	typ    string
	data   map[string]any
	at     time.Time
}

// receiver is a webhook endpoint on loopback that records every request;
// while down it answers 503 without reading further.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []received // every request, refused ones included
	ok  []received // requests answered 2xx
	// down makes it answer 503; redirect makes it answer 307 to itself;
	// hang makes it read the request and hold it unanswered until the
	// sender hangs up or releaseHeld answers it 204.
	down, redirect, hang bool
	attempts             int
	release              chan struct{}
	releaseOnce          sync.Once
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{release: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var p struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		_ = json.Unmarshal(body, &p)
		rec := received{header: req.Header.Clone(), path: req.URL.Path, body: body, typ: p.Type, data: p.Data, at: time.Now()}
		r.mu.Lock()
		r.attempts++
		r.got = append(r.got, rec)
		if r.hang {
			r.mu.Unlock()
			select {
			case <-req.Context().Done():
			case <-r.release:
				r.mu.Lock()
				r.ok = append(r.ok, rec)
				r.mu.Unlock()
				w.WriteHeader(http.StatusNoContent)
			}
			return
		}
		defer r.mu.Unlock()
		switch {
		case r.redirect:
			http.Redirect(w, req, "/elsewhere", http.StatusTemporaryRedirect)
		case r.down:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			r.ok = append(r.ok, rec)
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(func() {
		r.releaseHeld()
		r.srv.Close()
	})
	return r
}

// setHang makes the receiver hold the requests that come from now on
// unanswered (true) or answer again (false); held ones stay held.
func (r *receiver) setHang(hang bool) {
	r.mu.Lock()
	r.hang = hang
	r.mu.Unlock()
}

// releaseHeld answers the requests held so far 204.
func (r *receiver) releaseHeld() { r.releaseOnce.Do(func() { close(r.release) }) }

// waitRequests waits until the receiver has got n requests, answered or
// not (held ones included).
func (r *receiver) waitRequests(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for len(r.requests()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests reached the receiver within %v, want %d", len(r.requests()), timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// requests returns every request so far, answered or not.
func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func (r *receiver) setDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

// delivered returns the 2xx-answered requests so far.
func (r *receiver) delivered() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.ok...)
}

// waitFor waits until cond holds over the delivered requests.
func (r *receiver) waitFor(t *testing.T, what string, timeout time.Duration, cond func([]received) bool) []received {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := r.delivered()
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			types := []string{}
			for _, g := range got {
				types = append(types, g.typ)
			}
			t.Fatalf("waiting for %s: %d delivered (%v)", what, len(got), types)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ofType is a condition: at least n deliveries of typ.
func ofType(typ string, n int) func([]received) bool {
	return func(got []received) bool {
		c := 0
		for _, g := range got {
			if g.typ == typ {
				c++
			}
		}
		return c >= n
	}
}

// distinctIDs is a condition: deliveries under at least n webhook-ids.
func distinctIDs(n int) func([]received) bool {
	return func(got []received) bool {
		seen := map[string]bool{}
		for _, g := range got {
			seen[g.header.Get("webhook-id")] = true
		}
		return len(seen) >= n
	}
}
