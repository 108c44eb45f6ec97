package injector

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"credvault/internal/credvault"
)

// encodings lists the forms of v that an echoing upstream might send back.
func encodings(v string) map[string]string {
	return map[string]string{
		"raw":          v,
		"query":        url.QueryEscape(v),
		"query lower":  lowerEscapes(url.QueryEscape(v)),
		"path":         url.PathEscape(v),
		"base64 std":   base64.StdEncoding.EncodeToString([]byte(v)),
		"base64 url":   base64.URLEncoding.EncodeToString([]byte(v)),
		"base64 raw":   base64.RawStdEncoding.EncodeToString([]byte(v)),
		"base64 rawur": base64.RawURLEncoding.EncodeToString([]byte(v)),
		"basic auth":   base64.StdEncoding.EncodeToString([]byte("user:" + v)),
		"basic auth 2": base64.StdEncoding.EncodeToString([]byte("us:" + v + ":x")),
	}
}

var scrubValues = []string{testValue, "a b/c+d=e&f", "ünïcode-key-42"}

var escapeRE = regexp.MustCompile(`%[0-9A-F]{2}`)

// lowerEscapes writes the percent escapes of e in lower-case hex.
func lowerEscapes(e string) string { return escapeRE.ReplaceAllStringFunc(e, strings.ToLower) }

// leaked returns the names of the encodings of v found in text.
func leaked(text, v string) []string {
	var out []string
	for name, e := range encodings(v) {
		if strings.HasPrefix(name, "basic auth") {
			continue // covered by the runs below
		}
		if strings.Contains(text, e) {
			out = append(out, name)
		}
	}
	// The middle of the value's base64 form at each alignment, as it
	// appears inside a longer base64 text.
	for off := range 3 {
		e := base64.RawStdEncoding.EncodeToString(append(make([]byte, off), v...))
		if mid := e[3 : len(e)-3]; strings.Contains(text, mid) {
			out = append(out, fmt.Sprintf("base64 at offset %d", off))
		}
	}
	return out
}

func TestScrubberString(t *testing.T) {
	for _, v := range scrubValues {
		s := NewScrubber(credvault.NewSecret(v))
		for name, e := range encodings(v) {
			in := "before " + e + " after"
			got := s.String(in)
			if !strings.Contains(got, redactedMark) || !strings.HasPrefix(got, "before ") || !strings.HasSuffix(got, " after") {
				t.Errorf("%q %s: got %q", v, name, got)
			}
			if l := leaked(got, v); len(l) > 0 {
				t.Errorf("%q %s: %v left in %q", v, name, l, got)
			}
		}
		if got := s.String("nothing to see"); got != "nothing to see" {
			t.Errorf("got %q", got)
		}
	}
	if got := NewScrubber(credvault.NewSecret("abcd")).String("xabcdx"); got != "x[REDACTED]x" {
		t.Errorf("got %q", got)
	}
	// Overlapping occurrences are redacted together.
	if got := NewScrubber(credvault.NewSecret("abababab")).String("x-ababababab-x"); got != "x-[REDACTED]-x" {
		t.Errorf("got %q", got)
	}
}

func TestScrubberHeader(t *testing.T) {
	s := NewScrubber(credvault.NewSecret(testValue))
	h := http.Header{
		"X-Echo":              {"key=" + testValue, "fine"},
		"Location":            {"https://x.example.com/?k=" + url.QueryEscape(testValue)},
		"X-Seen-" + testValue: {"1"},
		"Www-Authenticate":    {`Bearer error="invalid_token", token="` + base64.StdEncoding.EncodeToString([]byte(testValue)) + `"`},
		"Content-Type":        {"text/plain"},
	}
	s.Header(h)
	for k, vs := range h {
		if len(leaked(k+strings.Join(vs, "\n"), testValue)) > 0 {
			t.Errorf("header %s %q still holds the value", k, vs)
		}
	}
	if h.Get("X-Echo") != "key=[REDACTED]" || h.Values("X-Echo")[1] != "fine" || h.Get("Content-Type") != "text/plain" {
		t.Errorf("got %v", h)
	}
}

// TestScrubberReaderSplits feeds the same text through the streaming reader
// in one-byte reads and in random chunkings, and wants exactly what String
// gives for the whole text.
func TestScrubberReaderSplits(t *testing.T) {
	// Each read rescans the held-back window, so reads of one byte cost a
	// window's scan each: the small-read cases use a short filler, the
	// large-read case one past the reader's chunk size.
	for _, v := range scrubValues {
		s := NewScrubber(credvault.NewSecret(v))
		for _, tc := range []struct {
			filler int
			chunk  int // largest random read; 1 = one byte at a time
			runs   int
		}{{1000, 1, 1}, {2000, 50, 10}, {40000, 8192, 5}} {
			var b strings.Builder
			for i, e := range encodings(v) {
				fmt.Fprintf(&b, "%s:%s|", i, e)
			}
			b.WriteString(strings.Repeat("x", tc.filler))
			for _, e := range encodings(v) {
				b.WriteString(e)
			}
			text := b.String()
			want := s.String(text)
			if l := leaked(want, v); len(l) > 0 {
				t.Fatalf("String left %v", l)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			for range tc.runs {
				var r io.Reader = &chunky{data: []byte(text), rng: rng, max: tc.chunk}
				if tc.chunk == 1 {
					r = iotest.OneByteReader(strings.NewReader(text))
				}
				got, err := io.ReadAll(s.Reader(io.NopCloser(r)))
				if err != nil || string(got) != want {
					t.Fatalf("reads of at most %d bytes: err %v, output differs from String (%d vs %d bytes)", tc.chunk, err, len(got), len(want))
				}
			}
		}
	}
}

// chunky returns its data in random-sized reads, sometimes empty.
type chunky struct {
	data []byte
	rng  *rand.Rand
	max  int // largest read; 0 = 50
}

func (c *chunky) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	limit := c.max
	if limit == 0 {
		limit = 50
	}
	n := min(c.rng.IntN(limit), len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func TestScrubberReaderDropsTailOnError(t *testing.T) {
	s := NewScrubber(credvault.NewSecret(testValue))
	boom := fmt.Errorf("connection reset")
	r := s.Reader(io.NopCloser(io.MultiReader(strings.NewReader("ok "+testValue[:10]), iotest.ErrReader(boom))))
	got, err := io.ReadAll(r)
	if err != boom {
		t.Fatalf("got %v, want the reader's error", err)
	}
	if strings.Contains(string(got), testValue[:10]) {
		t.Fatalf("the start of the value was released: %q", got)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 1)); err == nil {
		t.Fatal("read after close succeeded")
	}
}

// echoValue sends the value back, in every encoding, in a header and the body.
func echoValue(v string, gzipped bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		for name, e := range encodings(v) {
			fmt.Fprintf(&body, "%s=%s\n", name, e)
		}
		w.Header().Set("X-Echo-Key", v)
		w.Header().Set("X-Echo-B64", base64.StdEncoding.EncodeToString([]byte(v)))
		w.Header().Set("Location", "/x?key="+url.QueryEscape(v))
		if gzipped {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			zw.Write(body.Bytes())
			zw.Close()
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(body.Len()))
		w.Write(body.Bytes())
	}
}

func TestClientScrubsEchoedValue(t *testing.T) {
	client := testClient(t, ClientOptions{})
	for _, v := range scrubValues {
		for _, gz := range []bool{false, true} {
			for _, rangeReq := range []bool{false, true} {
				t.Run(fmt.Sprintf("%q gzip=%v range=%v", v, gz, rangeReq), func(t *testing.T) {
					up := newUpstream(t, echoValue(v, gz))
					req := newRequest(t, http.MethodGet, up.url()+"/echo", nil)
					req.Header.Set("Accept-Encoding", "br") // must be dropped
					if rangeReq {
						req.Header.Set("Range", "bytes=0-") // the transport does not ask for gzip then
					}
					resp, err := client.Do(req, credential("header", "X-Api-Key", "", up.host()), credvault.NewSecret(v))
					if err != nil {
						t.Fatal(err)
					}
					body := readAll(t, resp.Body)
					if !strings.Contains(body, "raw="+redactedMark) {
						t.Fatalf("body was not scrubbed as expected: %q", body)
					}
					var hdr strings.Builder
					resp.Header.Write(&hdr)
					if l := leaked(body+hdr.String(), v); len(l) > 0 {
						t.Fatalf("%v left in the response:\n%s\n%s", l, hdr.String(), body)
					}
					if resp.Header.Get("Content-Length") != "" || resp.ContentLength != -1 {
						t.Fatalf("Content-Length kept: %q %d", resp.Header.Get("Content-Length"), resp.ContentLength)
					}
					if resp.Header.Get("Content-Encoding") != "" {
						t.Fatalf("Content-Encoding kept: %q", resp.Header.Get("Content-Encoding"))
					}
					ae := up.last(t).Header.Get("Accept-Encoding")
					if (!rangeReq && ae != "gzip") || (rangeReq && ae != "identity") {
						t.Fatalf("upstream got Accept-Encoding %q", ae)
					}
				})
			}
		}
	}
}

func TestClientRefusesUnscrubbableEncoding(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "br")
		w.Write([]byte{0x1b, 0x02, 0x00})
	})
	client := testClient(t, ClientOptions{})
	_, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/", nil), credential("bearer", "", "", up.host()), credvault.NewSecret(testValue))
	wantError(t, err, credvault.EUNAVAILABLE, "upstream_encoding", testValue)
}

func TestClientCapsResponseSize(t *testing.T) {
	big := strings.Repeat("z", 64<<10)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.Write([]byte(big[:1000]))
			w.(http.Flusher).Flush()
		} else {
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		}
		w.Write([]byte(big))
	})
	client := testClient(t, ClientOptions{MaxResponseBytes: 32 << 10})
	cred := credential("query", "key", "", up.host())

	// Known length: refused before the body is read.
	_, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/sized", nil), cred, credvault.NewSecret(testValue))
	wantError(t, err, credvault.EUNAVAILABLE, "upstream_response_too_large", testValue)

	// Streamed: reading past the cap fails.
	resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/chunked", nil), cred, credvault.NewSecret(testValue))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	wantError(t, err, credvault.EUNAVAILABLE, "upstream_response_too_large", testValue)
	if len(got) > 32<<10 {
		t.Fatalf("read %d bytes past a cap of %d", len(got), 32<<10)
	}

	// At the cap exactly: fine.
	exact := testClient(t, ClientOptions{MaxResponseBytes: int64(len(big))})
	resp, err = exact.Do(newRequest(t, http.MethodGet, up.url()+"/sized", nil), cred, credvault.NewSecret(testValue))
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp.Body); len(body) != len(big) {
		t.Fatalf("got %d bytes, want %d", len(body), len(big))
	}
}

func TestClientScrubsStatusAndTrailers(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Debug-Key")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "body")
		w.Header().Set("X-Debug-Key", testValue)
	})
	client := testClient(t, ClientOptions{})
	resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/", nil), credential("bearer", "", "", up.host()), credvault.NewSecret(testValue))
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp.Body); body != "body" {
		t.Fatalf("got %q", body)
	}
	if got := resp.Trailer.Get("X-Debug-Key"); got != redactedMark {
		t.Fatalf("got trailer %q, want it scrubbed", got)
	}

	// A reason phrase is the upstream's own text too.
	raw := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 401 bad key " + testValue + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		buf.Flush()
	})
	resp, err = client.Do(newRequest(t, http.MethodGet, raw.url()+"/", nil), credential("bearer", "", "", raw.host()), credvault.NewSecret(testValue))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp.Body)
	if resp.StatusCode != http.StatusUnauthorized || resp.Status != "401 bad key "+redactedMark {
		t.Fatalf("got status %q", resp.Status)
	}
}

// TestBodyCloseWhileReading closes a body from another goroutine while a
// Read waits on a stalled upstream: the Read must return and nothing races.
func TestBodyCloseWhileReading(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "start")
		w.(http.Flusher).Flush()
		sleeper(3*time.Second)(w, r)
	})
	client := testClient(t, ClientOptions{})
	resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/", nil), credential("bearer", "", "", up.host()), credvault.NewSecret(testValue))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	resp.Body.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read of a closed body ended without error")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Read did not return after Close")
	}
}

// TestScrubberReaderHoldsFixedWindow checks the shape of the stream: each
// read releases everything but the last Window() bytes, whatever they are,
// and the end of the stream releases the rest.
func TestScrubberReaderHoldsFixedWindow(t *testing.T) {
	s := NewScrubber(credvault.NewSecret(testValue))
	w := s.Window()
	filler := strings.Repeat("z", w+100)
	for _, tail := range []string{testValue[:9], "nothing!!"} {
		pr, pw := io.Pipe()
		r := s.Reader(pr)
		go func() {
			io.WriteString(pw, filler+tail)
			pw.Close()
		}()
		buf := make([]byte, 2*w+200)
		n, err := r.Read(buf)
		if err != nil || n != len(filler)+len(tail)-w {
			t.Fatalf("tail %q: first read gave %d bytes, %v; want %d", tail, n, err, len(filler)+len(tail)-w)
		}
		rest, err := io.ReadAll(r)
		if err != nil || string(buf[:n])+string(rest) != filler+tail {
			t.Fatalf("tail %q: stream changed: %v", tail, err)
		}
		r.Close()
	}
}

func TestScrubberCatchesJSONEscapedValues(t *testing.T) {
	v := "abc/def<ghi>&jkl\"mno"
	sc := NewScrubber(credvault.NewSecret(v))
	for _, in := range []string{
		`{"key":"abc/def\u003cghi\u003e\u0026jkl\"mno"}`,
		`{"key":"abc\/def<ghi>&jkl\"mno"}`,
		`{"key":"abc/def<ghi>&jkl\"mno"}`,
	} {
		if out := sc.String(in); strings.Contains(out, "ghi") {
			t.Errorf("%s -> %s", in, out)
		}
	}
}
