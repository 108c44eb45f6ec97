package injector

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// directTLSSessions is the capacity of the TLS session cache shared by the
// direct transport and the net/http Transport (one entry per server name;
// Go's tls keys sessions by ServerName).
const directTLSSessions = 1024

// directMaxH2Addrs bounds directTLS.h2: past it the set starts again
// empty, and each upstream is tried again once (one handshake each).
const directMaxH2Addrs = 4096

// errUseHTTP2 is the direct transport's answer for an https:// upstream
// that chose HTTP/2 in ALPN while HTTP/2 is allowed: nothing has been sent,
// and Client.roundTrip sends the request over net/http's Transport, which
// speaks HTTP/2.
var errUseHTTP2 = errors.New("injector: the upstream speaks HTTP/2; sent over net/http")

// directTLS is the TLS side of the direct transport: https:// upstreams
// over HTTP/1.1 in the caller's goroutine, like plain http ones. The TCP
// connection comes from the same egress-checked dial function; the TLS
// settings are the net/http Transport's own tls.Config (the same pointer:
// RootCAs with CREDVAULT_UPSTREAM_CA_FILE, MinVersion TLS 1.2, and the
// ClientSessionCache that resumes sessions on new connections), cloned per
// connection with ServerName set to the URL's host without port.
//
// With HTTP/2 allowed (ClientOptions.HTTP1Only false,
// CREDVAULT_UPSTREAM_HTTP2=true, the default), a new connection offers
// "h2" and "http/1.1" in ALPN; an upstream that picks h2 gets its calls
// over net/http's Transport from then on (its URL host is remembered in
// h2, the connection that found it is closed unused). With HTTP/1.1 only, the
// direct transport offers "http/1.1" alone and takes every https:// call.
type directTLS struct {
	config           *tls.Config // shared with the net/http Transport; read only after NewClient
	handshakeTimeout time.Duration
	http2            bool

	// h2 holds the URL hosts (host or host:port, as in the URL) of the
	// upstreams that chose h2: a map never changed once stored, replaced
	// whole under mu when one is added, so that takes reads it without a
	// lock.
	mu sync.Mutex
	h2 atomic.Pointer[map[string]struct{}]
}

// takes reports whether the direct transport sends req (directEligible
// and, for https://, an upstream not known to speak HTTP/2 and an ASCII
// host name: net/http converts international names for SNI, this path
// does not).
func (d *directTLS) takes(req *http.Request) bool {
	if !directEligible(req) {
		return false
	}
	if req.URL.Scheme != "https" {
		return true
	}
	host := req.URL.Hostname()
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return false
		}
	}
	if !d.http2 {
		return true
	}
	if known := d.h2.Load(); known != nil {
		_, h2 := (*known)[req.URL.Host]
		return !h2
	}
	return true
}

// chose2 remembers that the upstream at host (a URL's Host) chose h2.
func (d *directTLS) chose2(host string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	next := map[string]struct{}{host: {}}
	if old := d.h2.Load(); old != nil && len(*old) < directMaxH2Addrs {
		for k := range *old {
			next[k] = struct{}{}
		}
	}
	d.h2.Store(&next)
}

// dial opens a connection to addr for u's scheme with dial (the Client's
// egress-checked dialer): plain TCP for http, TLS over it for https, the
// handshake bounded by the call's context and TLSHandshakeTimeout. netConn
// is the TCP connection under conn, for the idle check. Errors: dial's,
// the handshake's (certificate errors as crypto/tls returns them, a
// timeout as context.DeadlineExceeded) and errUseHTTP2.
func (d *directTLS) dial(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), u *url.URL, addr string) (conn, netConn net.Conn, err error) {
	raw, err := dial(ctx, "tcp", addr)
	if err != nil || u.Scheme != "https" {
		return raw, raw, err
	}
	cfg := d.config.Clone()
	cfg.ServerName = u.Hostname()
	cfg.NextProtos = []string{"http/1.1"}
	if d.http2 {
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	hctx, cancel := context.WithTimeout(ctx, d.handshakeTimeout)
	defer cancel()
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close() // #nosec G104 -- the handshake failed; its error is returned
		return nil, nil, fmt.Errorf("TLS handshake: %w", err)
	}
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		d.chose2(u.Host)
		tc.Close() // #nosec G104 -- unused; net/http dials its own
		return nil, nil, errUseHTTP2
	}
	return tc, raw, nil
}
