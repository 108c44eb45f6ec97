package httpapi

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
)

// TestRequestTrailersAreNotHeaders: fasthttp adds the fields of a chunked
// request's trailer section to its header, so a key or an X-Credvault-*
// field sent as a trailer, which a gateway in front checks and strips only
// in the header, reached the handlers as a header (RFC 9110 section 6.5.1:
// a trailer field must not be merged into the header). The framing guard
// drops request trailer fields, as nginx does; the body still arrives, and
// a malformed trailer line is still refused.
func TestRequestTrailersAreNotHeaders(t *testing.T) {
	base, _ := testServer(t, Config{testRoutes: func(r fiber.Router) {
		r.All("/test/hit", func(c *fiber.Ctx) error {
			var seen []string
			for _, h := range []string{"X-Api-Key", "Authorization", "X-Credvault-Target", "X-Other"} {
				for _, v := range c.Request().Header.PeekAll(h) {
					seen = append(seen, h+"="+string(v))
				}
			}
			return c.SendString("body=" + string(c.Body()) + " headers=" + strings.Join(seen, ","))
		})
	}})
	addr := strings.TrimPrefix(base, "http://")
	exchange := func(raw string) string {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, raw)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(conn)
		return string(b)
	}
	head := "POST /test/hit HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
	for _, trailer := range []string{
		"0\r\nX-API-Key: trailer-key\r\n\r\n",
		"0\r\nAuthorization: Bearer trailer-key\r\n\r\n",
		"0;ext=1\r\nX-Credvault-Target: https://127.0.0.1/\r\nX-Other: 1\r\n\r\n",
	} {
		got := exchange(head + trailer)
		if !strings.HasPrefix(got, "HTTP/1.1 200") || !strings.HasSuffix(got, "body=hello headers=") {
			t.Errorf("trailer %q: got %q, want 200 with the body and no trailer field as a header", trailer, got)
		}
	}
	if got := exchange(head + "0\r\nX-A: a\x01b\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 400") {
		t.Errorf("a control character in a trailer: got %q, want 400", got)
	}
	// A request pipelined after the trailers is still read.
	two := exchange(strings.Replace(head, "Connection: close\r\n", "", 1) + "0\r\nX-Other: 1\r\n\r\n" +
		"GET /test/hit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if strings.Count(two, "HTTP/1.1 200") != 2 || strings.Contains(two, "X-Other") {
		t.Errorf("pipelined after trailers: got %q", two)
	}
}
