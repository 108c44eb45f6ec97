package main

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"credvault/internal/bench"
)

// TestUpstreamHTTP2Setting: CREDVAULT_UPSTREAM_HTTP2 is true unless set
// false; a value that is not a boolean stops start-up with one line naming
// the variable.
func TestUpstreamHTTP2Setting(t *testing.T) {
	for v, http1Only := range map[string]bool{"": false, "true": false, "1": false, "false": true, "FALSE": true, "0": true} {
		cfg, err := loadConfig(envOf(map[string]string{"CREDVAULT_UPSTREAM_HTTP2": v}))
		if err != nil || cfg.UpstreamHTTP1Only != http1Only {
			t.Errorf("%q: HTTP/1.1 only %v (%v), want %v", v, cfg.UpstreamHTTP1Only, err, http1Only)
		}
	}
	_, err := loadConfig(envOf(map[string]string{"CREDVAULT_UPSTREAM_HTTP2": "h2"}))
	if err == nil || err.Error() != `CREDVAULT_UPSTREAM_HTTP2: "h2" is not true or false` {
		t.Fatalf("got %v, want one line naming CREDVAULT_UPSTREAM_HTTP2", err)
	}
}

// TestProxyUpstreamHTTP2Off: with CREDVAULT_UPSTREAM_HTTP2=false, an
// https:// upstream that offers HTTP/2 is called over HTTP/1.1 (the direct
// transport), with the credential; by default it gets HTTP/2
// (TestProxyTrustsUpstreamCAFile).
func TestProxyUpstreamHTTP2Off(t *testing.T) {
	ca, err := bench.NewTestCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(ca.CertFile, ca.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Proto+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	cl := newCluster(t, map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true", "CREDVAULT_UPSTREAM_CA_FILE": ca.CAFile,
		"CREDVAULT_UPSTREAM_HTTP2": "false"})
	inst := cl.start()
	_, owner := cl.bootstrap(inst, "http1only")
	const secret = "sk_http1_upstream_0123456789"
	host := strings.TrimPrefix(srv.URL, "https://")
	id := cl.createCredential(inst, owner, map[string]any{"name": "h2 upstream", "placement": "bearer", "value": secret,
		"base_url": srv.URL, "allowed_hosts": []string{host}})["id"].(string)
	for range 2 {
		r := cl.as(owner, "GET", inst.url+"/v1/proxy/"+id+"/v1/x", nil)
		if r.status != 200 || !strings.Contains(string(r.body), `"ok":true`) {
			t.Fatalf("%d %s", r.status, string(r.body))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != "HTTP/1.1 Bearer "+secret || seen[1] != seen[0] {
		t.Fatalf("upstream saw %v, want HTTP/1.1 with the credential twice", seen)
	}
}
