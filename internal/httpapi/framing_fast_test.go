package httpapi

import (
	"bufio"
	"bytes"
	"io"
	"math/rand"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
)

// scriptedConn is a net.Conn whose reads return the given chunks one by
// one (each chunk at most as much as the reader asks), then io.EOF.
type scriptedConn struct {
	net.Conn
	chunks [][]byte
}

func (c *scriptedConn) Read(p []byte) (int, error) {
	for len(c.chunks) > 0 && len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}

// throughFraming reads chunks through a framingConn with reads of size
// bytes and returns what it passed and the refusal's code ("" for none).
func throughFraming(chunks [][]byte, size int) (string, string) {
	cs := make([][]byte, len(chunks))
	for i, ch := range chunks {
		cs[i] = append([]byte(nil), ch...)
	}
	c := &framingConn{Conn: &scriptedConn{chunks: cs}}
	var out bytes.Buffer
	p := make([]byte, size)
	for range 10000 {
		n, err := c.Read(p)
		out.Write(p[:n])
		// Scribble over the buffer, as fasthttp reuses it, so that any
		// byte the guard kept a reference to would show.
		for i := range p {
			p[i] = '#'
		}
		if err != nil {
			break
		}
	}
	code := ""
	if c.refuse != nil {
		code = c.refuse.code
	}
	return out.String(), code
}

// TestFramingFastPathMatchesGeneralPath reads the same byte streams, in
// the same reads off the socket, through framingConn with a caller buffer
// large enough for the fast path (wholeHead) and with one too small for it
// (the general path only): the bytes passed on and the refusal must be the
// same, for heads at the fast path's boundary (a whole head with body
// bytes or a pipelined request behind it, a read ending inside CRLFCRLF,
// a 4096-byte read, bare LF and CR, NUL, obs-fold, conflicting framing,
// HTTP/1.0, absolute-form, a body that looks like a head, keep-alive heads
// in separate reads) and random mutations of them.
func TestFramingFastPathMatchesGeneralPath(t *testing.T) {
	get := "GET /v1/auth/check HTTP/1.1\r\nHost: x\r\nX-API-Key: cv_live_abc\r\n\r\n"
	heads := []string{
		get,
		"GET /v1/auth/check HTTP/1.0\r\n\r\n",
		"GET http://x/v1/auth/check HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /test/hit HTTP/1.1\r\nHost: x\r\nContent-Length: 38\r\n\r\n",
		"POST /test/hit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST /test/hit HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 0\r\n\r\n",
		"POST /test/hit HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: y\r\n\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /" + strings.Repeat("a", 4096-len("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) + " HTTP/1.1\r\nHost: x\r\n\r\n", // 4096 bytes
		"GET /" + strings.Repeat("a", 4097-len("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) + " HTTP/1.1\r\nHost: x\r\n\r\n", // 4097 bytes
		"GET /" + strings.Repeat("a", 4100) + " HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("b", 9000) + "\r\n\r\n",
	}
	bodies := []string{"", get[:38], "5\r\nhello\r\n0\r\n\r\n", "0\r\nX-T: 1\r\n\r\n", get, "\r\n"}
	var streams [][][]byte
	add := func(chunks ...string) {
		bs := make([][]byte, len(chunks))
		for i, c := range chunks {
			bs[i] = []byte(c)
		}
		streams = append(streams, bs)
	}
	for _, h := range heads {
		for _, b := range bodies {
			add(h, b, get)                    // the head alone in its read
			add(h+b, get)                     // body bytes in the same read
			add(h + b + get)                  // and a pipelined request
			add(h[:len(h)-1], h[len(h)-1:]+b) // the read ends inside CRLFCRLF
			add(h[:len(h)-2], h[len(h)-2:], b)
			add(h[:len(h)-3], h[len(h)-3:]+b, get, get)
		}
	}
	rng := rand.New(rand.NewSource(24))
	for range 20000 {
		s := heads[rng.Intn(len(heads))] + bodies[rng.Intn(len(bodies))] + heads[rng.Intn(len(heads))]
		b := []byte(s)
		for range rng.Intn(3) {
			switch i := rng.Intn(len(b)); rng.Intn(4) {
			case 0:
				b[i] = "\r\n\x00 :\t"[rng.Intn(6)]
			case 1:
				b = append(b[:i], b[i+1:]...)
			case 2:
				b = append(b[:i], append([]byte("\r\n"), b[i:]...)...)
			default:
				b = append(b[:i], append([]byte("\r\n\r\n"), b[i:]...)...)
			}
		}
		var chunks [][]byte
		for len(b) > 0 {
			n := len(b)
			if rng.Intn(2) == 0 {
				n = 1 + rng.Intn(len(b))
			} else if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
				n = i + 4 // a read that ends where a head does
			}
			chunks = append(chunks, b[:n])
			b = b[n:]
		}
		streams = append(streams, chunks)
	}
	for i, s := range streams {
		fastOut, fastCode := throughFraming(s, readBufferSize)
		slowOut, slowCode := throughFraming(s, len(framingConn{}.buf)-1)
		if fastOut != slowOut || fastCode != slowCode {
			t.Fatalf("stream %d %q: fast path passed %q (refusal %q), general path %q (refusal %q)", i, s, fastOut, fastCode, slowOut, slowCode)
		}
	}
}

// TestFramingLineSplitAcrossReads sends heads, chunk lines and trailers
// whose line ends arrive in a later read than the rest of the line (a
// client or a network that splits a request just before its CRLF, or
// between CR and LF). Each is answered as if it had arrived whole: before,
// the guard took the later read's part for the whole line, so "\r\n" alone
// ended the head early (checkRequestHead then panicked on a last line
// without CRLF, which no goroutine recovers: the process exited) and "\n"
// alone was refused as a bare LF. Lines that are bad stay refused.
func TestFramingLineSplitAcrossReads(t *testing.T) {
	base, _ := testServer(t, Config{testRoutes: func(r fiber.Router) {
		r.All("/test/hit", func(c *fiber.Ctx) error { return c.SendString("hit " + string(c.Body())) })
	}})
	addr := strings.TrimPrefix(base, "http://")
	head := "GET /test/hit HTTP/1.1\r\nHost: x\r\n\r\n"
	chunked := "POST /test/hit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"
	for _, tc := range []struct {
		name   string
		parts  []string
		status int
		body   string
	}{
		{"request line before CRLF", []string{"GET /test/hit HTTP/1.1", "\r\nHost: x\r\n\r\n"}, 200, "hit "},
		{"field line before CRLF", []string{"GET /test/hit HTTP/1.1\r\nHost: x", "\r\n\r\n"}, 200, "hit "},
		{"field line between CR and LF", []string{"GET /test/hit HTTP/1.1\r\nHost: x\r", "\n\r\n"}, 200, "hit "},
		{"empty line between CR and LF", []string{"GET /test/hit HTTP/1.1\r\nHost: x\r\n\r", "\n"}, 200, "hit "},
		{"byte by byte", strings.Split(head, ""), 200, "hit "},
		{"chunk size before CRLF", []string{chunked[:strings.Index(chunked, "5\r\n")+1], chunked[strings.Index(chunked, "5\r\n")+1:]}, 200, "hit hello"},
		{"chunk data between CR and LF", []string{chunked[:strings.Index(chunked, "hello")+6], chunked[strings.Index(chunked, "hello")+6:]}, 200, "hit hello"},
		{"trailer before CRLF", []string{chunked[:len(chunked)-4], chunked[len(chunked)-4:]}, 200, "hit hello"},
		{"chunked byte by byte", strings.Split(chunked, ""), 200, "hit hello"},
		{"bare LF split off", []string{"GET /test/hit HTTP/1.1\r\nHost: x", "\n\r\n"}, 400, ""},
		{"bare LF after a split", []string{"GET /test/hit HTTP/1.1\r\nHost: x\r", "y\n\r\n"}, 400, ""},
		{"two Content-Length split", []string{"POST /test/hit HTTP/1.1\r\nHost: x\r\nContent-Length: 1", "\r\nContent-Length: 2\r\n\r\nab"}, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			for _, p := range tc.parts {
				if _, err := io.WriteString(conn, p); err != nil {
					t.Fatal(err)
				}
				time.Sleep(5 * time.Millisecond) // a read of its own
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || tc.status == 200 && string(body) != tc.body {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tc.status, tc.body)
			}
		})
	}
}

// TestFramingPassesValidStreamsSplitAnywhere reads valid requests (a GET,
// a chunked POST with a trailer, a Content-Length POST, pipelined) split
// into two reads at every byte, and into single bytes, through framingConn:
// each is passed on whole, minus the trailer fields, with no refusal.
func TestFramingPassesValidStreamsSplitAnywhere(t *testing.T) {
	get := "GET /v1/auth/check HTTP/1.1\r\nHost: x\r\nX-API-Key: cv_live_abc\r\n\r\n"
	post := "POST /test/hit HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
	chunked := "POST /test/hit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"
	stream := "\r\n" + get + post + chunked + get
	want := strings.Replace(stream, "X-T: 1\r\n", "", 1)
	var splits [][][]byte
	for i := 1; i < len(stream); i++ {
		splits = append(splits, [][]byte{[]byte(stream[:i]), []byte(stream[i:])})
	}
	var bytewise [][]byte
	for i := range len(stream) {
		bytewise = append(bytewise, []byte{stream[i]})
	}
	splits = append(splits, bytewise)
	for _, s := range splits {
		for _, size := range []int{readBufferSize, 100} {
			if out, code := throughFraming(s, size); out != want || code != "" {
				t.Fatalf("reads %q (buffer %d): passed %q, refusal %q; want %q passed", s, size, out, code, want)
			}
		}
	}
}
