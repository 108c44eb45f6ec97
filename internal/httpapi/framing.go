package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"
)

// fasthttp (v1.51, under Fiber) framed requests leniently: of several
// Content-Length lines the last won, and any Transfer-Encoding other than
// "identity" was read as chunked ("xchunked" included), with no option to
// refuse either (header.go, RequestHeader.parseHeaders). v1.79, which
// credvault now builds with, is stricter (one Transfer-Encoding line whose
// value is exactly chunked), but its rules are not RFC 9112's in every
// case and may change again; the guard stays the one rule. A front proxy that
// reads the same bytes another way lets a second request ride in the body
// of the first (request smuggling). So every connection is read through
// framingConn, which checks each request head before fasthttp sees it and
// follows the body framing to find the next head.

// Limits of the head check. fasthttp's read buffer (readBufferSize, set in
// NewServer) must hold a whole head, so the guard refuses longer ones
// itself, with a status that says which part is too long.
const (
	maxRequestLine = 4 << 10  // the request line: longer is 414 (RFC 9112 section 3)
	maxRequestHead = 8 << 10  // bytes up to the empty line: longer is 431 (RFC 6585 section 5)
	readBufferSize = 12 << 10 // fasthttp's per-connection read buffer: a head plus room
	maxChunkLine   = 4 << 10  // a chunk-size line, or the last one with its trailer section
)

// framingListener wraps each accepted connection in a framingConn; pages
// are the paths whose refusals are HTML pages (nil: none).
type framingListener struct {
	net.Listener
	pages pagePaths
}

func (l framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framingConn{Conn: c, pages: l.pages}, nil
}

// States of framingConn.
const (
	inHead = iota
	inBody
	inChunkSize
	inChunkData
	inChunkEnd
	inTrailers
)

// framingConn hands fasthttp only request heads it has checked
// (checkRequestHead: request line, bytes, Host and framing, RFC 9112).
// Bodies pass unchanged while it follows their length or chunks to where
// the next head starts; the last chunk is held with its trailers until
// they are checked, and the trailer fields are then dropped. A request
// that fails is never passed on: Read reports the end of the stream (so
// fasthttp stops after answering the requests before it) and Close writes the refusal's status (400, 414, 431, 501 or
// 505) with "Connection: close" before closing the socket.
type framingConn struct {
	net.Conn
	buf   [4096]byte
	head  []byte // a request head (or a chunk/trailer line) being collected
	ready []byte // checked bytes not yet handed to fasthttp
	// readyBuf is ready's whole buffer: Read consumes ready from the
	// front, and each feed refills it from the start, so that it is not
	// reallocated on every read.
	readyBuf []byte
	state    int
	left     int64 // bytes of body or chunk data still to pass
	err      error // the connection's read error, after ready is drained
	pages    pagePaths

	wrote bool // a response was written since the last read (see Read)

	rd, wd lazyDeadline

	mu     sync.Mutex
	refuse *headRefusal // why a request was refused; nil when none
	closed bool
}

func (c *framingConn) Read(p []byte) (int, error) {
	for {
		if len(c.ready) > 0 {
			n := copy(p, c.ready)
			c.ready = c.ready[n:]
			return n, nil
		}
		// refuse is written only here, in the reading goroutine, so it is
		// read without the lock (which is for Close).
		if c.refuse != nil {
			return 0, io.EOF
		}
		if c.err != nil {
			return 0, c.err
		}
		// Between requests, read into the caller's buffer (as much as
		// c.buf holds, as the general path reads): a head that arrived
		// whole is then checked where it lies and handed on uncopied.
		buf := c.buf[:]
		direct := c.state == inHead && len(c.head) == 0 && len(p) >= len(c.buf)
		if direct {
			buf = p[:len(c.buf)]
		}
		// Right after a response, the client has not sent its next
		// request yet: a read now almost always finds nothing, and costs
		// a system call and a trip through the poller. Under load,
		// letting the goroutines that are ready run first gives the
		// request time to arrive (issue 24: read calls per proxied call
		// 3.8 → 3.3-3.5 in perf stat counts); with nothing else ready,
		// Gosched returns at once.
		if c.wrote && direct {
			c.wrote = false
			runtime.Gosched()
		}
		if err := c.rd.apply(c.Conn.SetReadDeadline); err != nil {
			return 0, err
		}
		n, err := c.Conn.Read(buf)
		if direct && c.wholeHead(buf[:n]) {
			if err != nil {
				c.err = err
			}
			return n, nil
		}
		c.ready = c.readyBuf[:0]
		r := c.feed(buf[:n])
		c.readyBuf = c.ready[:0]
		if r != nil {
			r.page = c.state == inHead && c.pages.serves(c.head)
			c.mu.Lock()
			c.refuse = r
			c.mu.Unlock()
		}
		if err != nil {
			c.err = err
		}
	}
}

// Write writes a response; the next Read yields first (see Read).
func (c *framingConn) Write(p []byte) (int, error) {
	c.wrote = true
	if err := c.wd.apply(c.Conn.SetWriteDeadline); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// SetDeadline, SetReadDeadline and SetWriteDeadline note the deadline;
// the next Read or Write applies it (lazyDeadline). fasthttp sets them
// from the connection's own goroutine, between its reads and writes
// (credvault's handlers never call RequestCtx.SetReadDeadline or the
// like), so noting is enough: a deadline matters only to a read or write
// that waits.
func (c *framingConn) SetDeadline(t time.Time) error {
	c.rd.want, c.wd.want = t, t
	return nil
}

func (c *framingConn) SetReadDeadline(t time.Time) error {
	c.rd.want = t
	return nil
}

func (c *framingConn) SetWriteDeadline(t time.Time) error {
	c.wd.want = t
	return nil
}

// deadlineSlack is how much earlier than asked a deadline may fall.
const deadlineSlack = time.Second

// lazyDeadline is one direction's deadline: want is the last one asked
// for, set the one the socket has. fasthttp asks for three per keep-alive
// request (the idle time before it, the read timeout after its first
// byte, the write timeout before the response), each a trip through the
// runtime's timers (an eighth of the CPU of /v1/auth/check served over a
// connection in BenchmarkAuthCheckConn, issue 24), while the read that
// follows finds the whole request in one go and the write never waits.
// apply, called before each read or write, gives the socket want unless
// it falls less than deadlineSlack after set: the socket's deadline is
// then never later than asked, and at most deadlineSlack earlier (29-30 s
// for the 30 s read timeout), and a keep-alive connection's deadlines
// move about once a second instead of three times a request.
type lazyDeadline struct{ want, set time.Time }

func (d *lazyDeadline) apply(set func(time.Time) error) error {
	if d.want.IsZero() == d.set.IsZero() && !d.want.Before(d.set) && d.want.Sub(d.set) < deadlineSlack {
		return nil
	}
	if err := set(d.want); err != nil {
		return err
	}
	d.set = d.want
	return nil
}

// wholeHead is the fast path of framingConn: b is a read that holds one
// request head, whole, and nothing after it (a keep-alive GET as gateways
// and load generators send it). It checks the head in place exactly as
// feed would (every line ends with CRLF, the first empty line ends b, no
// line is too long: b is at most 4 KiB; then checkRequestHead) and sets
// the state for its body. It reports false, changing nothing, for
// anything else (a head in parts, an empty line first, a pipelined
// request or body bytes after it, a head feed refuses), which feed then
// reads. Issue 24: collecting the head line by line and copying it twice
// was a tenth of /v1/auth/check's user CPU.
func (c *framingConn) wholeHead(b []byte) bool {
	if len(b) < 4 || len(b) > maxRequestLine || b[0] == '\r' || b[0] == '\n' ||
		bytes.Index(b, []byte("\r\n\r\n")) != len(b)-4 {
		return false
	}
	for i := 0; i < len(b); {
		lf := bytes.IndexByte(b[i:], '\n')
		if lf < 0 {
			break
		}
		if i += lf; i == 0 || b[i-1] != '\r' {
			return false
		}
		i++
	}
	body, r := checkRequestHead(b)
	if r != nil {
		return false
	}
	c.expectBody(body)
	return true
}

// pass queues b for fasthttp. ready is rebuilt on every Read of the
// connection, so it owns its bytes.
func (c *framingConn) pass(b []byte) { c.ready = append(c.ready, b...) }

// feed follows b through the framing and queues what may go on; it returns
// why the stream was refused, or nil.
func (c *framingConn) feed(b []byte) *headRefusal {
	for len(b) > 0 {
		switch c.state {
		case inHead, inChunkSize, inChunkEnd, inTrailers:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.head = append(c.head, b...)
				return c.tooLong()
			}
			// The line starts after the last line feed collected: a line
			// that arrived in several reads is partly in c.head already
			// (a head split before its CRLF is not an empty line).
			start := bytes.LastIndexByte(c.head, '\n') + 1
			c.head = append(c.head, b[:i+1]...)
			b = b[i+1:]
			if r := c.tooLong(); r != nil {
				return r
			}
			if r := c.line(start); r != nil {
				return r
			}
		case inBody, inChunkData:
			n := int(min(c.left, int64(len(b))))
			c.pass(b[:n])
			b, c.left = b[n:], c.left-int64(n)
			if c.left == 0 {
				if c.state == inBody {
					c.state = inHead
				} else {
					c.state = inChunkEnd
				}
			}
		}
	}
	return nil
}

// tooLong refuses a head or chunk line that outgrew its limit: the request
// line alone (414), the whole head (431), a chunk or trailer line (400).
func (c *framingConn) tooLong() *headRefusal {
	if c.state != inHead {
		if len(c.head) > maxChunkLine {
			return refuseFraming("a chunk-size line or the trailer section is longer than 4 KiB")
		}
		return nil
	}
	first := c.head
	if i := bytes.IndexByte(first, '\n'); i >= 0 {
		first = first[:i]
	}
	if len(first) > maxRequestLine {
		return &headRefusal{code: "uri_too_long", message: "the request line is longer than 4 KiB (RFC 9112 section 3); send long data in the body"}
	}
	if len(c.head) > maxRequestHead {
		return &headRefusal{code: "request_header_fields_too_large", message: "the request head is longer than 8 KiB (RFC 6585 section 5); send fewer or shorter header fields"}
	}
	return nil
}

// line handles the line c.head[start:], which ends with a line feed.
func (c *framingConn) line(start int) *headRefusal {
	ln := c.head[start:]
	blank := len(ln) == 2 && ln[0] == '\r'
	switch c.state {
	case inHead:
		if len(ln) < 2 || ln[len(ln)-2] != '\r' {
			return refuseHead("a line of the request head ends with a bare LF; end every line with CRLF (RFC 9112 section 2.2)")
		}
		switch {
		case blank && start == 0:
			// An empty line before a request line is ignored (RFC 9112
			// section 2.2).
			c.pass(ln)
			c.head = c.head[:0]
		case blank:
			return c.checkHead()
		}
	case inChunkSize:
		size, why := chunkSize(ln)
		if why != "" {
			return refuseFraming(why)
		}
		if size == 0 {
			// The last chunk is held with the trailer section until
			// its empty line, so fasthttp never serves a request whose
			// trailers are refused.
			c.state = inTrailers
			return nil
		}
		c.pass(ln)
		c.head = c.head[:0]
		c.state, c.left = inChunkData, size
	case inChunkEnd:
		if !bytes.Equal(ln, []byte("\r\n")) {
			return refuseFraming("chunk data is not followed by CRLF")
		}
		c.pass(ln)
		c.head = c.head[:0]
		c.state = inChunkSize
	case inTrailers:
		if !bytes.HasSuffix(ln, []byte("\r\n")) {
			return refuseHead("a trailer line ends with a bare LF; end every line with CRLF (RFC 9112 section 2.2)")
		}
		if !blank {
			return fieldLineError(ln[:len(ln)-2])
		}
		// Only the last-chunk line and the empty line go on: fasthttp
		// would add trailer fields to the request's header, where a key
		// or an X-Credvault-* field that a gateway checks only in the
		// header would count (RFC 9110 section 6.5.1 forbids the merge;
		// RFC 9112 section 7.1.2 lets a recipient discard trailers, as
		// nginx does).
		c.pass(c.head[:bytes.IndexByte(c.head, '\n')+1])
		c.pass(ln)
		c.head = c.head[:0]
		c.state = inHead
	}
	return nil
}

// checkHead checks a complete request head (see checkRequestHead), passes
// it on and sets the state for its body.
func (c *framingConn) checkHead() *headRefusal {
	body, r := checkRequestHead(c.head)
	if r != nil {
		return r
	}
	c.pass(c.head)
	c.head = c.head[:0]
	c.expectBody(body)
	return nil
}

// expectBody sets the state after a passed request head whose body is
// body bytes long (-1: chunked).
func (c *framingConn) expectBody(body int64) {
	switch {
	case body < 0:
		c.state = inChunkSize
	case body > 0:
		c.state, c.left = inBody, body
	default:
		c.state = inHead
	}
}

// chunkSize reads a chunk-size line (RFC 9112 section 7.1: hex digits, an
// optional extension, CRLF).
func chunkSize(ln []byte) (int64, string) {
	if !bytes.HasSuffix(ln, []byte("\r\n")) {
		return 0, "a chunk-size line does not end with CRLF"
	}
	ln = ln[:len(ln)-2]
	i := 0
	var size int64
	for ; i < len(ln) && hexVal(ln[i]) >= 0; i++ {
		if i >= 15 {
			return 0, "a chunk size is too large"
		}
		size = size<<4 | int64(hexVal(ln[i]))
	}
	if i == 0 {
		return 0, "a chunk size is not a hex number"
	}
	if rest := bytes.TrimLeft(ln[i:], " \t"); len(rest) > 0 && rest[0] != ';' {
		return 0, "a chunk size is followed by something other than an extension"
	}
	return size, ""
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// Close answers a refused request with its status and closes the
// connection: a JSON error body, or an HTML page when the refused request
// was for a page (framingListener.pages).
func (c *framingConn) Close() error {
	c.mu.Lock()
	r, first := c.refuse, !c.closed
	c.closed = true
	c.mu.Unlock()
	if r != nil && first {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		status := statusOfHeadCode[r.code]
		id := string(appendRequestID(nil))
		head, body := "Content-Type: application/json", []byte(nil)
		if r.page {
			head, body = pageHeaders, headRefusalPage(status, r, id)
		} else {
			body, _ = json.Marshal(errorBody{Error: errorDetail{Code: r.code, Message: r.message}, RequestID: id})
		}
		_, _ = fmt.Fprintf(c.Conn, "HTTP/1.1 %d %s\r\n%s\r\nContent-Length: %d\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n%s", status, http.StatusText(status), head, len(body), body)
		lingeringClose(c.Conn)
	}
	return c.Conn.Close()
}

// Limits of lingeringClose.
const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 1 << 20
)

// lingeringClose ends the sending side, then reads and drops what the
// client is still sending (at most lingerBytes, for at most lingerTime)
// before the socket is closed: closing a socket with unread data makes
// the kernel send a reset, which can destroy the refusal before the
// client reads it (a 70 KB request line refused after its first 8 KiB).
// nginx does the same ("lingering_close").
func lingeringClose(conn net.Conn) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return
	}
	_ = tc.CloseWrite()
	_ = tc.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.CopyN(io.Discard, tc, lingerBytes)
}
