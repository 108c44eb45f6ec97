package main

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestProxyResponseFraming: a proxied response of known length up to the
// buffering bound goes back in one piece with its (scrubbed) Content-Length,
// not chunked; a longer one streams chunked, scrubbed across read
// boundaries; a body of unknown length (server-sent events) is relayed as
// it comes; and an upstream that breaks off a body of declared length is
// answered with an error instead of a truncated 200.
func TestProxyResponseFraming(t *testing.T) {
	const value = "sk_framing_0123456789"
	cl := newCluster(t, privateEgress())
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	release := make(chan struct{})
	big := strings.Repeat("x", 16<<10-5) + value + strings.Repeat("y", 60<<10) + value + strings.Repeat("z", 150<<10) + value
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		v := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		switch r.URL.Path {
		case "/small":
			body := `{"echo":"` + v + `"}`
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			_, _ = w.Write([]byte(body))
		case "/big":
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			_, _ = w.Write([]byte(big))
		case "/events":
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write([]byte("data: first " + v + "\n\n"))
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
			_, _ = w.Write([]byte("data: second\n\n"))
		case "/cut":
			w.Header().Set("Content-Length", "1000")
			_, _ = w.Write([]byte("only ten.."))
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}
	})
	id := cl.createCredential(a, owner, map[string]any{"name": "framing", "placement": "bearer", "value": value,
		"base_url": up.URL, "allowed_hosts": []string{up.HostP}})["id"].(string)
	get := func(path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", a.url+"/v1/proxy/"+id+path, nil)
		req.Header.Set("X-API-Key", owner)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	readAll := func(resp *http.Response) string {
		t.Helper()
		var sb strings.Builder
		if _, err := bufio.NewReader(resp.Body).WriteTo(&sb); err != nil {
			t.Fatalf("read: %v", err)
		}
		return sb.String()
	}

	resp := get("/small")
	want := `{"echo":"[REDACTED]"}`
	if body := readAll(resp); body != want || resp.ContentLength != int64(len(want)) || len(resp.TransferEncoding) != 0 {
		t.Errorf("small: content-length %d, transfer-encoding %v, body %q; want one piece of %d bytes",
			resp.ContentLength, resp.TransferEncoding, body, len(want))
	}

	resp = get("/big")
	wantBig := strings.ReplaceAll(big, value, "[REDACTED]")
	if body := readAll(resp); body != wantBig || resp.ContentLength != -1 {
		t.Errorf("big: %d bytes (content-length %d), want %d streamed bytes, scrubbed", len(body), resp.ContentLength, len(wantBig))
	}

	resp = get("/events")
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	close(release)
	if err != nil || line != "data: first [REDACTED]\n" {
		t.Errorf("events: first event %q, %v; want it before the upstream finished", line, err)
	}

	r := cl.as(owner, "GET", a.url+"/v1/proxy/"+id+"/cut", nil)
	if r.status != 502 || r.errCode(t) != "upstream_unreachable" {
		t.Errorf("cut body: %d %s; want 502 upstream_unreachable", r.status, r.body)
	}
}

// TestProxyForwardsCallerHeaders: the caller's end-to-end headers reach
// the upstream with every value, in order; hop-by-hop headers, those the
// caller's Connection header names, the key headers and X-Credvault-*
// headers do not.
func TestProxyForwardsCallerHeaders(t *testing.T) {
	cl := newCluster(t, privateEgress())
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	up := newUpstream(t, nil)
	id := cl.createCredential(a, owner, map[string]any{"name": "hdrs", "placement": "header", "param_name": "X-Upstream-Key",
		"value": "sk_headers_0123456789", "base_url": up.URL, "allowed_hosts": []string{up.HostP}})["id"].(string)
	req, _ := http.NewRequest("GET", a.url+"/v1/proxy/"+id+"/h", nil)
	req.Header.Set("X-API-Key", owner)
	req.Header["x-lower-case"] = []string{"a"}
	req.Header.Add("X-Multi", "1")
	req.Header.Add("X-Multi", "2")
	req.Header.Set("X-Drop-Me", "y")
	req.Header.Set("Connection", "keep-alive, X-Drop-Me")
	req.Header.Set("X-Credvault-Node-Id", "n1")
	req.Header.Set("X-Upstream-Key", "caller-supplied")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := up.last(t).Header
	if v := got.Values("X-Multi"); len(v) != 2 || v[0] != "1" || v[1] != "2" {
		t.Errorf("X-Multi = %q, want both values in order", v)
	}
	if got.Get("X-Lower-Case") != "a" {
		t.Errorf("lower-case header lost: %v", got)
	}
	for _, h := range []string{"X-Api-Key", "X-Drop-Me", "X-Credvault-Node-Id"} {
		if got.Get(h) != "" {
			t.Errorf("%s forwarded: %q", h, got.Get(h))
		}
	}
	if v := got.Values("X-Upstream-Key"); len(v) != 1 || v[0] != "sk_headers_0123456789" {
		t.Errorf("placed header = %q, want only the credential's value", v)
	}
}
