package injector

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Limits of the direct transport's pool of kept-alive connections, the
// same as the net/http Transport's (see NewClient).
const (
	directMaxIdle        = 1024
	directMaxIdlePerHost = 256
	directIdleTimeout    = 90 * time.Second
	directMaxHeaderBytes = 1 << 20
	directMax1xx         = 5
)

// directTransport sends HTTP/1.1 requests (http:// upstreams, and https://
// ones over TLS, see directTLS) in the caller's goroutine: the request is
// written and the response read on the calling goroutine, with no reader
// and writer goroutine per connection and no hand-off between them, which
// is what Go's HTTP/1.1 Transport spends most of its CPU on. The wire format is net/http's own (http.Request.Write
// and http.ReadResponse: the same header parsing, framing checks and
// trailers; the common response head takes readResponse's fast path,
// held to http.ReadResponse by differential tests), so that only the
// scheduling differs. The dial function is the
// Client's egress-checked one. Deadlines and cancellation act on the
// connection: ResponseHeaderTimeout and the context's deadline set its
// deadline, and a canceled context sets a deadline in the past (watched
// only when the context can be canceled at all; for Do's callCtx, the
// caller's context).
//
// Requests it does not take (see directEligible and directTLS.takes) go to
// net/http's Transport: https:// upstreams that chose HTTP/2 in ALPN,
// request bodies of unknown length (chunked), request trailers and
// "Expect: 100-continue".
type directTransport struct {
	dial          func(ctx context.Context, network, address string) (net.Conn, error)
	headerTimeout time.Duration
	scopeKey      [32]byte   // HMAC key of scopeOf, random per transport
	tls           *directTLS // https:// connections; set by NewClient
	// awaiting is the number of calls that have written their request
	// and not yet read the first byte of its answer; procs is GOMAXPROCS
	// when the transport was made. See roundTrip.
	awaiting atomic.Int32
	procs    int32

	mu      sync.Mutex
	idle    map[poolKey][]*directConn // by scheme, host:port and scope; a key whose list is empty stays until the next sweep
	nIdle   int
	janitor bool
}

func newDirectTransport(dial func(ctx context.Context, network, address string) (net.Conn, error), headerTimeout time.Duration) *directTransport {
	t := &directTransport{dial: dial, headerTimeout: headerTimeout, procs: int32(runtime.GOMAXPROCS(0))}
	_, _ = rand.Read(t.scopeKey[:]) // crypto/rand.Read never fails (Go 1.24)
	return t
}

// scopeCtxKey is the context key of a call's pool scope.
type scopeCtxKey struct{}

// scopeOf is the pool scope of calls made with the credential value v:
// kept-alive connections are shared only between calls with the same
// value, so that an upstream that loses the framing of HTTP/1.1 (an early
// answer with the request body left unread and parsed as a next request, a
// late extra response) can only mix up the answers of one credential's
// calls, never hand one credential's answer to another's caller. The scope
// is an HMAC of v under a per-transport random key, never v. Do keeps it
// with the credential's prepared state (prepared.scopeFor), so that it is
// computed once per value, not per call.
func (t *directTransport) scopeOf(v string) string {
	m := hmac.New(sha256.New, t.scopeKey[:])
	m.Write([]byte(v)) // #nosec G104 -- hash.Hash.Write never fails
	return string(m.Sum(nil)[:16])
}

// poolKey is what kept-alive connections are pooled by: the scheme (TLS
// or not), the host:port dialed and the credential scope (see scopeOf).
type poolKey struct {
	tls         bool // https://: a TLS connection, never handed to a plain request nor the reverse
	addr, scope string
}

// directConn is one kept-alive connection with its buffers.
type directConn struct {
	conn net.Conn
	raw  syscall.RawConn // for stillOpen; nil when conn has none
	peek func(fd uintptr)
	open bool // set by peek
	src  limitedConn
	br   *bufio.Reader
	bw   *bufio.Writer
	sink countingConn // bw's destination: conn, counting the writes
	// flushWait is flushThenReady as a method value, made once per
	// connection so that RawConn.Read is given no new closure per call.
	flushWait func(fd uintptr) bool
	flushed   bool  // flushThenReady has written the request
	flushErr  error // and the write's error, or setting the read deadline's
	// The read deadline flushThenReady sets once the request is written
	// (ResponseHeaderTimeout from then, or the call's deadline when
	// sooner), from these, set by roundTrip for the call.
	headerTimeout time.Duration
	callBy        time.Time // the call's deadline, or zero for none
	canceled      *atomic.Bool
	readBy        time.Time // the read deadline set
	key           poolKey
	idleAt        time.Time
	reused        bool
}

// countingConn is the write side of a connection, counting the writes
// made to it, so that roundTrip knows whether a request is still whole in
// the connection's buffer (see flushAndWait).
type countingConn struct {
	conn   net.Conn
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes++
	return c.conn.Write(p)
}

// countingReaderFrom is a countingConn whose conn is an io.ReaderFrom (a
// TCP connection): bufio.Writer hands a large body to its ReadFrom
// (splice or sendfile) as it would to the connection itself.
type countingReaderFrom countingConn

func (c *countingReaderFrom) Write(p []byte) (int, error) {
	return (*countingConn)(c).Write(p)
}

func (c *countingReaderFrom) ReadFrom(r io.Reader) (int64, error) {
	c.writes++
	return c.conn.(io.ReaderFrom).ReadFrom(r)
}

// limitedConn is the read side of a connection with a byte budget, so that
// the response header cannot exceed directMaxHeaderBytes.
type limitedConn struct {
	conn net.Conn
	left int64
}

var errHeaderTooLarge = fmt.Errorf("upstream response headers exceeded %d bytes", directMaxHeaderBytes)

func (l *limitedConn) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.conn.Read(p)
	l.left -= int64(n)
	return n, err
}

// directEligible reports whether req can go over the direct transport:
// http or https (see directTLS.takes for what more https needs), a body of
// known length (or none), no request trailers and no Expect header.
func directEligible(req *http.Request) bool {
	if (req.URL.Scheme != "http" && req.URL.Scheme != "https") || len(req.Trailer) > 0 || len(req.TransferEncoding) > 0 {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody && req.ContentLength <= 0 {
		return false
	}
	for k := range req.Header {
		if strings.EqualFold(k, "Expect") {
			return false
		}
	}
	return true
}

// directAddr is the host:port to dial for u (port 80 for http and 443 for
// https when absent).
func directAddr(req *http.Request) string {
	if req.URL.Port() != "" {
		return req.URL.Host // already host:port, IPv6 in brackets
	}
	if req.URL.Scheme == "https" {
		return net.JoinHostPort(req.URL.Hostname(), "443")
	}
	return net.JoinHostPort(req.URL.Hostname(), "80")
}

// RoundTrip sends req and returns its response with the body still to be
// read; the connection goes back to the pool once the body is read to its
// end, and is closed when the body is closed before. req.Body is closed.
// Errors are the dialer's, the connection's (timeouts are net.Error with
// Timeout true) and http.ReadResponse's; a request on a reused
// connection that the upstream had closed is sent again on a new one when
// it can be replayed (net/http's rule: no body or GetBody, and an
// idempotent method or an Idempotency-Key). errUseHTTP2 (an https://
// upstream that chose h2 on the first connection tried) leaves req.Body
// open and unread, for net/http's Transport to send.
func (t *directTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := validRequest(req); err != nil {
		closeBody(req)
		return nil, err
	}
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		closeBody(req) // as net/http: nothing is sent for a call already canceled
		return nil, err
	}
	addr := directAddr(req)
	scope, _ := ctx.Value(scopeCtxKey{}).(string)
	// A TLS connection is never handed to a plain request (nor the
	// reverse), nor to another credential's call.
	key := poolKey{tls: req.URL.Scheme == "https", addr: addr, scope: scope}
	var lastErr error
	for attempt := 0; ; attempt++ {
		dc, err := t.get(ctx, key, addr, req.URL)
		if err != nil {
			if err == errUseHTTP2 {
				if attempt == 0 {
					return nil, err // nothing sent; the body is untouched
				}
				err = lastErr // the body may be spent: fail as the reused connection did
			}
			closeBody(req)
			return nil, err
		}
		resp, retry, err := t.roundTrip(ctx, dc, req)
		if err == nil {
			return resp, nil
		}
		if attempt > 0 || !retry || !replayable(req) {
			closeBody(req)
			return nil, err
		}
		lastErr = err
		if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
			body, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			r2 := *req
			r2.Body = body
			req = &r2
		}
	}
}

// validRequest applies the checks net/http's Transport makes before
// sending: a host, a valid method, and valid header field names and values
// (RFC 9110 section 5). The errors name the field, never its value.
func validRequest(req *http.Request) error {
	if req.URL.Host == "" {
		return errors.New("http: no Host in request URL")
	}
	if req.Method != "" && !validMethod(req.Method) {
		return fmt.Errorf("net/http: invalid method %q", req.Method)
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("net/http: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("net/http: invalid header field value for %q", k)
			}
		}
	}
	return nil
}

// validMethod reports whether m is a token (RFC 9110 section 9.1).
func validMethod(m string) bool {
	return len(m) > 0 && strings.IndexFunc(m, func(r rune) bool { return !httpguts.IsTokenRune(r) }) == -1
}

// replayable is net/http's rule for resending a request after a reused
// connection failed before any response byte.
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	for k := range req.Header {
		if strings.EqualFold(k, "Idempotency-Key") || strings.EqualFold(k, "X-Idempotency-Key") {
			return true
		}
	}
	return false
}

// roundTrip is one attempt on dc. retry is true when dc was reused and
// failed before the upstream sent any byte of a response.
func (t *directTransport) roundTrip(ctx context.Context, dc *directConn, req *http.Request) (*http.Response, bool, error) {
	var canceled atomic.Bool
	stop := neverCanceled
	if src := cancelSource(ctx); src.Done() != nil {
		stop = context.AfterFunc(src, func() {
			canceled.Store(true)
			_ = dc.conn.SetDeadline(time.Unix(1, 0))
		})
	}
	fail := func(err error, beforeResponse bool) (*http.Response, bool, error) {
		stop()
		dc.conn.Close() // #nosec G104 -- the connection is being dropped after an error; nothing to add
		return nil, beforeResponse && dc.reused && !canceled.Load(), err
	}
	by, _ := ctx.Deadline() // the call's deadline, or zero for none
	// Writing has the call's deadline; ResponseHeaderTimeout starts once
	// the request is written, as in net/http (a request whole in the
	// buffer too: a write that waits, for an upstream that has stopped
	// reading, is not counted in it). Reading has the call's deadline
	// until then (the one call sets both): a kept connection keeps the
	// deadlines of its last call while idle (nothing reads or writes it
	// there, and stillOpen's peek does not look at them), and
	// flushAndWait's RawConn.Read would fail at once on a read deadline
	// that has passed since.
	if err := setDeadline(dc.conn.SetDeadline, by, &canceled); err != nil {
		return fail(err, false)
	}
	writes := dc.sink.writes
	if err := writeRequest(dc.bw, req); err != nil {
		return fail(err, staleConn(err))
	}
	// Once the request is written, the upstream has not answered yet: a
	// read at once would find nothing and park in the poller, and the
	// read that finds the answer is a second system call (issue 24).
	//   - Under load (more calls awaiting answers than there are Ps), the
	//     goroutines that are ready run first (Gosched, as framingConn
	//     does between a response and the next request), and the read
	//     then mostly finds the answer. Parking in the poller instead
	//     would wait for the scheduler's next poll, which busy Ps make
	//     late.
	//   - Otherwise Gosched finds nothing to run and wakes an idle P for
	//     nothing, and the read finds nothing. A request whole in dc.bw
	//     (no write during writeRequest: at most its 4 KiB, written in
	//     one write) on a reused connection is written by flushAndWait,
	//     which waits for the answer before the read; flushThenReady sets
	//     the read deadline once the request is written. Only on a reused
	//     connection, whose socket stillOpen has just found empty: a new
	//     one may already hold the answer (an upstream that answers
	//     before reading the request), on the socket or, over TLS, read
	//     along with the handshake into the tls.Conn's buffer, where the
	//     wait does not see it (it waits for bytes that come after the
	//     write): it would last until the read deadline
	//     (TestDirectWaitEarlyAnswer, TestDirectWaitTLSEarlyAnswer).
	var readBy time.Time
	var err error
	loaded := t.awaiting.Add(1) > t.procs
	if !loaded && dc.reused && dc.flushWait != nil && dc.sink.writes == writes && dc.br.Buffered() == 0 {
		dc.headerTimeout, dc.callBy, dc.canceled = t.headerTimeout, by, &canceled
		err = dc.flushAndWait()
		readBy, dc.canceled = dc.readBy, nil
	} else if err = dc.bw.Flush(); err == nil {
		readBy = headerBy(t.headerTimeout, by)
		if err = setDeadline(dc.conn.SetReadDeadline, readBy, &canceled); err == nil {
			runtime.Gosched()
		}
	}
	if err == nil {
		dc.src.left = directMaxHeaderBytes
		_, err = dc.br.Peek(1)
	}
	t.awaiting.Add(-1)
	if err != nil {
		// Setting a deadline fails only on a closed connection, which
		// staleConn does not take for a stale one either.
		return fail(err, staleConn(err))
	}
	var resp *http.Response
	for n := 0; ; n++ {
		r, err := readResponse(dc.br, req)
		if err != nil {
			return fail(err, false)
		}
		if r.StatusCode < 100 || r.StatusCode > 199 || r.StatusCode == http.StatusSwitchingProtocols {
			resp = r
			break
		}
		if n >= directMax1xx {
			return fail(errors.New("upstream sent too many 1xx informational responses"), false)
		}
	}
	dc.src.left = math.MaxInt64
	if !readBy.Equal(by) {
		if err := setDeadline(dc.conn.SetReadDeadline, by, &canceled); err != nil {
			return fail(err, false)
		}
	}
	keep := !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols
	resp.Body = &directBody{body: resp.Body, t: t, dc: dc, stop: stop, keep: keep}
	return resp, false, nil
}

// headerBy is the read deadline for a response's head, from a request
// written now: ResponseHeaderTimeout (timeout, when set) from now, or the
// call's deadline by (zero for none) when sooner.
func headerBy(timeout time.Duration, by time.Time) time.Time {
	if timeout > 0 {
		if hb := time.Now().Add(timeout); by.IsZero() || hb.Before(by) {
			return hb
		}
	}
	return by
}

// neverCanceled is roundTrip's stop when the call's context cannot be
// canceled (Done is nil): there is nothing to watch, and the call is live.
func neverCanceled() bool { return true }

// setDeadline sets a connection's deadline (set is its SetDeadline or
// SetReadDeadline) to by, unless the call was canceled, in which case the
// deadline stays in the past (checked again after setting, since the
// cancellation may come in between).
func setDeadline(set func(time.Time) error, by time.Time, canceled *atomic.Bool) error {
	if canceled.Load() {
		return nil
	}
	err := set(by)
	if canceled.Load() {
		return set(time.Unix(1, 0))
	}
	return err
}

// staleConn reports whether err is how a connection the upstream had
// already closed fails: reset, broken pipe or end of stream before any
// response byte.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// directBody is a response body on a direct connection: at its end the
// connection goes back to the pool (when the response allows keep-alive
// and the call was not canceled); closed earlier, the connection is closed,
// as net/http does, rather than read to the end.
type directBody struct {
	body io.ReadCloser
	t    *directTransport
	dc   *directConn
	stop func() bool
	keep bool
	done atomic.Bool // Close may come from another goroutine while Read waits
	eof  bool        // Read saw the end (written and read by Read only)
}

var errClosedBody = errors.New("read on a closed response body")

func (b *directBody) Read(p []byte) (int, error) {
	if b.done.Load() {
		if b.eof {
			return 0, io.EOF
		}
		return 0, errClosedBody
	}
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.eof = true
		b.release(true)
	}
	return n, err
}

// Close releases the connection (see directBody). It cannot fail.
func (b *directBody) Close() error {
	b.release(false)
	return nil
}

func (b *directBody) release(eof bool) {
	if !b.done.CompareAndSwap(false, true) {
		return
	}
	live := b.stop()
	if (eof || b.body == http.NoBody) && b.keep && live && b.dc.br.Buffered() == 0 {
		b.t.put(b.dc)
		return
	}
	b.dc.conn.Close() // #nosec G104 -- the connection is dropped; nothing to add
}

// get returns a kept-alive connection of key (scheme, addr and scope) that
// is still open, or dials addr anew with the Client's egress-checked dialer
// (and TLS for https, see directTLS.dial).
func (t *directTransport) get(ctx context.Context, key poolKey, addr string, u *url.URL) (*directConn, error) {
	now := time.Now()
	for {
		t.mu.Lock()
		list := t.idle[key]
		if len(list) == 0 {
			t.mu.Unlock()
			break
		}
		dc := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[key] = list[:len(list)-1] // kept when empty: the next put reuses its array
		t.nIdle--
		t.mu.Unlock()
		if now.Sub(dc.idleAt) < directIdleTimeout && dc.stillOpen() {
			dc.reused = true
			return dc, nil
		}
		dc.conn.Close() // #nosec G104 -- a stale idle connection is dropped; nothing to add
	}
	conn, netConn, err := t.tls.dial(realContext(ctx), t.dial, u, addr)
	if err != nil {
		return nil, err
	}
	dc := &directConn{conn: conn, key: key}
	// The idle check looks at the TCP socket, under TLS too: any byte
	// there (a close_notify alert, a late session ticket) or its end means
	// the connection is dropped rather than reused.
	if sc, ok := netConn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			dc.raw = raw
			dc.peek = dc.peekOpen
			dc.flushWait = dc.flushThenReady
		}
	}
	dc.src.conn = conn
	dc.sink.conn = conn
	dc.br = bufio.NewReaderSize(&dc.src, 4<<10)
	if _, ok := conn.(io.ReaderFrom); ok {
		dc.bw = bufio.NewWriterSize((*countingReaderFrom)(&dc.sink), 4<<10)
	} else {
		dc.bw = bufio.NewWriterSize(&dc.sink, 4<<10)
	}
	return dc, nil
}

// flushAndWait writes the request held whole in dc.bw and waits until
// the connection has something to read (the upstream's answer, its end,
// or the read deadline), so that the read that follows finds the answer
// instead of finding nothing and parking: one read system call per
// answer instead of two (issue 24). The write is made from inside
// RawConn.Read, after it has cleared the socket's readiness and before it
// waits: whatever the upstream sends in reply arrives after that, and
// wakes the wait. Writing before RawConn.Read would lose an answer that
// came (and was noted ready) in between, leaving the call to wait for its
// deadline. A wait that ends in an error (the deadline, a cancellation,
// the connection closed) is left to the read that follows, which reports
// it as a read always has. The read deadline (ResponseHeaderTimeout) is
// set once the request is written, in dc.readBy. Errors: the write's and
// setting the deadline's.
func (dc *directConn) flushAndWait() error {
	dc.flushed, dc.flushErr = false, nil
	_ = dc.raw.Read(dc.flushWait) // #nosec G104 -- a failed wait is the next read's error (see above)
	if !dc.flushed {
		// RawConn.Read failed before calling flushWait (the call's
		// deadline had passed, or a cancellation); the write reports it.
		if err := dc.bw.Flush(); err != nil {
			return err
		}
		return dc.setReadBy()
	}
	return dc.flushErr
}

// setReadBy sets the read deadline for the answer to a request just
// written (see headerBy), unless it is the call's deadline, set already.
func (dc *directConn) setReadBy() error {
	dc.readBy = headerBy(dc.headerTimeout, dc.callBy)
	if dc.readBy.Equal(dc.callBy) {
		return nil
	}
	return setDeadline(dc.conn.SetReadDeadline, dc.readBy, dc.canceled)
}

// flushThenReady is the function flushAndWait gives RawConn.Read: on its
// first call it writes the request and asks to wait; called again, the
// connection is readable.
func (dc *directConn) flushThenReady(uintptr) bool {
	if dc.flushed {
		return true
	}
	dc.flushed = true
	if dc.flushErr = dc.bw.Flush(); dc.flushErr == nil {
		dc.flushErr = dc.setReadBy()
	}
	return dc.flushErr != nil
}

// stillOpen reports whether an idle connection has neither been closed by
// the upstream nor received bytes it did not ask for: a non-blocking peek
// at the socket (net/http learns the same from its reader goroutine),
// through RawConn.Control, which neither waits nor looks at the deadlines
// the connection kept from its last call.
func (dc *directConn) stillOpen() bool {
	if dc.raw == nil {
		return true
	}
	dc.open = false
	return dc.raw.Control(dc.peek) == nil && dc.open
}

// peekOpen is directConn.peek: one MSG_PEEK|MSG_DONTWAIT receive, open
// when there is nothing to read yet.
func (dc *directConn) peekOpen(fd uintptr) {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	dc.open = n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
}

// put keeps dc for reuse, within the pool's bounds.
func (t *directTransport) put(dc *directConn) {
	dc.idleAt = time.Now()
	t.mu.Lock()
	list := t.idle[dc.key]
	if t.nIdle >= directMaxIdle || len(list) >= directMaxIdlePerHost {
		t.mu.Unlock()
		dc.conn.Close() // #nosec G104 -- over the pool's bound; nothing to add
		return
	}
	if t.idle == nil {
		t.idle = make(map[poolKey][]*directConn)
	}
	t.idle[dc.key] = append(list, dc)
	t.nIdle++
	start := !t.janitor
	t.janitor = true
	t.mu.Unlock()
	if start {
		go t.sweep()
	}
}

// sweep closes connections idle for longer than directIdleTimeout, every
// half of it, deletes the keys left without connections, and ends when the
// pool is empty (put starts it again).
func (t *directTransport) sweep() {
	for {
		time.Sleep(directIdleTimeout / 2)
		cutoff := time.Now().Add(-directIdleTimeout)
		var old []*directConn
		t.mu.Lock()
		for k, list := range t.idle {
			kept := list[:0]
			for _, dc := range list {
				if dc.idleAt.Before(cutoff) {
					old = append(old, dc)
				} else {
					kept = append(kept, dc)
				}
			}
			for i := len(kept); i < len(list); i++ {
				list[i] = nil
			}
			if len(kept) == 0 {
				delete(t.idle, k)
			} else {
				t.idle[k] = kept
			}
		}
		t.nIdle -= len(old)
		empty := t.nIdle == 0
		if empty {
			t.janitor = false
		}
		t.mu.Unlock()
		for _, dc := range old {
			dc.conn.Close() // #nosec G104 -- idle too long; nothing to add
		}
		if empty {
			return
		}
	}
}

// closeIdle closes every kept-alive connection. It cannot fail.
func (t *directTransport) closeIdle() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.nIdle = 0
	t.mu.Unlock()
	for _, list := range idle {
		for _, dc := range list {
			dc.conn.Close() // #nosec G104 -- shutting down; nothing to add
		}
	}
}
