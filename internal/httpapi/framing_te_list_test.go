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

// TestTransferEncodingEmptyListElements: a Transfer-Encoding of chunked
// among empty list elements (RFC 9110 section 5.6.1: ignored) is served
// with its body read as chunked, on the fast path (the head whole in one
// read) and the general path (the head in pieces); a Transfer-Encoding on
// two lines, one of them empty elements only, is refused as
// invalid_framing by the guard and nothing is served. fasthttp itself
// accepts only `chunked` with whitespace around it, so the guard writes
// each comma of an accepted value as a space.
func TestTransferEncodingEmptyListElements(t *testing.T) {
	var hits atomic.Int32
	base, _ := testServer(t, Config{testRoutes: func(r fiber.Router) {
		r.All("/test/hit", func(c *fiber.Ctx) error {
			hits.Add(1)
			return c.SendString("hit " + string(c.Body()))
		})
	}})
	addr := strings.TrimPrefix(base, "http://")
	send := func(t *testing.T, parts ...string) (string, int) {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, p := range parts {
			if _, err := io.WriteString(conn, p); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond) // each part its own read
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.StatusCode
	}
	const body = "5\r\nhello\r\n0\r\n\r\n"
	for _, te := range []string{" , chunked", " chunked ,", ",chunked", "chunked,", " ,, chunked , ,", "\t,\tCHUNKED\t,"} {
		head := "POST /test/hit HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding:" + te + "\r\n\r\n"
		for name, parts := range map[string][]string{
			"whole":  {head, body},
			"pieces": {head[:20], head[20:], body},
		} {
			t.Run(name+"/"+strings.ReplaceAll(te, "\t", `\t`), func(t *testing.T) {
				before := hits.Load()
				got, status := send(t, parts...)
				if status != 200 || got != "hit hello" {
					t.Fatalf("got %d %q, want 200 %q", status, got, "hit hello")
				}
				if n := hits.Load() - before; n != 1 {
					t.Fatalf("%d requests served, want 1", n)
				}
			})
		}
	}
	for _, raw := range []string{
		"POST /test/hit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,\r\nTransfer-Encoding: chunked\r\n\r\n" + body,
		"POST /test/hit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: ,\r\n\r\n" + body,
	} {
		t.Run("two lines", func(t *testing.T) {
			before := hits.Load()
			answers, closed := rawAnswers(t, addr, raw)
			if len(answers) != 1 || answers[0].status != 400 || answers[0].code != "invalid_framing" || !closed {
				t.Fatalf("got %+v, closed %v; want one 400 invalid_framing and the connection closed", answers, closed)
			}
			if n := hits.Load() - before; n != 0 {
				t.Fatalf("%d requests served", n)
			}
		})
	}
}
