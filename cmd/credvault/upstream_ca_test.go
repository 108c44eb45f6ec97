package main

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"credvault/internal/bench"
)

// TestUpstreamCAFileIsValidatedAtStart: every wrong CREDVAULT_UPSTREAM_CA_FILE
// stops start-up with one line naming the variable.
func TestUpstreamCAFileIsValidatedAtStart(t *testing.T) {
	dir := t.TempDir()
	ca, err := bench.NewTestCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key, _ := os.ReadFile(ca.KeyFile)
	leaf, _ := os.ReadFile(ca.CertFile)
	caPEM, _ := os.ReadFile(ca.CAFile)
	for name, file := range map[string]string{
		"missing":     filepath.Join(dir, "nope.pem"),
		"empty":       write("empty.pem", ""),
		"not PEM":     write("text.pem", "hello"),
		"a key":       ca.KeyFile,
		"CA and key":  write("mixed.pem", string(caPEM)+string(key)),
		"not a CA":    write("leaf.pem", string(leaf)),
		"broken cert": write("broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
		"trailing":    write("trailing.pem", string(caPEM)+"junk"),
	} {
		_, err := loadConfig(envOf(map[string]string{"CREDVAULT_UPSTREAM_CA_FILE": file}))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "CREDVAULT_UPSTREAM_CA_FILE: ") || strings.Contains(msg, "\n") || strings.Contains(msg, "PRIVATE KEY-----") {
			t.Errorf("%s: error %q, want one line naming CREDVAULT_UPSTREAM_CA_FILE", name, msg)
		}
	}
	cfg, err := loadConfig(envOf(map[string]string{"CREDVAULT_UPSTREAM_CA_FILE": ca.CAFile}))
	if err != nil || cfg.UpstreamCAs == nil {
		t.Fatalf("a CA file: %v", err)
	}
}

// TestProxyTrustsUpstreamCAFile: an HTTPS upstream whose certificate comes
// from a private CA is refused (TLS failure, 502) until the CA is given in
// CREDVAULT_UPSTREAM_CA_FILE; then the credential reaches it, over HTTP/2
// and over HTTP/1.1.
func TestProxyTrustsUpstreamCAFile(t *testing.T) {
	ca, err := bench.NewTestCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(ca.CertFile, ca.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	serve := func(protos ...string) (string, *[]string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = append(seen, r.Proto+" "+r.Header.Get("Authorization"))
			_, _ = io.WriteString(w, `{"ok":true}`)
		}), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: protos}}
		go func() { _ = srv.ServeTLS(ln, "", "") }()
		t.Cleanup(func() { _ = srv.Close() })
		return "https://" + ln.Addr().String(), &seen
	}
	h2URL, h2Seen := serve("h2", "http/1.1")
	h1URL, h1Seen := serve("http/1.1")

	env := map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true"}
	cl := newCluster(t, env)
	plain := cl.start()
	env["CREDVAULT_UPSTREAM_CA_FILE"] = ca.CAFile
	cl2 := newCluster(t, env)
	trusting := cl2.start()
	_, owner := cl.bootstrap(plain, "plainca")
	_, owner2 := cl2.bootstrap(trusting, "trustca")
	const secret = "sk_private_upstream_0123456789"
	cred := func(c *cluster, inst *instance, key, base string) string {
		host := strings.TrimPrefix(base, "https://")
		return c.createCredential(inst, key, map[string]any{"name": "private " + host, "placement": "bearer", "value": secret,
			"base_url": base, "allowed_hosts": []string{host}})["id"].(string)
	}
	id := cred(cl, plain, owner, h2URL)
	r := cl.as(owner, "GET", plain.url+"/v1/proxy/"+id+"/v1/x", nil)
	if r.status != 502 || r.errCode(t) != "upstream_unreachable" || len(*h2Seen) != 0 {
		t.Fatalf("without the CA: %d %s, upstream saw %v; want 502 upstream_unreachable", r.status, string(r.body), *h2Seen)
	}
	for _, tc := range []struct {
		base  string
		seen  *[]string
		proto string
	}{{h2URL, h2Seen, "HTTP/2.0"}, {h1URL, h1Seen, "HTTP/1.1"}} {
		id := cred(cl2, trusting, owner2, tc.base)
		for range 2 {
			r := cl2.as(owner2, "GET", trusting.url+"/v1/proxy/"+id+"/v1/x", nil)
			if r.status != 200 || !strings.Contains(string(r.body), `"ok":true`) {
				t.Fatalf("%s with the CA: %d %s", tc.proto, r.status, string(r.body))
			}
		}
		if len(*tc.seen) != 2 || (*tc.seen)[0] != tc.proto+" Bearer "+secret {
			t.Errorf("upstream saw %v, want %s with the credential", *tc.seen, tc.proto)
		}
	}
}
