package injector

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"credvault/internal/credvault"
)

// slowDial makes c's direct transport wait d after each connection is
// made, before the request is written (a caller descheduled there), so
// that whatever the upstream sends at once is in before the write.
func slowDial(c *Client, d time.Duration) {
	dial := c.direct.dial
	c.direct.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err == nil {
			time.Sleep(d)
		}
		return conn, err
	}
}

// TestDirectWaitEarlyAnswer: an upstream that answers as soon as it
// accepts, before it reads the request, and then keeps the connection
// open: the answer has arrived, and the call returns it at once (as it
// always did) rather than waiting for ResponseHeaderTimeout.
func TestDirectWaitEarlyAnswer(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	host := rawUpstream(t, func(conn net.Conn) {
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly")
		http.ReadRequest(bufio.NewReader(conn))
		<-hold
	})
	c := testClient(t, ClientOptions{ResponseHeaderTimeout: 3 * time.Second})
	slowDial(c, 50*time.Millisecond)
	start := time.Now()
	resp, err := c.Do(newRequest(t, http.MethodGet, "http://"+host+"/x", nil), queryCred(host), credvault.NewSecret(testValue))
	if err != nil {
		t.Fatalf("after %v: %v", time.Since(start), err)
	}
	got := readAll(t, resp.Body)
	if d := time.Since(start); got != "early" || d > time.Second {
		t.Fatalf("got %q after %v, want the early answer at once", got, d)
	}
}

// pausingConn is a TCP connection that pauses after its second write
// (a TLS 1.3 client's last handshake flight), a caller descheduled between
// the handshake and the request.
type pausingConn struct {
	*net.TCPConn
	writes int
	pause  time.Duration
}

func (c *pausingConn) Write(p []byte) (int, error) {
	n, err := c.TCPConn.Write(p)
	if c.writes++; c.writes == 2 {
		time.Sleep(c.pause)
	}
	return n, err
}

// TestDirectWaitTLSEarlyAnswer: a TLS upstream that writes its answer
// right after the handshake, before reading the request, and keeps the
// connection open: TLS 1.3 with the caller paused after the handshake,
// and TLS 1.2, where the answer can come in with the server's Finished and
// sit in the TLS connection's buffer.
func TestDirectWaitTLSEarlyAnswer(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	srv := httptest.NewUnstartedServer(nil)
	srv.TLS = &tls.Config{NextProtos: []string{"http/1.1"}}
	srv.StartTLS()
	srv.Close() // only its certificate is used
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		cfg := &tls.Config{Certificates: srv.TLS.Certificates, NextProtos: []string{"http/1.1"}, MaxVersion: v}
		host := rawUpstream(t, func(conn net.Conn) {
			tc := tls.Server(conn, cfg)
			if tc.Handshake() != nil {
				return
			}
			io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly")
			http.ReadRequest(bufio.NewReader(tc))
			<-hold
		})
		c := tlsClient(t, srv, ClientOptions{ResponseHeaderTimeout: 2 * time.Second})
		dial := c.direct.dial
		c.direct.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dial(ctx, network, addr)
			if tc, ok := conn.(*net.TCPConn); ok && v == tls.VersionTLS13 {
				return &pausingConn{TCPConn: tc, pause: 50 * time.Millisecond}, nil
			}
			return conn, err
		}
		for i := 0; i < 10; i++ {
			start := time.Now()
			resp, err := c.Do(newRequest(t, http.MethodGet, "https://"+host+"/x", nil), httpsCred(host), credvault.NewSecret(testValue))
			if err != nil {
				t.Errorf("TLS %x, call %d: after %v: %v", v, i, time.Since(start), err)
				break
			}
			got := readAll(t, resp.Body)
			if d := time.Since(start); got != "early" || d > time.Second {
				t.Errorf("TLS %x, call %d: got %q after %v, want the early answer at once", v, i, got, d)
				break
			}
			c.CloseIdleConnections()
		}
	}
}
