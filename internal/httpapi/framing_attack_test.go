package httpapi

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
)

// TestSmugglingDifferential: requests the guard accepts, each with a body
// that holds a whole request for /test/smuggled, followed by a pipelined
// GET /test/hit. Whatever fasthttp v1.79 makes of the framing, the request
// inside a body must never be served; the handler sees the body the guard
// framed. Sent whole and in pieces (the guard's fast and general paths).
func TestSmugglingDifferential(t *testing.T) {
	if testing.Short() {
		t.Skip("about 3,300 connections")
	}
	var hits, smuggled atomic.Int32
	var lastBody atomic.Value
	base, _ := testServer(t, Config{testRoutes: func(r fiber.Router) {
		r.All("/test/hit", func(c *fiber.Ctx) error {
			hits.Add(1)
			lastBody.Store(string(c.Body()))
			return c.SendString("hit")
		})
		r.All("/test/smuggled", func(c *fiber.Ctx) error {
			smuggled.Add(1)
			return c.SendString("smuggled")
		})
	}})
	addr := strings.TrimPrefix(base, "http://")
	inner := "GET /test/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	if len(inner) != 40 {
		t.Fatal(len(inner))
	}
	chunk := fmt.Sprintf("%x", len(inner))
	next := "GET /test/hit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	var cases []string
	for _, proto := range []string{"HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/1.9"} {
		for _, method := range []string{"POST", "GET", "HEAD", "OPTIONS"} {
			for _, conn := range []string{"", "Connection: keep-alive\r\n", "Expect: 100-continue\r\n", "Connection: Upgrade\r\nUpgrade: websocket\r\n"} {
				for _, cl := range []string{"Content-Length: 40", "Content-Length: 0040", "Content-Length:\t40\t", "content-length: 000000000000000040"} {
					cases = append(cases, method+" /test/hit "+proto+"\r\nHost: x\r\n"+conn+cl+"\r\n\r\n"+inner+next)
				}
				for _, te := range []string{"chunked", " , chunked", "chunked ,", "\t,CHUNKED,\t", ",,chunked", "Chunked"} {
					for _, ext := range []string{"", ";a=b", ";a=\"x,y\"", " ;a", ";\x01"} {
						cases = append(cases, method+" /test/hit "+proto+"\r\nHost: x\r\n"+conn+"Transfer-Encoding: "+te+"\r\n\r\n"+
							chunk+ext+"\r\n"+inner+"\r\n0"+ext+"\r\n\r\n"+next)
					}
				}
			}
		}
	}
	// multipart/form-data: fasthttp pre-parses the form and stops at its
	// closing boundary; bytes after it, within Content-Length, are body.
	for _, form := range []string{
		"--X\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--X--\r\n" + inner,
		"--X\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--X--" + inner,
		"--Y\r\n" + inner,
		inner,
	} {
		for _, ct := range []string{"multipart/form-data; boundary=X", "multipart/form-data; boundary=\"X\"", "Multipart/Form-Data;boundary=X"} {
			cases = append(cases, fmt.Sprintf("POST /test/hit HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s%s", ct, len(form), form, next))
		}
	}
	t.Logf("%d cases", len(cases))
	for i, raw := range cases {
		for _, split := range []int{0, 17} {
			h0 := hits.Load()
			parts := []string{raw}
			if split > 0 {
				parts = []string{raw[:split], raw[split:]}
			}
			answers := sendParts(t, addr, parts)
			if n := smuggled.Load(); n != 0 {
				t.Fatalf("case %d split %d: the request inside a body was served: %q (answers %+v)", i, split, raw, answers)
			}
			if d := hits.Load() - h0; d > 2 {
				t.Fatalf("case %d: %d hits", i, d)
			}
			if b, _ := lastBody.Load().(string); b != "" && b != inner && !strings.Contains(raw, b) {
				t.Fatalf("case %d: the handler saw the body %q", i, b)
			}
		}
	}
	if hits.Load() < int32(len(cases)) {
		t.Fatalf("only %d requests served: the cases do not reach the handler", hits.Load())
	}
	t.Logf("%d requests served", hits.Load())
}

// sendParts writes parts (pausing between them) and reads answers until
// the connection closes or 2 s pass.
func sendParts(t *testing.T, addr string, parts []string) []headAnswer {
	t.Helper()
	raw := strings.Join(parts, "")
	if len(parts) == 1 {
		a, _ := rawAnswersTimeout(t, addr, raw, 0)
		return a
	}
	a, _ := rawAnswersTimeout(t, addr, raw, len(parts[0]))
	return a
}

// rawAnswersTimeout writes raw (in two writes at split, 20 ms apart,
// when split > 0) and reads answers until the server closes or 2 s pass.
func rawAnswersTimeout(t *testing.T, addr, raw string, split int) ([]headAnswer, bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		if split > 0 {
			io.WriteString(conn, raw[:split])
			time.Sleep(20 * time.Millisecond)
			raw = raw[split:]
		}
		io.WriteString(conn, raw)
	}()
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	br := bufio.NewReader(conn)
	var answers []headAnswer
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return answers, err == io.EOF
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answers = append(answers, headAnswer{resp.StatusCode, string(body)})
	}
}
