package main

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkProxy compares a call through /v1/proxy (auth, credential from
// the value cache, injection, egress checks, scrubbing, usage record) with
// a direct call to the same loopback upstream. Compare the two ns/op as a
// ratio; absolute figures depend on the machine.
func BenchmarkProxy(b *testing.B) {
	cl := newCluster(b, map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true", "CREDVAULT_LOG_LEVEL": "warn"})
	a := cl.start()
	_, owner := cl.bootstrap(a, "bench")
	up := newUpstream(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"balance","available":[{"amount":1000,"currency":"usd"}]}`)
	})
	id := cl.createCredential(a, owner, map[string]any{"name": "bench", "placement": "bearer", "value": "sk_bench_0123456789",
		"base_url": up.URL, "allowed_hosts": []string{up.HostP}})["id"].(string)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	run := func(b *testing.B, url string, key string) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest("GET", url, nil)
				if key != "" {
					req.Header.Set("X-API-Key", key)
				}
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
	b.Run("direct", func(b *testing.B) { run(b, up.URL+"/v1/balance", "") })
	b.Run("proxy", func(b *testing.B) { run(b, a.url+"/v1/proxy/"+id+"/v1/balance", owner) })
}
