package injector

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"

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
