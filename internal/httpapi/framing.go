package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// fasthttp (v1.51, under Fiber) frames requests leniently: of several
// Content-Length lines the last wins, and any Transfer-Encoding other than
// "identity" is read as chunked ("xchunked" included), with no option to
// refuse either (header.go, RequestHeader.parseHeaders). A front proxy that
// reads the same bytes another way lets a second request ride in the body
// of the first (request smuggling). So every connection is read through
// framingConn, which checks each request head before fasthttp sees it and
// follows the body framing to find the next head.

// Limits of the framing check.
const (
	maxRequestHead = 64 << 10 // bytes up to the empty line; fasthttp refuses far less
	maxChunkLine   = 4 << 10  // a chunk-size line or a trailer line
)

// framingListener wraps each accepted connection in a framingConn.
type framingListener struct{ net.Listener }

func (l framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framingConn{Conn: c}, nil
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

// framingConn hands fasthttp only request heads it has checked (RFC 9112
// sections 5 and 6): at most one Content-Length, of digits only; a
// Transfer-Encoding that is exactly "chunked" (one line, HTTP/1.1) and
// never together with Content-Length; no line folding and no whitespace
// before a field name's colon. Bodies pass unchanged while it follows their
// length or chunks to where the next head starts. A request that fails is
// never passed on: Read reports the end of the stream (so fasthttp stops
// after answering the requests before it) and Close writes a 400 with
// "Connection: close" before closing the socket.
type framingConn struct {
	net.Conn
	buf   [4096]byte
	head  []byte // a request head (or a chunk/trailer line) being collected
	ready []byte // checked bytes not yet handed to fasthttp
	state int
	left  int64 // bytes of body or chunk data still to pass
	err   error // the connection's read error, after ready is drained

	mu     sync.Mutex
	refuse string // why a request was refused; "" when none
	closed bool
}

func (c *framingConn) Read(p []byte) (int, error) {
	for {
		if len(c.ready) > 0 {
			n := copy(p, c.ready)
			c.ready = c.ready[n:]
			return n, nil
		}
		if c.refused() {
			return 0, io.EOF
		}
		if c.err != nil {
			return 0, c.err
		}
		n, err := c.Conn.Read(c.buf[:])
		c.ready = c.ready[:0]
		if why := c.feed(c.buf[:n]); why != "" {
			c.mu.Lock()
			c.refuse = why
			c.mu.Unlock()
		}
		if err != nil {
			c.err = err
		}
	}
}

func (c *framingConn) refused() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refuse != ""
}

// pass queues b for fasthttp. ready is rebuilt on every Read of the
// connection, so it owns its bytes.
func (c *framingConn) pass(b []byte) { c.ready = append(c.ready, b...) }

// feed follows b through the framing and queues what may go on; it returns
// why the stream was refused, or "".
func (c *framingConn) feed(b []byte) string {
	for len(b) > 0 {
		switch c.state {
		case inHead, inChunkSize, inChunkEnd, inTrailers:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.head = append(c.head, b...)
				if c.state == inHead && len(c.head) > maxRequestHead || c.state != inHead && len(c.head) > maxChunkLine {
					return "the request head or a chunk line is too long"
				}
				return ""
			}
			start := len(c.head)
			c.head = append(c.head, b[:i+1]...)
			b = b[i+1:]
			if why := c.line(start); why != "" {
				return why
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
	return ""
}

// line handles the line c.head[start:], which ends with a line feed.
func (c *framingConn) line(start int) string {
	ln := c.head[start:]
	blank := len(ln) == 1 || len(ln) == 2 && ln[0] == '\r'
	switch c.state {
	case inHead:
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
			return why
		}
		c.pass(ln)
		c.head = c.head[:0]
		if size == 0 {
			c.state = inTrailers
		} else {
			c.state, c.left = inChunkData, size
		}
	case inChunkEnd:
		if !bytes.Equal(ln, []byte("\r\n")) {
			return "chunk data is not followed by CRLF"
		}
		c.pass(ln)
		c.head = c.head[:0]
		c.state = inChunkSize
	case inTrailers:
		c.pass(ln)
		c.head = c.head[:0]
		if blank {
			c.state = inHead
		}
	}
	return ""
}

// checkHead checks a complete request head, passes it on and sets the
// state for its body.
func (c *framingConn) checkHead() string {
	head := c.head
	lines := bytes.Split(bytes.TrimRight(head, "\r\n"), []byte("\n"))
	reqLine := bytes.TrimSuffix(lines[0], []byte("\r"))
	http10 := bytes.HasSuffix(reqLine, []byte(" HTTP/1.0"))
	var cl int64 = -1
	nCL, nTE := 0, 0
	for _, l := range lines[1:] {
		l = bytes.TrimSuffix(l, []byte("\r"))
		if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
			return "a header line is folded (obs-fold)"
		}
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 {
			return "a header line has no field name and colon"
		}
		name := l[:colon]
		if name[len(name)-1] == ' ' || name[len(name)-1] == '\t' {
			return "a header field name is followed by whitespace before the colon"
		}
		value := bytes.Trim(l[colon+1:], " \t")
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			nCL++
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || len(value) == 0 || value[0] < '0' || value[0] > '9' {
				return "Content-Length is not a single decimal number"
			}
			cl = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			nTE++
			if !bytes.EqualFold(value, []byte("chunked")) {
				return "Transfer-Encoding is not exactly \"chunked\""
			}
		}
	}
	switch {
	case nCL > 1:
		return "Content-Length is sent more than once"
	case nTE > 1:
		return "Transfer-Encoding is sent more than once"
	case nCL > 0 && nTE > 0:
		return "both Content-Length and Transfer-Encoding are sent"
	case nTE > 0 && http10:
		return "Transfer-Encoding is not defined for HTTP/1.0"
	}
	c.pass(head)
	c.head = c.head[:0]
	switch {
	case nTE > 0:
		c.state = inChunkSize
	case cl > 0:
		c.state, c.left = inBody, cl
	default:
		c.state = inHead
	}
	return ""
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

// Close answers a refused request with 400 and closes the connection.
func (c *framingConn) Close() error {
	c.mu.Lock()
	why, first := c.refuse, !c.closed
	c.closed = true
	c.mu.Unlock()
	if why != "" && first {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		body, _ := json.Marshal(errorBody{
			Error:     errorDetail{Code: "invalid_framing", Message: "request framing refused: " + why + " (RFC 9112 section 6); send one Content-Length or Transfer-Encoding: chunked"},
			RequestID: string(appendRequestID(nil)),
		})
		_, _ = fmt.Fprintf(c.Conn, "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	}
	return c.Conn.Close()
}
