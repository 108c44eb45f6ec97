package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestOversizedRequestsPageOrJSON: a request line over 4 KiB (414) or a
// head over 8 KiB (431) is refused by the framing guard before any route
// runs; for a console page (and the OAuth callback, which a browser
// opens) the answer is an HTML page saying what to do, for the API and the
// health routes it stays the JSON error. Neither echoes the request.
func TestOversizedRequestsPageOrJSON(t *testing.T) {
	t.Parallel()
	cl := newCluster(t, nil)
	inst := cl.start()
	addr := strings.TrimPrefix(inst.url, "http://")
	long := strings.Repeat("q", 6<<10)
	cookie := "Cookie: big=" + strings.Repeat("c", 9<<10) + "\r\n"
	cases := []struct {
		name, target, extra string
		status              int
		html                bool
	}{
		{"console list, long query", "/credentials?q=" + long, "", 414, true},
		{"console start page, long query", "/?next=" + long, "", 414, true},
		{"console detail, long path", "/api-keys/" + long, "", 414, true},
		{"sign-in page, big cookie", "/sign-in", cookie, 431, true},
		{"console page, big cookie", "/members", cookie, 431, true},
		{"OAuth callback, long state", "/oauth/callback?state=" + long, "", 414, true},
		{"API, long query", "/v1/credentials?q=" + long, "", 414, false},
		{"API, big cookie", "/v1/whoami", cookie, 431, false},
		{"health, long query", "/healthz?x=" + long, "", 414, false},
		{"unknown path, long query", "/nowhere?x=" + long, "", 414, false},
	}
	for _, tc := range cases {
		resp, body := rawRoundTrip(t, addr, "GET "+tc.target+" HTTP/1.1\r\nHost: "+addr+"\r\n"+tc.extra+"\r\n")
		ct := resp.Header.Get("Content-Type")
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		if strings.Contains(body, "qqqqqqqq") || strings.Contains(body, "cccccccc") {
			t.Errorf("%s: the answer echoes the request", tc.name)
		}
		if tc.html {
			want := map[int]string{414: "<h1>Address too long</h1>", 431: "<h1>Request too large</h1>"}[tc.status]
			if !strings.HasPrefix(ct, "text/html") || !strings.HasPrefix(body, "<!doctype html>") || !strings.Contains(body, want) {
				t.Errorf("%s: %s %.200q, want an HTML page with %s", tc.name, ct, body, want)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("%s: Content-Security-Policy %q", tc.name, csp)
			}
			continue
		}
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		code := map[int]string{414: "uri_too_long", 431: "request_header_fields_too_large"}[tc.status]
		if ct != "application/json" || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != code {
			t.Errorf("%s: %s %.200q, want the JSON error %s", tc.name, ct, body, code)
		}
	}
	// A browser's ordinary request for the same page still gets the page.
	if resp, _ := rawRoundTrip(t, addr, "GET /sign-in HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"); resp.StatusCode != 200 {
		t.Errorf("GET /sign-in: %d", resp.StatusCode)
	}
}

// rawRoundTrip writes one raw request on a new connection and reads the
// answer (5 s at most).
func rawRoundTrip(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%.60q: %v", raw, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}
