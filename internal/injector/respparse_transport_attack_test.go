package injector

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestDirectFastPathHostileArrival: a raw upstream answers each request
// with a head that fills the transport's 4 KiB buffer exactly, or is split
// across writes at a varying point, or leaves bytes after its body; the
// direct transport reads the right body every time, keeps the connection
// only when nothing is left over, and a left-over byte never becomes the
// next call's answer.
func TestDirectFastPathHostileArrival(t *testing.T) {
	const body = "0123456789"
	base := "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-Pad: "
	exact := base + strings.Repeat("p", 4096-len(base)-4) + "\r\n\r\n" // the head alone is 4096 bytes
	var conns atomic.Int32
	var mode atomic.Int32 // 0: exact, 1..: split at mode, -1: extra byte after the body
	addr := rawUpstream(t, func(c net.Conn) {
		conns.Add(1)
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			switch m := int(mode.Load()); {
			case m == 0:
				io.WriteString(c, exact)
				time.Sleep(5 * time.Millisecond)
				io.WriteString(c, body)
			case m > 0:
				resp := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n" + body
				io.WriteString(c, resp[:m%len(resp)])
				time.Sleep(2 * time.Millisecond)
				io.WriteString(c, resp[m%len(resp):])
			default:
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"+body+"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nSMUGGLED!!")
			}
		}
	})
	client := NewClient(ClientOptions{AllowPrivate: true})
	defer client.CloseIdleConnections()
	call := func() (string, *http.Response) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		resp, err := client.direct.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return string(b), resp
	}
	for i := 0; i < 3; i++ {
		if got, resp := call(); got != body || len(resp.Header.Get("X-Pad")) != 4096-len(base)-4 {
			t.Fatalf("exact head: body %q", got)
		}
	}
	for m := 1; m < 80; m++ {
		mode.Store(int32(m))
		if got, _ := call(); got != body {
			t.Fatalf("split at %d: body %q", m, got)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for clean answers, want 1", n)
	}
	mode.Store(-1)
	for i := 0; i < 5; i++ {
		if got, _ := call(); got != body {
			t.Fatalf("after an extra answer: body %q", got)
		}
	}
}
