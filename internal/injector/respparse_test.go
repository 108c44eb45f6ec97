package injector

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// segReader hands out data at most seg bytes per Read, then fails with
// end (io.EOF, or another error such as a read timeout's).
type segReader struct {
	data []byte
	seg  int
	end  error
}

func (r *segReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.end
	}
	n := min(len(p), r.seg, len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

var errSegEnd = errors.New("read tcp: i/o timeout (test)")

// respCase is one input of the differential test: the bytes the upstream
// sends, how they arrive (seg bytes per read, the bufio.Reader's size,
// the error at their end) and the request's method.
type respCase struct {
	data    []byte
	seg     int
	bufSize int
	endErr  bool
	method  string
}

// readStep is one Read of a body: what it returned.
type readStep struct {
	n    int
	data string
	err  string
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return fmt.Sprintf("%T %v", err, err)
}

// errClass maps an error to what callers test it against.
func errClass(err error) string {
	switch {
	case err == nil:
		return "nil"
	case err == io.EOF:
		return "EOF"
	case err == io.ErrUnexpectedEOF:
		return "UnexpectedEOF"
	case errors.Is(err, http.ErrBodyReadAfterClose):
		return "ReadAfterClose"
	}
	return "other: " + err.Error()
}

// readBody reads b through with a fixed pattern of buffer sizes until an
// error, and once more after it (bounded).
func readBody(b io.Reader) []readStep {
	sizes := []int{1, 7, 0, 64, 3, 4096, 13}
	var steps []readStep
	p := make([]byte, 4096)
	for i := 0; i < 100000; i++ {
		n, err := b.Read(p[:sizes[i%len(sizes)]])
		steps = append(steps, readStep{n, string(p[:n]), errClass(err)})
		if err != nil {
			n, err = b.Read(p[:5])
			steps = append(steps, readStep{n, string(p[:n]), errClass(err)})
			break
		}
	}
	return steps
}

func (c respCase) reader() *bufio.Reader {
	end := io.EOF
	if c.endErr {
		end = errSegEnd
	}
	return bufio.NewReaderSize(&segReader{data: c.data, seg: c.seg, end: end}, c.bufSize)
}

// diffResponse parses c with net/http and with the fast path (after the
// one Peek the transport makes) and fails t unless the fast path fell
// back with the reader untouched or gave exactly what net/http gives. It
// reports whether the fast path took the head.
func diffResponse(t testing.TB, c respCase) (fast bool) {
	t.Helper()
	var req *http.Request
	if c.method != "" {
		req = &http.Request{Method: c.method}
	}
	r1, r2 := c.reader(), c.reader()
	_, perr1 := r1.Peek(1)
	_, perr2 := r2.Peek(1)
	if (perr1 == nil) != (perr2 == nil) {
		t.Fatalf("peek differs")
	}
	if perr1 != nil {
		return false
	}
	before, _ := r2.Peek(r2.Buffered())
	before = append([]byte(nil), before...)
	got := fastResponse(r2, req)
	want, werr := http.ReadResponse(r1, req)
	if got == nil {
		// Fell back: the reader must be untouched, and readResponse is
		// then http.ReadResponse on it.
		after, _ := r2.Peek(r2.Buffered())
		if !bytes.Equal(before, after) {
			t.Fatalf("fallback moved the reader on %q", c.data)
		}
		return false
	}
	if werr != nil {
		t.Fatalf("fast path took a head net/http rejects (%v): %q", werr, c.data)
	}
	where := fmt.Sprintf("input %q (method %q)", c.data, c.method)
	if got.Status != want.Status || got.StatusCode != want.StatusCode || got.Proto != want.Proto ||
		got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor {
		t.Fatalf("status line: got %q %d %q %d.%d, want %q %d %q %d.%d; %s", got.Status, got.StatusCode, got.Proto, got.ProtoMajor, got.ProtoMinor,
			want.Status, want.StatusCode, want.Proto, want.ProtoMajor, want.ProtoMinor, where)
	}
	if !reflect.DeepEqual(got.Header, want.Header) {
		t.Fatalf("header: got %q, want %q; %s", got.Header, want.Header, where)
	}
	for k, vv := range got.Header {
		if cap(vv) != len(vv) {
			t.Fatalf("header %q: values slice has room to grow into another's (len %d cap %d)", k, len(vv), cap(vv))
		}
	}
	if got.ContentLength != want.ContentLength || got.Close != want.Close || got.Uncompressed != want.Uncompressed ||
		!reflect.DeepEqual(got.TransferEncoding, want.TransferEncoding) || got.Request != want.Request || got.TLS != nil {
		t.Fatalf("framing: got CL %d close %v TE %q, want CL %d close %v TE %q; %s", got.ContentLength, got.Close, got.TransferEncoding,
			want.ContentLength, want.Close, want.TransferEncoding, where)
	}
	if !reflect.DeepEqual(got.Trailer, want.Trailer) {
		t.Fatalf("trailer before the body: got %q, want %q; %s", got.Trailer, want.Trailer, where)
	}
	if (got.Body == http.NoBody) != (want.Body == http.NoBody) {
		t.Fatalf("NoBody: got %T, want %T; %s", got.Body, want.Body, where)
	}
	if r1.Buffered() != r2.Buffered() {
		t.Fatalf("after the head: %d bytes buffered, want %d; %s", r2.Buffered(), r1.Buffered(), where)
	}
	gs, ws := readBody(got.Body), readBody(want.Body)
	if !reflect.DeepEqual(gs, ws) {
		t.Fatalf("body reads:\n got %v\nwant %v\n%s", gs, ws, where)
	}
	if !reflect.DeepEqual(got.Trailer, want.Trailer) {
		t.Fatalf("trailer after the body: got %q, want %q; %s", got.Trailer, want.Trailer, where)
	}
	rest1, e1 := io.ReadAll(r1)
	rest2, e2 := io.ReadAll(r2)
	if !bytes.Equal(rest1, rest2) || errString(e1) != errString(e2) {
		t.Fatalf("left in the reader: got %q (%v), want %q (%v); %s", rest2, e2, rest1, e1, where)
	}
	return true
}

// diffAllWays runs diffResponse on data as it arrives in one read and in
// several, through a 4 KiB reader (the transport's) and a small one, with
// and without a HEAD request, ending in EOF or another error.
func diffAllWays(t testing.TB, data []byte) (cases, fast int) {
	for _, seg := range []int{1 << 20, 17, 1} {
		for _, size := range []int{4096, 16} {
			for _, method := range []string{"GET", "HEAD", "", "POST"} {
				for _, endErr := range []bool{false, true} {
					if seg == 1 && (size != 4096 || endErr) {
						continue
					}
					cases++
					if diffResponse(t, respCase{data: data, seg: seg, bufSize: size, endErr: endErr, method: method}) {
						fast++
					}
				}
			}
		}
	}
	return cases, fast
}

// hostileHeads are heads (and bodies) the fast path must either match
// net/http on or leave to it.
var hostileHeads = []string{
	// From the injector's and cmd/credvault's tests.
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\noktenantA-trailing-garbage",
	"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
	"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\n\r\nok",
	"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n",
	"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Echo\r\n\r\n5\r\na: se\r\n",
	"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nb: sec",
	"HTTP/1.1 200 OK\r\nContent-Length: x1\r\n\r\n",
	"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nspoofed-by-M",
	"HTTP/1.1 401 bad key sk-test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
	"HTTP/1.1 302 Found\r\nLocation: /trickle\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npart",
	"HTTP/1.1 307 Temporary Redirect\r\nLocation: /echo\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: one\n\n",
	// Content-Length.
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
	"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 002\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 2 \r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length:2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: \t2\t\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 1_0\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\nok",
	"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\n Content-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX: y\r\n Content-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nextra",
	// Transfer-Encoding.
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nnext",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED \r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\nafter",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T 1\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n" + strings.Repeat("X-Long: "+strings.Repeat("v", 100)+"\r\n", 60) + "\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=1\r\nok\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\n0\n\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("1\r\nx\r\n", 300) + "0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTrailer: X-T\r\nContent-Length: 2\r\n\r\nok",
	// Connection.
	"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nConnection: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nConnection: ,close,\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nConnection: \"close\"\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nConnection:\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nok",
	"HTTP/1.0 200 OK\r\n\r\nok",
	"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
	// Status lines.
	"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200  OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1  200 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 +20 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 099 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 600 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 999 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 599 Whatever\tyou like !\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 O\x00K\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 O\rK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 caf\xc3\xa9\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
	"HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\nok",
	"HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/0.9 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"http/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.10 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"ICY 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 100 Continue\r\n\r\n",
	"HTTP/1.1 199 X\r\n\r\n",
	"HTTP/1.1 205 Reset Content\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
	"HTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\n\r\nerr",
	"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: Mon, 07 Dec 2026 20:00:00 GMT\r\nContent-Length: 19\r\n\r\n404 page not found\n",
	"",
	"HTTP/1.1 200 OK\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
	"HTTP/1.1 200 OK",
	"\r\n\r\n",
	"HTTP/1.1 200 OK\r\n\r\n",
	// Header names and values.
	"HTTP/1.1 200 OK\r\nx-lower: a\r\nX-UPPER: b\r\nx-Mixed-CASE: c\r\nwww-authenticate: d\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Empty2: \r\nX-Tab:\t\tv\t\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-Other: o\r\nSet-Cookie: b=2\r\nset-cookie: c=3\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX(bad): v\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX bad: v\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\n: v\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nNoColon\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX-A: caf\xc3\xa9\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX-\xc3\xa9: v\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX-A: a:b::c\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX-A: first\r\n\tfolded\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX-A: first\r\n folded\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\n!#$%&'*+-.^_`|~09az: v\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\n-x--y-: v\r\n1abc: w\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nCache-Control: max-age=5\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\npragma: no-cache\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nPragma: No-Cache\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nPragma: x\r\nPragma: no-cache\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("v", 3000) + "\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("v", 5000) + "\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\n" + strings.Repeat("x-many: v\r\n", 63) + "Content-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Many: v\r\n", 64) + "Content-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\n" + strings.Repeat("x-n: v\r\n", 300) + "\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
}

// capturedHeads are the raw responses of net/http servers behind the
// handlers the injector's and cmd/credvault's tests use (headers set,
// statuses, small and streamed bodies, trailers), as the upstream sends
// them.
func capturedHeads(t testing.TB) []string {
	handlers := []http.HandlerFunc{
		func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") },
		func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) },
		func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) },
		func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", http.StatusForbidden) },
		func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) },
		func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/x", http.StatusFound) },
		func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Add("Set-Cookie", "a=1")
			w.Header().Add("Set-Cookie", "b=2")
			w.Header().Set("X-Echo", r.Header.Get("Authorization"))
			io.WriteString(w, `{"balance":42}`)
		},
		func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, strings.Repeat("x", 10000)) // chunked
		},
		func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "part one ")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part two")
			w.Header().Set("X-Sum", "abc")
		},
		func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.(http.Flusher).Flush()
			io.WriteString(w, "data: one\n\n")
		},
		func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		},
		func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, "hello")
		},
		func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Pragma", "no-cache")
			w.Header().Set("Www-Authenticate", `Bearer realm="x"`)
			w.WriteHeader(http.StatusTooManyRequests)
		},
	}
	var out []string
	for _, h := range handlers {
		srv := httptest.NewServer(h)
		for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(conn, "GET /v1/balance %s\r\nHost: x\r\nAuthorization: Bearer t\r\nConnection: close\r\n\r\n", proto)
			raw, _ := io.ReadAll(conn)
			conn.Close()
			out = append(out, string(raw))
		}
		srv.Close()
	}
	return out
}

// TestFastResponseMatchesNetHTTP is the differential test: every head of
// the tables, as it may arrive, parsed by the fast path and by
// http.ReadResponse.
func TestFastResponseMatchesNetHTTP(t *testing.T) {
	heads := append(capturedHeads(t), hostileHeads...)
	cases, fast := 0, 0
	for _, h := range heads {
		c, f := diffAllWays(t, []byte(h))
		cases += c
		fast += f
	}
	t.Logf("%d heads, %d cases, %d on the fast path", len(heads), cases, fast)
	if fast == 0 {
		t.Fatal("the fast path took nothing")
	}
}

// mutate changes data in one to four random places, among them the
// hostile pieces of hostileHeads.
func mutate(rng *rand.Rand, data []byte) []byte {
	pieces := []string{"\r\n", "\n", "\r", " ", "\t", ":", "\x00", "\x7f", "\xc3", "Content-Length: 3\r\n",
		"Transfer-Encoding: chunked\r\n", "Connection: close\r\n", "Connection: keep-alive\r\n", "Trailer: X\r\n",
		"Pragma: no-cache\r\n", "\r\n ", "0\r\n\r\n", "1", "0", ",", "chunked", "HTTP/1.0", "HTTP/1.1 100 Continue\r\n\r\n"}
	d := append([]byte(nil), data...)
	for k := rng.Intn(4); k >= 0; k-- {
		i := 0
		if len(d) > 0 {
			i = rng.Intn(len(d) + 1)
		}
		switch rng.Intn(6) {
		case 0: // delete a byte
			if i < len(d) {
				d = append(d[:i], d[i+1:]...)
			}
		case 1: // replace a byte
			if i < len(d) {
				d[i] = byte(rng.Intn(256))
			}
		case 2: // insert a piece
			p := pieces[rng.Intn(len(pieces))]
			d = append(d[:i], append([]byte(p), d[i:]...)...)
		case 3: // flip a letter's case
			if i < len(d) && ('a' <= d[i]|0x20 && d[i]|0x20 <= 'z') {
				d[i] ^= 0x20
			}
		case 4: // duplicate a line
			line := d[i:]
			if j := bytes.Index(line, []byte("\r\n")); j >= 0 {
				line = line[:j+2]
			}
			d = append(d[:i], append(append([]byte(nil), line...), d[i:]...)...)
		case 5: // change a digit
			if i < len(d) && '0' <= d[i] && d[i] <= '9' {
				d[i] = byte('0' + rng.Intn(10))
			}
		}
	}
	return d
}

// TestFastResponseMutations runs the differential test on random
// mutations of the tables' heads (a fixed seed, a bounded count).
func TestFastResponseMutations(t *testing.T) {
	heads := append(capturedHeads(t), hostileHeads...)
	rng := rand.New(rand.NewSource(24))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	cases, fast := 0, 0
	for i := 0; i < n; i++ {
		data := mutate(rng, []byte(heads[rng.Intn(len(heads))]))
		seg := []int{1 << 20, 1 << 20, 23, 1}[rng.Intn(4)]
		size := []int{4096, 4096, 16}[rng.Intn(3)]
		method := []string{"GET", "GET", "HEAD", ""}[rng.Intn(4)]
		cases++
		if diffResponse(t, respCase{data: data, seg: seg, bufSize: size, endErr: rng.Intn(4) == 0, method: method}) {
			fast++
		}
	}
	t.Logf("%d mutations, %d on the fast path", cases, fast)
}

// FuzzFastResponse holds the fast path to http.ReadResponse on any input.
func FuzzFastResponse(f *testing.F) {
	for _, h := range hostileHeads {
		f.Add([]byte(h), uint8(0), uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, how, method uint8) {
		seg := []int{1 << 20, 1, 7, 64}[how%4]
		size := []int{4096, 16}[(how/4)%2]
		m := []string{"GET", "HEAD", "", "POST"}[method%4]
		diffResponse(t, respCase{data: data, seg: seg, bufSize: size, endErr: how&8 != 0, method: m})
	})
}

// TestFastResponseHeaderAliasing: values of one name grown by Add never
// overwrite another name's (each slice is capped at its own values).
func TestFastResponseHeaderAliasing(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nA: 3\r\nContent-Length: 0\r\n\r\n"))
	br.Peek(1)
	resp := fastResponse(br, nil)
	if resp == nil {
		t.Fatal("fell back")
	}
	resp.Header.Add("A", "x")
	resp.Header.Add("B", "y")
	if got := resp.Header["A"]; !reflect.DeepEqual(got, []string{"1", "3", "x"}) {
		t.Fatalf("A = %q", got)
	}
	if got := resp.Header["B"]; !reflect.DeepEqual(got, []string{"2", "y"}) {
		t.Fatalf("B = %q", got)
	}
	if got := resp.Header["Content-Length"]; !reflect.DeepEqual(got, []string{"0"}) {
		t.Fatalf("Content-Length = %q", got)
	}
}

// TestFastResponseAllocs: the fast path's allocations on a typical head.
func TestFastResponseAllocs(t *testing.T) {
	data := []byte(typicalHead)
	rd := bytes.NewReader(data)
	br := bufio.NewReaderSize(rd, 4096)
	allocs := testing.AllocsPerRun(200, func() {
		rd.Reset(data)
		br.Reset(rd)
		br.Peek(1)
		if fastResponse(br, nil) == nil {
			t.Fatal("fell back")
		}
	})
	if allocs > 4 {
		t.Fatalf("%v allocations, want at most 4", allocs)
	}
	t.Logf("%v allocations", allocs)
}

const typicalHead = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Mon, 07 Dec 2026 20:00:00 GMT\r\nContent-Length: 20\r\n\r\n{\"balance\":42,\"x\":1}"

// BenchmarkReadResponseHead sets the fast path beside http.ReadResponse
// on a typical upstream head (and body read through).
func BenchmarkReadResponseHead(b *testing.B) {
	data := []byte(typicalHead)
	for _, tc := range []struct {
		name string
		read func(*bufio.Reader, *http.Request) (*http.Response, error)
	}{{"net-http", http.ReadResponse}, {"fast", readResponse}} {
		b.Run(tc.name, func(b *testing.B) {
			rd := bytes.NewReader(data)
			br := bufio.NewReaderSize(rd, 4096)
			var sink [64]byte
			b.ReportAllocs()
			for b.Loop() {
				rd.Reset(data)
				br.Reset(rd)
				br.Peek(1)
				resp, err := tc.read(br, nil)
				if err != nil {
					b.Fatal(err)
				}
				for {
					if _, err := resp.Body.Read(sink[:]); err != nil {
						break
					}
				}
			}
		})
	}
}

// TestDirectTransportFastPath: the direct transport reads a net/http
// server's responses (a Content-Length one and a chunked one with an
// undeclared trailer) through the fast path, and keeps the connection for the next
// call.
func TestDirectTransportFastPath(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" { // a trailer not declared (a declared one takes net/http's path)
			io.WriteString(w, "part one ")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part two")
			w.Header().Set(http.TrailerPrefix+"X-Sum", "abc")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()
	client := NewClient(ClientOptions{AllowPrivate: true})
	defer client.CloseIdleConnections()
	for i, path := range []string{"/json", "/chunked", "/json"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		resp, err := client.direct.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		db, ok := resp.Body.(*directBody)
		if !ok {
			t.Fatalf("body %T", resp.Body)
		}
		if _, ok := db.body.(*fastBody); !ok {
			t.Fatalf("%s: not read by the fast path (body %T)", path, db.body)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		switch path {
		case "/json":
			if string(body) != `{"ok":true}` || resp.ContentLength != 11 || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("%s: %q %d %q", path, body, resp.ContentLength, resp.Header)
			}
		case "/chunked":
			if string(body) != "part one part two" || resp.Trailer.Get("X-Sum") != "abc" || len(resp.TransferEncoding) != 1 {
				t.Fatalf("%s: %q trailer %q TE %q", path, body, resp.Trailer, resp.TransferEncoding)
			}
		}
		if i > 0 && !db.dc.reused {
			t.Fatalf("call %d: the connection was not kept", i)
		}
	}
}
