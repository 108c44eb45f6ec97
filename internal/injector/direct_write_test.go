package injector

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
)

// TestWriteRequestMatchesNetHTTP: writeRequest writes every request
// exactly as net/http's Request.Write does, on its own path and on the
// fallback, errors included.
func TestWriteRequestMatchesNetHTTP(t *testing.T) {
	type tc struct {
		name  string
		build func() *http.Request
	}
	req := func(method, url string, h map[string][]string) func() *http.Request {
		return func() *http.Request {
			r, err := http.NewRequest(method, url, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range h {
				r.Header[k] = v
			}
			return r
		}
	}
	cases := []tc{
		{"plain GET", req("GET", "http://up.example:8080/v1/balance", nil)},
		{"query and headers", req("GET", "http://up.example/v1/x?a=1&b=%20", map[string][]string{
			"Authorization": {"Bearer sk_test"}, "Accept": {"application/json"}, "X-Multi": {"a", " b\t"},
			"Accept-Encoding": {"gzip"}, "Zeta": {""}, "Host": {"ignored.example"}, "Content-Length": {"9"},
		})},
		{"user agent set", req("GET", "http://up.example/", map[string][]string{"User-Agent": {"  wrk "}})},
		{"user agent empty", req("GET", "http://up.example/", map[string][]string{"User-Agent": {""}})},
		{"user agent no values", req("GET", "http://up.example/", map[string][]string{"User-Agent": {}})},
		{"non-canonical names", req("GET", "http://up.example/", map[string][]string{"user-agent": {"x"}, "x-lower": {"1"}})},
		{"POST without body", req("POST", "http://up.example/p", nil)},
		{"PUT without body", req("PUT", "http://up.example/p", nil)},
		{"PATCH without body", req("PATCH", "http://up.example/p", nil)},
		{"DELETE without body", req("DELETE", "http://up.example/p", nil)},
		{"HEAD", req("HEAD", "http://up.example/p", nil)},
		{"OPTIONS", req("OPTIONS", "http://up.example/p", nil)},
		{"escaped path", req("GET", "http://up.example/a%2Fb/c%20d", nil)},
		{"path to escape", func() *http.Request {
			r := req("GET", "http://up.example/", nil)()
			r.URL.Path, r.URL.RawPath = "/a b/ü", ""
			return r
		}},
		{"empty path", req("GET", "http://up.example", nil)},
		{"force query", func() *http.Request {
			r := req("GET", "http://up.example/x", nil)()
			r.URL.ForceQuery = true
			return r
		}},
		{"IPv6 host", req("GET", "http://[::1]:9000/x", nil)},
		{"IPv6 zone", req("GET", "http://[fe80::1%25eth0]:9000/x", nil)},
		{"host field wins", func() *http.Request {
			r := req("GET", "http://up.example/x", nil)()
			r.Host = "other.example:81"
			return r
		}},
		{"non-ASCII host", req("GET", "http://bücher.example/x", nil)},
		{"control in query", func() *http.Request {
			r := req("GET", "http://up.example/x", nil)()
			r.URL.RawQuery = "a=1 HTTP/1.1\r\nX-Smuggled: 1"
			return r
		}},
		{"control in path", func() *http.Request {
			r := req("GET", "http://up.example/x", nil)()
			r.URL.RawPath, r.URL.Path = "", "/a\x7fb"
			return r
		}},
		{"close", func() *http.Request {
			r := req("GET", "http://up.example/x", nil)()
			r.Close = true
			return r
		}},
		{"body", func() *http.Request {
			r, _ := http.NewRequest("POST", "http://up.example/x", strings.NewReader("hello"))
			return r
		}},
		{"many headers", func() *http.Request {
			r := req("GET", "http://up.example/x", nil)()
			for _, c := range "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP" {
				r.Header["X-"+string(c)] = []string{string(c)}
			}
			return r
		}},
		{"trace", func() *http.Request {
			r := req("GET", "http://up.example/x", nil)()
			return r.WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{WroteHeaders: func() {}}))
		}},
	}
	for _, c := range cases {
		var want, got bytes.Buffer
		wbw, gbw := bufio.NewWriter(&want), bufio.NewWriter(&got)
		werr := c.build().Write(wbw)
		wbw.Flush()
		gerr := writeRequest(gbw, c.build())
		gbw.Flush()
		if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
			t.Errorf("%s: error %v, net/http's %v", c.name, gerr, werr)
		}
		if werr == nil && got.String() != want.String() {
			t.Errorf("%s: wrote\n%q\nnet/http writes\n%q", c.name, got.String(), want.String())
		}
	}
}

// TestWriteRequestDoesNotAllocate: the head of a proxied GET is written
// without allocations.
func TestWriteRequestDoesNotAllocate(t *testing.T) {
	r, _ := http.NewRequest("GET", "http://up.example:8080/v1/balance?limit=1", http.NoBody)
	r.Header["Authorization"] = []string{"Bearer sk_test_0123456789"}
	r.Header["Accept"] = []string{"application/json"}
	r.Header["Accept-Encoding"] = []string{"gzip"}
	r.Header["User-Agent"] = []string{"wrk"}
	var out bytes.Buffer
	bw := bufio.NewWriterSize(&out, 64<<10)
	if n := testing.AllocsPerRun(100, func() {
		if err := writeRequest(bw, r); err != nil {
			t.Fatal(err)
		}
		bw.Reset(&out)
	}); n != 0 {
		t.Fatalf("%v allocations per head, want 0", n)
	}
}

// BenchmarkWriteRequest: the head of a proxied GET written by
// Request.Write and by writeRequest, into a buffered writer.
func BenchmarkWriteRequest(b *testing.B) {
	r, _ := http.NewRequest("GET", "http://up.example:8080/v1/balance?limit=1", http.NoBody)
	r.Header["Authorization"] = []string{"Bearer sk_test_0123456789"}
	r.Header["Accept"] = []string{"application/json"}
	r.Header["Accept-Encoding"] = []string{"gzip"}
	r.Header["User-Agent"] = []string{"wrk"}
	for _, tc := range []struct {
		name  string
		write func(*bufio.Writer, *http.Request) error
	}{{"net-http", func(bw *bufio.Writer, r *http.Request) error { return r.Write(bw) }}, {"direct", writeRequest}} {
		b.Run(tc.name, func(b *testing.B) {
			var out bytes.Buffer
			bw := bufio.NewWriterSize(&out, 4<<10)
			b.ReportAllocs()
			for b.Loop() {
				if err := tc.write(bw, r); err != nil {
					b.Fatal(err)
				}
				bw.Reset(&out)
			}
		})
	}
}

// TestWriteRequestConnectMatchesNetHTTP: a CONNECT whose URL has no path
// is written as Request.Write writes it, with the host as its target
// ("CONNECT up.example:443 HTTP/1.1"), not "/".
func TestWriteRequestConnectMatchesNetHTTP(t *testing.T) {
	build := func() *http.Request {
		r, err := http.NewRequest(http.MethodConnect, "http://up.example:8080", nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var want, got bytes.Buffer
	wbw, gbw := bufio.NewWriter(&want), bufio.NewWriter(&got)
	if err := build().Write(wbw); err != nil {
		t.Fatal(err)
	}
	wbw.Flush()
	if err := writeRequest(gbw, build()); err != nil {
		t.Fatal(err)
	}
	gbw.Flush()
	if got.String() != want.String() {
		t.Fatalf("wrote\n%q\nnet/http writes\n%q", got.String(), want.String())
	}
}
