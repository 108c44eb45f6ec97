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
