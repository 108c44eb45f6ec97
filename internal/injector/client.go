package injector

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"credvault/internal/credvault"
)

// Defaults for the zero values of ClientOptions.
const (
	DefaultDialTimeout           = 5 * time.Second
	DefaultTLSHandshakeTimeout   = 5 * time.Second
	DefaultResponseHeaderTimeout = 30 * time.Second
	DefaultTimeout               = 60 * time.Second
	DefaultMaxRedirects          = 5
	DefaultMaxResponseBytes      = 10 << 20
)

// ClientOptions configures a Client. Every zero value takes its default, so
// that ClientOptions{} is the production configuration.
type ClientOptions struct {
	// AllowPrivate turns the dial-time address check off
	// (CREDVAULT_EGRESS_ALLOW_PRIVATE=true), for development and for tests
	// whose upstreams listen on loopback. allowed_hosts still applies.
	AllowPrivate bool
	// AllowLoopbackPorts lets connections through to these ports on a
	// loopback address (127.0.0.0/8, ::1) and nowhere else private
	// (CREDVAULT_EGRESS_ALLOW_LOOPBACK_PORTS): trying a credential against
	// a local service without opening every private range.
	AllowLoopbackPorts []uint16
	// DialTimeout bounds one TCP connect (default 5s).
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake (default 5s).
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the response headers once
	// the request is written (default 30s).
	ResponseHeaderTimeout time.Duration
	// Timeout bounds the whole call, redirects and reading the body
	// included (default 60s).
	Timeout time.Duration
	// MaxRedirects is how many redirects Do follows (default 5; negative:
	// none).
	MaxRedirects int
	// MaxResponseBytes caps the (decompressed) response body (default
	// 10 MiB; negative: the default).
	MaxResponseBytes int64
	// RootCAs are the certificate authorities upstream TLS certificates
	// must chain to; nil means the system's roots. credvault builds it from
	// the system roots plus CREDVAULT_UPSTREAM_CA_FILE (a private CA).
	RootCAs *x509.CertPool
	// HTTP1Only keeps every https:// call on HTTP/1.1
	// (CREDVAULT_UPSTREAM_HTTP2=false): ALPN offers only "http/1.1", and
	// the calls the direct transport takes all go over it. The default
	// (false) offers "h2" too and sends the calls to an upstream that
	// chooses it over net/http's HTTP/2 client (see directTLS).
	HTTP1Only bool
}

// Client sends credential-bearing requests for the proxy and the credential
// test. It exists because a plain http.Client would follow redirects with
// the credential, reach private addresses and wait forever: its dialer
// checks every resolved address with CheckAddr at dial time (after DNS, so
// DNS rebinding cannot slip a private address in) unless AllowPrivate, its
// transport has timeouts and ignores proxies from the environment, and Do
// applies the redirect and scrubbing rules. It is safe for concurrent use
// and keeps connections alive across calls.
type Client struct {
	opts      ClientOptions
	transport *http.Transport
	direct    *directTransport // HTTP/1.1 calls, http:// and https:// (see directTLS.takes)

	// scoped holds clones of transport, one per credential scope (see
	// directTransport.scopeOf), for the calls the direct transport does
	// not take (HTTP/2 upstreams, chunked bodies): their kept-alive
	// connections, too, are shared
	// only between calls made with the same value. At most
	// maxScopedTransports; the one evicted closes its idle connections.
	scopedMu sync.Mutex
	scoped   map[string]*http.Transport
}

// maxScopedTransports bounds Client.scoped: the number of credential
// values whose https:// connections are kept apart at once. Past it, a
// scope's transport is dropped and rebuilt on its next call (a new TLS
// handshake, nothing else).
const maxScopedTransports = 512

// NewClient builds a Client; zero options take their defaults. It cannot
// fail.
func NewClient(opts ClientOptions) *Client {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.TLSHandshakeTimeout <= 0 {
		opts.TLSHandshakeTimeout = DefaultTLSHandshakeTimeout
	}
	if opts.ResponseHeaderTimeout <= 0 {
		opts.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	switch {
	case opts.MaxRedirects == 0:
		opts.MaxRedirects = DefaultMaxRedirects
	case opts.MaxRedirects < 0:
		opts.MaxRedirects = 0
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = DefaultMaxResponseBytes
	}
	d := &net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}
	if !opts.AllowPrivate {
		d.Control = dialCheck(opts.AllowLoopbackPorts)
	}
	dial := guardedDial(d, opts.AllowPrivate, opts.AllowLoopbackPorts)
	// One tls.Config for both transports (see directTLS): sessions
	// resume across them and across credential scopes (a session
	// authenticates the server only; its chain is verified again on
	// resumption).
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: opts.RootCAs,
		ClientSessionCache: tls.NewLRUClientSessionCache(directTLSSessions)}
	if !opts.HTTP1Only {
		tlsConfig.NextProtos = []string{"h2", "http/1.1"}
	}
	t := &http.Transport{
		Proxy:                  nil,
		DialContext:            dial,
		ForceAttemptHTTP2:      !opts.HTTP1Only,
		TLSClientConfig:        tlsConfig,
		TLSHandshakeTimeout:    opts.TLSHandshakeTimeout,
		ResponseHeaderTimeout:  opts.ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 1 << 20,
		// Do asks for gzip itself and decodes it in finish, after reading
		// every Content-Encoding line: the transport's own decoding reads
		// only the first line, so "identity" then "gzip" would pass a
		// compressed body through unscrubbed.
		DisableCompression: true,
	}
	if opts.HTTP1Only {
		t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // net/http's documented way to turn HTTP/2 off
	}
	// The Transport writes TLSClientConfig.NextProtos once, on its first
	// use; Clone does that now, so that the direct transport's reads of the
	// shared config never race with it.
	_ = t.Clone()
	direct := newDirectTransport(dial, opts.ResponseHeaderTimeout)
	direct.tls = &directTLS{config: tlsConfig, handshakeTimeout: opts.TLSHandshakeTimeout, http2: !opts.HTTP1Only}
	return &Client{opts: opts, transport: t, direct: direct, scoped: map[string]*http.Transport{}}
}

// dialCheck is the dialer's Control hook: it runs for every address the
// host resolved to, right before connect, so a refusal sends no packet.
// A loopback address passes only on one of loopbackPorts.
func dialCheck(loopbackPorts []uint16) func(_, address string, _ syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: unreadable address", ErrPrivateAddress)
		}
		return CheckDialAddr(ap, loopbackPorts)
	}
}

// CheckDialAddr is CheckAddr for one connection: ap's address must be
// public, except that a loopback address (127.0.0.0/8, ::1, or IPv4
// loopback mapped into IPv6) passes on one of loopbackPorts. Errors wrap
// ErrPrivateAddress.
func CheckDialAddr(ap netip.AddrPort, loopbackPorts []uint16) error {
	if ip := ap.Addr().WithZone("").Unmap(); ip.IsLoopback() {
		for _, p := range loopbackPorts {
			if p == ap.Port() {
				return nil
			}
		}
	}
	return CheckAddr(ap.Addr())
}

// HTTPClient is a plain client on the same egress-safe transport (the
// dial-time address check, timeouts, no proxy from the environment) that
// follows no redirects: for requests that carry no credential value, such
// as OAuth token, discovery and revocation requests and webhook
// deliveries. It cannot fail.
func (c *Client) HTTPClient() *http.Client {
	return &http.Client{Transport: c.transport, Timeout: c.opts.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// CloseIdleConnections closes the kept-alive connections, for shutdown and
// for tests. It cannot fail.
func (c *Client) CloseIdleConnections() {
	c.transport.CloseIdleConnections()
	c.direct.closeIdle()
	c.scopedMu.Lock()
	for _, t := range c.scoped {
		t.CloseIdleConnections()
	}
	c.scopedMu.Unlock()
}

// netTransport is the net/http Transport for req: the clone kept for the
// credential scope of req's context, else the shared one (no scope: a
// call that is not Do's).
func (c *Client) netTransport(req *http.Request) *http.Transport {
	scope, _ := req.Context().Value(scopeCtxKey{}).(string)
	if scope == "" {
		return c.transport
	}
	c.scopedMu.Lock()
	defer c.scopedMu.Unlock()
	if t, ok := c.scoped[scope]; ok {
		return t
	}
	if len(c.scoped) >= maxScopedTransports {
		for k, old := range c.scoped { // any one: map order
			old.CloseIdleConnections()
			delete(c.scoped, k)
			break
		}
	}
	t := c.transport.Clone()
	c.scoped[scope] = t
	return t
}

// roundTrip sends one hop: over the direct transport when it takes the
// request (see directEligible and directTLS.takes), else, and when an
// https:// upstream turns out to choose HTTP/2, over net/http's, with the
// call's context as a context of Go's own (see callCtx); direct reports
// which one sent it.
func (c *Client) roundTrip(req *http.Request) (resp *http.Response, direct bool, err error) {
	if c.direct.tls.takes(req) {
		resp, err = c.direct.RoundTrip(req)
		if err != errUseHTTP2 {
			return resp, true, err
		}
	}
	t := c.netTransport(req)
	if cc, ok := req.Context().(*callCtx); ok {
		req = req.WithContext(cc.realCtx())
	}
	resp, err = t.RoundTrip(req)
	return resp, false, err
}

// Do applies the credential to a copy of req (as Apply does; req itself is
// never changed and never holds the value), sends it, follows redirects and
// returns the response with the value scrubbed from its headers, trailers
// and streamed body. The caller closes resp.Body; until then the call's
// Timeout keeps running. resp.Request is req. req.Body is closed, even on
// errors.
//
// Redirects are followed (at most MaxRedirects, then the last 3xx is
// returned) only to a URL that passes the same scheme and allowed_hosts
// check as the first request, so never from https to http unless base_url
// is http; any other redirect is returned as it is, scrubbed. On a redirect
// to the original host (host and port) the credential is applied again; to
// another allowed host it is removed (the injected header, Authorization,
// cookies and the injected query parameter from the new URL), and the
// redirect is not followed at all when the Location holds the value in any
// view the Scrubber reads (Scrubber.Contains).
// 301, 302 and 303 turn other methods into GET without body; 307 and 308
// resend the body, which needs req.GetBody (without it the 3xx is returned).
//
// The caller's Accept-Encoding is replaced by gzip, which Do decompresses
// (a compressed body cannot be scrubbed);
// Content-Length is removed from the response, whose length scrubbing may
// change, and resp.ContentLength is -1.
//
// Errors (all *credvault.Error; messages name the host, never the value or
// the URL): everything Apply returns; EFORBIDDEN "egress_denied" when the
// dial-time check refuses the address (errors.Is(err, ErrPrivateAddress)
// holds); EUNAVAILABLE "upstream_unreachable" for connection refused, DNS,
// TLS and protocol failures, resets and a canceled context (errors.Is(err,
// context.Canceled) holds); EUNAVAILABLE "upstream_timeout" for any timeout
// or deadline; EUNAVAILABLE "upstream_response_too_large" for a
// Content-Length above MaxResponseBytes (reading past it fails the same
// way); EUNAVAILABLE "upstream_encoding" for a body whose Content-Encoding
// lines are anything but none, "identity" or one "gzip" (see
// contentCoding), which could not be scrubbed. A value shorter than
// credvault.MinSecretValueLen is refused (EINVALID credential_not_usable).
func (c *Client) Do(req *http.Request, cred *credvault.Credential, value credvault.Secret) (*http.Response, error) {
	pc, err := prepare(cred, value)
	if err == nil && (req == nil || req.URL == nil) {
		err = notUsable("the outbound request has no URL", nil)
	}
	if err == nil {
		err = pc.pol.check(req.URL)
	}
	if err != nil {
		closeBody(req)
		return nil, err
	}
	pol, scrub, v := pc.pol, pc.scrub, pc.value
	if len(v) < credvault.MinSecretValueLen {
		closeBody(req)
		return nil, notUsable(fmt.Sprintf("the credential's value is shorter than %d bytes, too short to be scrubbed from responses reliably; rotate it with PATCH /v1/credentials/{id}", credvault.MinSecretValueLen), nil)
	}
	call := &doCall{}
	call.start(req.Context(), c.opts.Timeout, pc.scopeFor(c.direct))
	ctx := context.Context(&call.callCtx)

	// A shallow copy with its own URL, header and trailer: apply changes
	// those, and the caller's request must never hold the value. The
	// header of the first hop comes from outHeaders and goes back there
	// once the hop is done, when the direct transport sent it (it keeps
	// nothing of the request after RoundTrip returns; net/http's Transport
	// may, so a header it sent is left to the collector). The copy lives
	// in call (WithContext is inlined, so its own copy stays on the stack).
	call.req = *req.WithContext(ctx)
	out := &call.req
	call.url = *req.URL
	out.URL = &call.url
	oh := outHeaders.Get().(*outHeader)
	out.Header = oh.base(req.Header)
	out.Trailer = req.Trailer.Clone()
	pol.place(out, v, pc.header)
	for hops := 0; ; hops++ {
		resp, direct, err := c.roundTrip(out)
		if oh != nil && !direct {
			oh = nil // net/http may still hold it
		}
		if err != nil {
			err = classify(ctx, err, out.URL.Host, scrub) // before cancel, which would look like the caller's
			oh.release()
			call.end()
			return nil, err
		}
		if hops >= c.opts.MaxRedirects || !isRedirect(resp.StatusCode) {
			oh.release()
			return c.finish(call, req, out.URL.Host, resp, scrub)
		}
		next := c.redirect(ctx, req, out, resp, pol, hostKey(req.URL), v, scrub)
		oh.release()
		oh = nil
		if next == nil {
			return c.finish(call, req, out.URL.Host, resp, scrub)
		}
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		resp.Body.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
		out = next
	}
}

// doCall is what Do allocates once per call: the call's context, the
// first hop's request and URL, and the response body finish hands out
// with the readers under it (the size cap and, for a single Scrubber, the
// scrubbing reader). It is never reused: the body may outlive Do.
type doCall struct {
	callCtx
	url   url.URL
	req   http.Request
	body  responseBody
	cap   capReader
	scrub scrubReader
}

// baseHeader is the caller's header as every hop starts from it: a copy
// with the caller's Accept-Encoding and Host removed and Accept-Encoding
// set to "gzip" (the one coding finish decodes, so that the body can be
// scrubbed), or to "identity" when the caller asks for a range.
func baseHeader(h http.Header) http.Header {
	var oh outHeader
	return oh.base(h)
}

// outHeader is a reusable outbound header: the map and one array behind
// all of its values.
type outHeader struct {
	h    http.Header
	vals []string
}

// outHeaders recycles Do's outbound headers (see Do).
var outHeaders = sync.Pool{New: func() any { return &outHeader{} }}

// Accept-Encoding values of baseHeader, shared: every use is a slice of
// length and capacity 1, so that an append copies, and nothing in this
// package writes into a header's value slice.
var (
	acceptGzip     = []string{"gzip"}
	acceptIdentity = []string{"identity"}
)

// base fills oh with baseHeader(h) in one pass over h and returns it.
func (oh *outHeader) base(h http.Header) http.Header {
	if oh.h == nil {
		oh.h = make(http.Header, len(h)+1)
	}
	out, vals := oh.h, oh.vals[:0]
	ranged := false
	for k, vv := range h {
		switch {
		case strings.EqualFold(k, "Accept-Encoding"), strings.EqualFold(k, "Host"):
			continue
		case strings.EqualFold(k, "Range"):
			ranged = true
		}
		if vv == nil {
			out[k] = nil
			continue
		}
		i := len(vals)
		vals = append(vals, vv...)
		out[k] = vals[i:len(vals):len(vals)]
	}
	out["Accept-Encoding"] = acceptGzip[:1:1]
	if ranged {
		out["Accept-Encoding"] = acceptIdentity[:1:1]
	}
	oh.vals = vals
	return out
}

// release empties oh and puts it back in outHeaders; a nil oh is left
// alone. Nothing may use the header afterwards.
func (oh *outHeader) release() {
	if oh == nil {
		return
	}
	large := len(oh.h) > 64 || cap(oh.vals) > 256 // read before clear empties the map
	clear(oh.h)
	clear(oh.vals)
	if large {
		return // an unusually large header is not kept
	}
	outHeaders.Put(oh)
}

func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// redirect builds the request for resp's Location, or returns nil when the
// redirect must not be followed (see Do).
func (c *Client) redirect(ctx context.Context, orig, prev *http.Request, resp *http.Response, pol *policy, origHost, v string, scrub responseScrubber) *http.Request {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil
	}
	u, err := prev.URL.Parse(loc)
	if err != nil || pol.check(u) != nil {
		return nil
	}
	u.Fragment, u.RawFragment, u.User = "", "", nil
	next := prev.Clone(ctx)
	next.URL, next.Host = u, ""
	next.Header = baseHeader(orig.Header)
	next.Trailer = nil
	if resp.StatusCode == http.StatusTemporaryRedirect || resp.StatusCode == http.StatusPermanentRedirect {
		if orig.Body != nil && orig.Body != http.NoBody {
			if orig.GetBody == nil {
				return nil
			}
			body, err := orig.GetBody()
			if err != nil {
				return nil
			}
			next.Body = body
		}
	} else {
		if next.Method != http.MethodGet && next.Method != http.MethodHead {
			next.Method = http.MethodGet
		}
		next.Body, next.GetBody, next.ContentLength = nil, nil, 0
		deleteHeader(next.Header, "Content-Type")
		deleteHeader(next.Header, "Content-Length")
		deleteHeader(next.Header, "Content-Encoding")
	}
	if hostKey(u) == origHost {
		pol.apply(next, v)
		return next
	}
	pol.strip(next)
	for _, h := range []string{"Cookie", "Cookie2", "Proxy-Authorization", "Www-Authenticate"} {
		deleteHeader(next.Header, h)
	}
	if scrub.Contains(u.String()) {
		if next.Body != nil {
			next.Body.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
		}
		return nil
	}
	return next
}

// prepared is what Do derives from a credential and its value: the parsed
// placement and allowed_hosts, and the response scrubber. It is immutable
// but for the pool scope it keeps (scopeFor).
type prepared struct {
	pol    *policy
	scrub  responseScrubber
	value  string
	header []string // the header value placed (policy.headerValues)

	scope atomic.Pointer[preparedScope] // the last scopeFor's answer
}

// preparedScope is the pool scope of a prepared value on one transport,
// boxed as the context value it becomes (a string).
type preparedScope struct {
	t     *directTransport
	scope any
}

// scopeFor is t.scopeOf(pc.value), computed once per transport and kept
// (a process has one Client; tests have several, which then recompute).
func (pc *prepared) scopeFor(t *directTransport) any {
	if s := pc.scope.Load(); s != nil && s.t == t {
		return s.scope
	}
	s := &preparedScope{t: t, scope: any(t.scopeOf(pc.value))}
	pc.scope.Store(s)
	return s.scope
}

// prepare returns cred's prepared state: from the credential's Memo when
// the value cache holds it (built on first use, dropped with the cached
// copy on any change to the credential), else built for this call. The
// state is reused only for the very value it was built from. Errors: those
// of newPolicy.
func prepare(cred *credvault.Credential, value credvault.Secret) (*prepared, error) {
	m := cred.Memo()
	v := value.Reveal()
	if pc, ok := m.Outbound().(*prepared); ok && pc.value == v {
		return pc, nil
	}
	pol, err := newPolicy(cred)
	if err != nil {
		return nil, err
	}
	pc := &prepared{pol: pol, scrub: scrubberFor(pol, value), value: v, header: pol.headerValues(v)}
	m.SetOutbound(pc)
	return pc, nil
}

// hostKey names a destination for the same-host test: lower-case host
// without trailing dot, and the port, the scheme's default when absent.
func hostKey(u *url.URL) string {
	name := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	port := u.Port()
	if port == "" {
		port = "443"
		if strings.EqualFold(u.Scheme, "http") {
			port = "80"
		}
	}
	return net.JoinHostPort(name, port)
}

func closeBody(req *http.Request) {
	if req != nil && req.Body != nil {
		req.Body.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
	}
}
