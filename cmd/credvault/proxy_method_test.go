package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestProxyRefusesInvalidMethodTokens: a proxied call whose method is not
// an RFC 9110 token (section 9.1: tchar only) is 400 invalid_request_head
// naming the method; a token credvault does not implement (an extension
// method, or a known one in another case: names are case-sensitive) is
// 501 method_not_implemented; CONNECT and TRACE are 405 with Allow, as on
// any route. None reaches the upstream. Sent as raw bytes, since Go's
// client refuses such methods itself. Before, an unimplemented token got
// Fiber's plain-text 400 "Invalid http method", and a method with a
// non-token character a message about spaces in the request line.
func TestProxyRefusesInvalidMethodTokens(t *testing.T) {
	cl := newCluster(t, privateEgress())
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	up := newUpstream(t, nil)
	id := cl.createCredential(a, owner, map[string]any{"name": "m", "value": "s3cr3t-method-0042", "placement": "bearer",
		"base_url": up.URL, "allowed_hosts": []string{up.HostP}})["id"].(string)
	host := strings.TrimPrefix(a.url, "http://")
	cases := []struct {
		method  string
		status  int
		code    string
		message string
	}{
		{"G@T", 400, "invalid_request_head", "method holds a character that is not a token"},
		{"GE(T", 400, "invalid_request_head", "method holds a character that is not a token"},
		{"GET\x7f", 400, "invalid_request_head", "method holds a character that is not a token"},
		{"G\"T", 400, "invalid_request_head", "method holds a character that is not a token"},
		{"GET,POST", 400, "invalid_request_head", "method holds a character that is not a token"},
		{"GE[T]", 400, "invalid_request_head", "method holds a character that is not a token"},
		{"G\x01T", 400, "invalid_request_head", ""},
		{"BREW", 501, "method_not_implemented", "RFC 9110 section 9.1"},
		{"get", 501, "method_not_implemented", "case-sensitive"},
		{"PROPFIND", 501, "method_not_implemented", ""},
		{"CONNECT", 405, "method_not_allowed", ""},
		{"TRACE", 405, "method_not_allowed", ""},
	}
	for _, tc := range cases {
		c, err := net.DialTimeout("tcp", host, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "%s /v1/proxy/%s/items HTTP/1.1\r\nHost: %s\r\nX-API-Key: %s\r\nContent-Length: 0\r\n\r\n", tc.method, id, host, owner)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			t.Fatalf("method %q: no response: %v", tc.method, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.Close()
		r := response{status: resp.StatusCode, header: resp.Header, body: body}
		if r.status != tc.status || r.errCode(t) != tc.code || !strings.Contains(r.errMessage(t), tc.message) {
			t.Errorf("method %q: %d %s, want %d %s naming %q", tc.method, r.status, body, tc.status, tc.code, tc.message)
		}
		if strings.Contains(string(body), owner) || strings.Contains(string(body), "s3cr3t-method-0042") {
			t.Errorf("method %q: the answer holds the key or the credential's value", tc.method)
		}
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("the upstream received %d requests with invalid or unproxied methods, want 0", n)
	}
	// The same call with a valid method still works.
	if r := cl.as(owner, "GET", a.url+"/v1/proxy/"+id+"/items", nil); r.status != 200 || len(up.requests()) != 1 {
		t.Fatalf("GET through the proxy: %d (upstream got %d requests)", r.status, len(up.requests()))
	}
}
