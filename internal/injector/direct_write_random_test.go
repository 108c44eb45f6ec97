package injector

import (
	"bufio"
	"bytes"
	"math/rand"
	"net/http"
	"net/url"
	"testing"
)

// TestWriteRequestRandomMatchesNetHTTP: 3000 requests drawn from odd
// methods (CONNECT, lower case, none), hosts (trailing dot, zone-less IPv6,
// invalid, non-ASCII, NUL), paths and queries (spaces, controls, escapes),
// bodies (none, NoBody with a length), empty trailers and header fields
// (nil and empty value lists, excluded and non-canonical names) that pass
// validRequest are written by writeRequest exactly as Request.Write
// writes them, errors included.
func TestWriteRequestRandomMatchesNetHTTP(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	methods := []string{"GET", "POST", "put", "PATCH", "HEAD", "DELETE", "", "OPTIONS", "TRACE", "CONNECT", "FOO"}
	hosts := []string{"up.example", "up.example:80", "UP.example.", "[::1]:8", "127.0.0.1:1", "a_b.example", "x y", "h/x", "a\x00b", "", "ex\u00e9.com", "h:0x"}
	paths := []string{"", "/", "/a b", "//x", "/a%2Fb", "a", "/\u00fc", "/a?b", "/%zz", "*"}
	queries := []string{"", "a=1", "a b", "a=%00", "x\x01", "#f"}
	names := []string{"Accept", "accept", "X-A", "User-Agent", "user-agent", "Host", "Content-Length", "Transfer-Encoding", "Trailer", "Te", "Connection", "Bad Name", "X\x00", "", "Cookie", "Expect"}
	vals := []string{"", " v ", "a\tb", "\x7f", "\u00e9", "v1", "a\r\nX: y"}
	for i := 0; i < 3000; i++ {
		build := func(seed int64) *http.Request {
			r := rand.New(rand.NewSource(seed))
			p := func(xs []string) string { return xs[r.Intn(len(xs))] }
			u := &url.URL{Scheme: "http", Host: p(hosts), Path: p(paths), RawQuery: p(queries), ForceQuery: r.Intn(5) == 0}
			if r.Intn(4) == 0 {
				u.RawPath = p(paths)
			}
			req := &http.Request{Method: p(methods), URL: u, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
			if r.Intn(5) == 0 {
				req.Host = p(hosts)
			}
			switch r.Intn(4) {
			case 0:
				req.Body = http.NoBody
			case 1:
				req.Body = http.NoBody
				req.ContentLength = int64(r.Intn(3))
			}
			if r.Intn(8) == 0 {
				req.Trailer = http.Header{}
			}
			for n := r.Intn(6); n > 0; n-- {
				k := p(names)
				switch r.Intn(5) {
				case 0:
					req.Header[k] = nil
				case 1:
					req.Header[k] = []string{}
				default:
					req.Header[k] = append(req.Header[k], p(vals))
				}
			}
			return req
		}
		seed := rng.Int63()
		if validRequest(build(seed)) != nil {
			continue
		}
		var want, got bytes.Buffer
		wbw, gbw := bufio.NewWriter(&want), bufio.NewWriter(&got)
		werr := build(seed).Write(wbw)
		wbw.Flush()
		gerr := writeRequest(gbw, build(seed))
		gbw.Flush()
		if (werr == nil) != (gerr == nil) || (werr == nil && got.String() != want.String()) {
			t.Fatalf("seed %d: %v / %v\n%q\n%q", seed, gerr, werr, got.String(), want.String())
		}
	}
}
