package injector

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"credvault/internal/credvault"
)

// TestConcurrentUse shares one Client between goroutines that use different
// credentials against two upstreams; every request must carry its own value
// and every response must come back scrubbed of it. Bounded: 16 workers x
// 25 calls, and a 20s deadline.
func TestConcurrentUse(t *testing.T) {
	// The upstream echoes the key it got in a header and the body, and
	// reports the key it got so the test can match them up.
	handler := func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-Api-Key")
		w.Header().Set("X-Echo", key)
		_ = json.NewEncoder(w).Encode(map[string]string{"key": key, "who": r.URL.Query().Get("who")})
	}
	ups := []*upstream{newUpstream(t, handler), newUpstream(t, handler)}
	client := testClient(t, ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	const workers, calls = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			value := fmt.Sprintf("key-of-worker-%02d-%s", w, strings.Repeat("k", w))
			up := ups[w%len(ups)]
			cred := credential("header", "X-Api-Key", "", ups[0].host(), ups[1].host())
			for i := range calls {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/c?who=%d-%d", up.url(), w, i), nil)
				resp, err := client.Do(req, cred, credvault.NewSecret(value))
				if err != nil {
					errs <- err
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					errs <- err
					return
				}
				want := fmt.Sprintf(`{"key":"[REDACTED]","who":"%d-%d"}`+"\n", w, i)
				if string(body) != want || resp.Header.Get("X-Echo") != redactedMark {
					errs <- fmt.Errorf("worker %d call %d: got %q (X-Echo %q), want %q", w, i, body, resp.Header.Get("X-Echo"), want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 0
	for _, up := range ups {
		for _, r := range up.requests() {
			var w, i int
			fmt.Sscanf(r.RawQuery, "who=%d-%d", &w, &i)
			if want := fmt.Sprintf("key-of-worker-%02d-%s", w, strings.Repeat("k", w)); r.Header.Get("X-Api-Key") != want {
				t.Errorf("request %s carried %q, want %q", r.RawQuery, r.Header.Get("X-Api-Key"), want)
			}
			total++
		}
	}
	if total != workers*calls {
		t.Errorf("upstreams got %d requests, want %d", total, workers*calls)
	}
}

// benchUpstream answers a small JSON body, like a typical API call.
func benchUpstream(b *testing.B) *upstream {
	b.Helper()
	body := []byte(`{"id":"ch_1","object":"charge","amount":2000,"currency":"usd","status":"succeeded"}`)
	return newUpstream(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
}

// BenchmarkClientDo measures a call through the injector: policy check,
// placement, the egress transport, header and body scrubbing.
func BenchmarkClientDo(b *testing.B) {
	up := benchUpstream(b)
	client := testClient(b, ClientOptions{})
	cred := credential("header", "X-Api-Key", "", up.host())
	value := credvault.NewSecret(testValue)
	target := up.url() + "/v1/charges?limit=1"
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, target, nil)
			resp, err := client.Do(req, cred, value)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkDirect is the same call with a plain http.Client (same
// connection pool size, the key set by hand), the baseline for
// BenchmarkClientDo.
func BenchmarkDirect(b *testing.B) {
	up := benchUpstream(b)
	tr := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	target := up.url() + "/v1/charges?limit=1"
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, target, nil)
			req.Header.Set("X-Api-Key", testValue)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkApply measures placement and the host check alone.
func BenchmarkApply(b *testing.B) {
	cred := credential("query", "api_key", "", "api.example.com", "*.example.org")
	value := credvault.NewSecret(testValue)
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodGet, "https://api.example.com/v1/x?a=1&b=2", nil)
		if err := Apply(req, cred, value); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScrubberReader measures scrubbing a 64 KiB body with no match.
func BenchmarkScrubberReader(b *testing.B) {
	s := NewScrubber(credvault.NewSecret(testValue))
	body := strings.Repeat(`{"id":"ch_1","amount":2000,"currency":"usd"},`, 1500)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r := s.Reader(io.NopCloser(strings.NewReader(body)))
		io.Copy(io.Discard, r)
		r.Close()
	}
}
