package httpapi

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
)

// rawExchange writes raw to a new connection to addr and reads every
// response until the server closes the connection (or 5 s pass).
func rawExchange(t *testing.T, addr, raw string) (statuses []int, closed bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			// io.EOF: the server closed the connection; a timeout: it
			// kept it open.
			return statuses, err == io.EOF || err == io.ErrUnexpectedEOF
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
		if resp.Close {
			_, err := br.ReadByte()
			return statuses, err == io.EOF
		}
	}
}

// TestStrictRequestFraming is issue 10 case 7: duplicate or conflicting
// Content-Length, a Transfer-Encoding other than exactly chunked, or both
// headers are a 400 and the connection is closed, so a request hidden in
// the body is never served.
func TestStrictRequestFraming(t *testing.T) {
	var hits atomic.Int32
	base, _ := testServer(t, Config{testRoutes: func(r fiber.Router) {
		r.All("/test/hit", func(c *fiber.Ctx) error {
			hits.Add(1)
			return c.SendString("hit " + string(c.Body()))
		})
	}})
	addr := strings.TrimPrefix(base, "http://")
	smuggled := "GET /test/hit HTTP/1.1\r\nHost: x\r\n\r\n"
	for name, raw := range map[string]string{
		"two different Content-Length": "POST /test/hit HTTP/1.1\r\nHost: x\r\nContent-Length: 38\r\nContent-Length: 0\r\n\r\n" + smuggled,
		"two equal Content-Length":     "POST /test/hit HTTP/1.1\r\nHost: x\r\nContent-Length: 38\r\ncontent-length: 38\r\n\r\n" + smuggled,
		"Content-Length list":          "POST /test/hit HTTP/1.1\r\nHost: x\r\nContent-Length: 38, 38\r\n\r\n" + smuggled,
		"Content-Length sign":          "POST /test/hit HTTP/1.1\r\nHost: x\r\nContent-Length: +38\r\n\r\n" + smuggled,
		"xchunked":                     "POST /test/hit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggled,
		"chunked, identity":            "POST /test/hit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled,
		"two Transfer-Encoding lines":  "POST /test/hit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"both headers":                 "POST /test/hit HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"Transfer-Encoding in 1.0":     "POST /test/hit HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"space before colon":           "POST /test/hit HTTP/1.1\r\nHost: x\r\nContent-Length : 38\r\n\r\n" + smuggled,
		"folded line":                  "POST /test/hit HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n Content-Length: 38\r\n\r\n" + smuggled,
		"bad chunk size":               "POST /test/hit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n" + smuggled,
	} {
		t.Run(name, func(t *testing.T) {
			before := hits.Load()
			statuses, closed := rawExchange(t, addr, raw)
			if len(statuses) != 1 || statuses[0] != http.StatusBadRequest || !closed {
				t.Fatalf("got statuses %v, closed %v; want one 400 and the connection closed", statuses, closed)
			}
			if n := hits.Load() - before; n != 0 {
				t.Fatalf("%d requests were served", n)
			}
		})
	}

	// Well-framed requests, pipelined, are all served; a bad one after them
	// is refused after their answers.
	good := "POST /test/hit HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
		"\r\nPOST /test/hit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n" +
		"GET /test/hit HTTP/1.1\r\nHost: x\r\n\r\n"
	before := hits.Load()
	statuses, _ := rawExchange(t, addr, good+"POST /test/hit HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
	if want := []int{200, 200, 200, 400}; len(statuses) != 4 || statuses[0] != 200 || statuses[3] != 400 {
		t.Fatalf("got statuses %v, want %v", statuses, want)
	}
	if n := hits.Load() - before; n != 3 {
		t.Fatalf("%d requests served, want 3", n)
	}
}
