package injector

import (
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"credvault/internal/credvault"
)

// TestCallDeadlineAttackSlowDial: a connect that hangs (a loopback
// listener with a backlog of 0, its queue filled, so that the SYN goes
// unanswered) ends at the call's timeout (300ms), well before the
// dialer's own 5s, with upstream_timeout: the dialer gets the call's
// deadline as a context of Go's own.
func TestCallDeadlineAttackSlowDial(t *testing.T) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	sa := &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	if err := syscall.Bind(fd, sa); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	ln, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	host := ln.Addr().String()
	var fill []net.Conn
	for i := 0; i < 4; i++ {
		c, err := net.DialTimeout("tcp", host, 200*time.Millisecond)
		if err != nil {
			break // the queue is full
		}
		fill = append(fill, c)
	}
	defer func() {
		for _, c := range fill {
			c.Close()
		}
	}()
	client := testClient(t, ClientOptions{Timeout: 300 * time.Millisecond})
	start := time.Now()
	_, err = client.Do(newRequest(t, http.MethodGet, "http://"+host+"/x", nil), credential("bearer", "", "", host), credvault.NewSecret(secretA))
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("the call took %v, past its 300ms timeout", d)
	}
	wantError(t, err, credvault.EUNAVAILABLE, "upstream_timeout", secretA)
}
