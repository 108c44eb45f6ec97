package injector

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"credvault/internal/credvault"
)

// TestDirectReadsAnswerOnce: the direct transport reads an upstream's
// answer with one read system call. The request is written from inside
// RawConn.Read, which then waits for the connection to be readable
// (directConn.flushAndWait), where a read straight after the write would
// find nothing yet and park in the poller before the read that finds the
// answer: two read calls a proxied call instead of one (issue 24).
// Counted with syscr of /proc/self/io (read system calls of this process;
// the peek at an idle connection is a recvfrom, which it does not count)
// over sequential calls to an upstream in another process, so that only
// the client's reads are in the count.
func TestDirectReadsAnswerOnce(t *testing.T) {
	if _, err := readCalls(); err != nil {
		t.Skipf("no read count for this process: %v", err)
	}
	up := processUpstream(t)
	defer up.Stop()
	client := testClient(t, ClientOptions{})
	cred, value := credential("bearer", "", "", up.HTTP), credvault.NewSecret(testValue)
	call := func() {
		resp, err := client.Do(newRequest(t, http.MethodGet, "http://"+up.HTTP+"/v1/balance", nil), cred, value)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	for range 20 { // the connection is dialed and kept
		call()
	}
	const calls = 300
	before, _ := readCalls()
	for range calls {
		call()
	}
	after, err := readCalls()
	if err != nil {
		t.Fatal(err)
	}
	// A few reads of this process's other goroutines may fall in the
	// count; two reads a call would be 2.0.
	if per := float64(after-before) / calls; per > 1.3 {
		t.Fatalf("%.2f read system calls per call (%d over %d calls), want 1", per, after-before, calls)
	}
}

// readCalls is the number of read system calls this process has made
// (syscr in /proc/self/io).
func readCalls() (int64, error) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("syscr: ")); ok {
			return strconv.ParseInt(string(v), 10, 64)
		}
	}
	return 0, os.ErrNotExist
}

// TestDirectAwaitingCountsEveryOutcome: the count of calls awaiting an
// answer, which chooses between waiting in the poller and yielding
// (roundTrip), goes back to zero after calls that end every way: an
// answer, a body larger than the write buffer, the header timeout, a
// cancellation while waiting, and an upstream that closes without
// answering; and a call made while the transport counts itself loaded
// (as many calls awaiting as Ps) takes the yielding path and gets its
// answer.
func TestDirectAwaitingCountsEveryOutcome(t *testing.T) {
	addr := rawUpstream(t, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			switch req.URL.Path {
			case "/silent":
				time.Sleep(2 * time.Second)
				return
			case "/close":
				return
			}
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	client := testClient(t, ClientOptions{ResponseHeaderTimeout: 200 * time.Millisecond})
	cred, value := queryCred(addr), credvault.NewSecret(testValue)
	do := func(ctx context.Context, method, path string, body io.Reader) error {
		req := newRequest(t, method, "http://"+addr+path, body).WithContext(ctx)
		resp, err := client.Do(req, cred, value)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err == nil && string(got) != "ok" {
			t.Fatalf("%s %s: body %q", method, path, got)
		}
		return err
	}
	bg := context.Background()
	if err := do(bg, http.MethodGet, "/ok", nil); err != nil {
		t.Fatal(err)
	}
	if err := do(bg, http.MethodPost, "/ok", strings.NewReader(strings.Repeat("b", 64<<10))); err != nil {
		t.Fatal(err)
	}
	if err := do(bg, http.MethodGet, "/silent", nil); err == nil {
		t.Fatal("a silent upstream answered")
	}
	ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	err := do(ctx, http.MethodGet, "/silent", nil)
	cancel()
	if err == nil {
		t.Fatal("a canceled call answered")
	}
	if err := do(bg, http.MethodPost, "/close", strings.NewReader("x")); err == nil {
		t.Fatal("an upstream that closed answered")
	}
	if n := client.direct.awaiting.Load(); n != 0 {
		t.Fatalf("%d calls still counted as awaiting an answer, want 0", n)
	}
	client.direct.awaiting.Store(client.direct.procs) // loaded: the next call yields
	for range 3 {
		if err := do(bg, http.MethodGet, "/ok", nil); err != nil {
			t.Fatalf("a call under load: %v", err)
		}
	}
	if n := client.direct.awaiting.Load(); n != client.direct.procs {
		t.Fatalf("awaiting %d after loaded calls, want %d", n, client.direct.procs)
	}
}
