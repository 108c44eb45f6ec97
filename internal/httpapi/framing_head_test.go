package httpapi

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
)

// headAnswer is one response read off a raw connection.
type headAnswer struct {
	status int
	code   string // error.code of a JSON error body, else ""
}

// rawAnswers writes raw to a new connection to addr and reads every
// response (status and error code) until the server closes the
// connection or 5 s pass.
func rawAnswers(t *testing.T, addr, raw string) (answers []headAnswer, closed bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go io.WriteString(conn, raw) // a refused head may be answered before it is all sent
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return answers, err == io.EOF || err == io.ErrUnexpectedEOF || isReset(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e errorBody
		_ = json.Unmarshal(body, &e)
		answers = append(answers, headAnswer{resp.StatusCode, e.Error.Code})
		if resp.Close {
			_, err := br.ReadByte()
			return answers, err == io.EOF || isReset(err)
		}
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// TestRequestHeadRules is issue 21 items 3 to 6: the framing guard refuses
// a missing, repeated or invalid Host (400, RFC 9112 section 3.2), a
// request line over 4 KiB (414 uri_too_long), a NUL, a bare CR, a control
// character or a bare-LF line ending (400), an HTTP major version other
// than 1 (505), and reads Transfer-Encoding by RFC 9112: coding names are
// case-insensitive and padded with optional whitespace, chunked must be
// final and single, other codings are 501. On every route: the guard reads
// the connection before any routing.
func TestRequestHeadRules(t *testing.T) {
	var hits atomic.Int32
	base, _ := testServer(t, Config{testRoutes: func(r fiber.Router) {
		r.All("/test/hit", func(c *fiber.Ctx) error {
			hits.Add(1)
			return c.SendString("hit " + string(c.Body()))
		})
	}})
	addr := strings.TrimPrefix(base, "http://")
	post := func(te string) string {
		return "POST /test/hit HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding:" + te + "\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
	}
	long := func(n int) string {
		return "GET /test/hit?q=" + strings.Repeat("a", n) + " HTTP/1.1\r\nHost: x\r\n\r\n"
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

	for _, tc := range []struct {
		name, raw string
		status    int
		code      string
	}{
		// Item 3: Host.
		{"no Host", "GET /test/hit HTTP/1.1\r\n\r\n", 400, "invalid_host"},
		{"no Host on /healthz", "GET /healthz HTTP/1.1\r\n\r\n", 400, "invalid_host"},
		{"two Host", "GET /test/hit HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, "invalid_host"},
		{"two equal Host", "GET /test/hit HTTP/1.1\r\nHost: x\r\nhost: x\r\n\r\n", 400, "invalid_host"},
		{"two Host in HTTP/1.0", "GET /test/hit HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n", 400, "invalid_host"},
		{"Host a b", "GET /test/hit HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid_host"},
		{"Host a/b", "GET /healthz HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid_host"},
		{"Host a@b", "GET /test/hit HTTP/1.1\r\nHost: a@b\r\n\r\n", 400, "invalid_host"},
		{"empty Host", "GET /test/hit HTTP/1.1\r\nHost: \r\n\r\n", 400, "invalid_host"},
		{"Host with a bad port", "GET /test/hit HTTP/1.1\r\nHost: x:80a\r\n\r\n", 400, "invalid_host"},
		{"Host with a percent escape", "GET /test/hit HTTP/1.1\r\nHost: e%41\r\n\r\n", 400, "invalid_host"},
		{"Host unclosed bracket", "GET /test/hit HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, "invalid_host"},
		// fasthttp strips only spaces around a value, so a tab next to the
		// host stays in the host it routes on: refused, as nginx does.
		{"Host with a trailing tab", "GET /test/hit HTTP/1.1\r\nHost: a\t\r\n\r\n", 400, "invalid_host"},
		{"Host with a leading tab", "GET /test/hit HTTP/1.1\r\nHost:\ta\r\n\r\n", 400, "invalid_host"},
		{"Host with a tab then a space", "GET /healthz HTTP/1.1\r\nHost: a\t \r\n\r\n", 400, "invalid_host"},
		{"Host with a space then a tab", "GET /test/hit HTTP/1.1\r\nHost: \t a:80\r\n\r\n", 400, "invalid_host"},
		{"Host of a tab", "GET /test/hit HTTP/1.1\r\nHost:\t\r\n\r\n", 400, "invalid_host"},
		// Item 4: long request target.
		{"7 KB target", long(7 << 10), 414, "uri_too_long"},
		{"70 KB target", long(70 << 10), 414, "uri_too_long"},
		{"9 KB of header fields", "GET /test/hit HTTP/1.1\r\nHost: x\r\nX-A: " + strings.Repeat("a", 9<<10) + "\r\n\r\n", 431, "request_header_fields_too_large"},
		// Item 5: bad bytes and line endings.
		{"NUL in a value", "GET /test/hit HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400, "invalid_request_head"},
		{"NUL in the target", "GET /test/hit\x00 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request_head"},
		{"bare CR in a value", "GET /test/hit HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400, "invalid_request_head"},
		{"control character in a value", "GET /test/hit HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400, "invalid_request_head"},
		{"DEL in a value", "GET /test/hit HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n", 400, "invalid_request_head"},
		{"bare LF after the request line", "GET /test/hit HTTP/1.1\nHost: x\r\n\r\n", 400, "invalid_request_head"},
		{"bare LF after a field", "GET /test/hit HTTP/1.1\r\nHost: x\n\r\n", 400, "invalid_request_head"},
		{"bare LF ending the head", "GET /test/hit HTTP/1.1\r\nHost: x\r\n\n", 400, "invalid_request_head"},
		{"all bare LF", "GET /test/hit HTTP/1.1\nHost: x\n\n", 400, "invalid_request_head"},
		{"bad field name", "GET /test/hit HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n\r\n", 400, "invalid_request_head"},
		{"two spaces in the request line", "GET  /test/hit HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request_head"},
		{"no version", "GET /test/hit\r\nHost: x\r\n\r\n", 400, "invalid_request_head"},
		{"lower-case version", "GET /test/hit http/1.1\r\nHost: x\r\n\r\n", 400, "invalid_request_head"},
		{"HTTP/2.0", "GET /test/hit HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"},
		{"HTTP/3.0", "GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"},
		{"HTTP/0.9", "GET /test/hit HTTP/0.9\r\nHost: x\r\n\r\n", 400, "invalid_request_head"},
		// Item 6: Transfer-Encoding by RFC 9112.
		{"gzip, chunked", post(" gzip, chunked"), 501, "unsupported_transfer_coding"},
		{"gzip line then chunked line", "POST /test/hit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501, "unsupported_transfer_coding"},
		{"chunked, gzip", post(" chunked, gzip"), 400, "invalid_framing"},
		{"chunked, chunked", post(" chunked, chunked"), 400, "invalid_framing"},
		{"chunked with a parameter", post(" chunked;q=1"), 400, "invalid_framing"},
		{"empty Transfer-Encoding", "POST /test/hit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n", 400, "invalid_framing"},
		{"chunked with a vertical tab", post(" chunked\x0b"), 400, "invalid_request_head"},
		{"bare LF in a trailer", "POST /test/hit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\n\r\n", 400, "invalid_request_head"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := hits.Load()
			answers, closed := rawAnswers(t, addr, tc.raw)
			if len(answers) != 1 || answers[0].status != tc.status || answers[0].code != tc.code || !closed {
				t.Fatalf("got %+v, closed %v; want one %d %s and the connection closed", answers, closed, tc.status, tc.code)
			}
			if !snake.MatchString(answers[0].code) {
				t.Fatalf("code %q is not snake_case", answers[0].code)
			}
			if n := hits.Load() - before; n != 0 {
				t.Fatalf("%d requests were served", n)
			}
		})
	}

	// What RFC 9112 allows is served: each transfer coding form, Host
	// forms, HTTP/1.0 without Host, and a request line just under 4 KiB.
	for _, tc := range []struct{ name, raw string }{
		{"chunked", post(" chunked")},
		{"Chunked", post(" Chunked")},
		{"CHUNKED", post(" CHUNKED")},
		{"chunked without OWS", post("chunked")},
		{"chunked with spaces", post("   chunked   ")},
		{"chunked with tabs", post("\tchunked\t")},
		{"chunked after an empty list element", post(" , chunked")},
		{"chunked before an empty list element", post(" chunked ,")},
		{"Host with a port", "GET /test/hit HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"},
		{"Host IPv6", "GET /test/hit HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"},
		{"Host padded with spaces", "GET /test/hit HTTP/1.1\r\nHost:   a:80   \r\n\r\n"},
		{"Host without OWS", "GET /test/hit HTTP/1.1\r\nHost:a\r\n\r\n"},
		{"Host with sub-delims and escapes", "GET /test/hit HTTP/1.1\r\nHost: a-b.c_d~e!$&'()*+,;=\r\n\r\n"},
		{"HTTP/1.0 without Host", "GET /test/hit HTTP/1.0\r\n\r\n"},
		{"request line of 4 KiB", "GET /test/hit?q=" + strings.Repeat("a", 4<<10-30) + " HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"a value with obs-text and a tab", "GET /test/hit HTTP/1.1\r\nHost: x\r\nX-A: caf\xc3\xa9\tok\r\n\r\n"},
	} {
		t.Run("served/"+tc.name, func(t *testing.T) {
			before := hits.Load()
			answers, _ := rawAnswers(t, addr, strings.Replace(tc.raw, "\r\n", "\r\nConnection: close\r\n", 1))
			if len(answers) != 1 || answers[0].status != 200 {
				t.Fatalf("got %+v, want one 200", answers)
			}
			if n := hits.Load() - before; n != 1 {
				t.Fatalf("%d requests were served, want 1", n)
			}
		})
	}
}

// TestImplementedMethodsAreFibers: the framing guard's list of implemented
// methods is exactly the router's (fiber.DefaultMethods): a method the
// router knows is never refused 501 before it, and one it does not know
// never reaches it.
func TestImplementedMethodsAreFibers(t *testing.T) {
	for _, m := range fiber.DefaultMethods {
		if !implementedMethod([]byte(m)) {
			t.Errorf("%s is routed by Fiber but refused 501 by the framing guard", m)
		}
	}
	for _, m := range []string{"BREW", "PROPFIND", "get", "Get", "GETS", "POS", ""} {
		if implementedMethod([]byte(m)) != slices.Contains(fiber.DefaultMethods, m) {
			t.Errorf("%q: the framing guard and Fiber's router disagree on whether it is implemented", m)
		}
	}
}
