package injector

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"credvault/internal/credvault"
)

// finish turns the upstream's response into what Do returns: size and
// encoding checked, headers scrubbed, body capped, scrubbed and tied to the
// call's context. It owns call from here on: it ends call on a failure,
// else the returned body's Close does.
func (c *Client) finish(call *doCall, req *http.Request, host string, resp *http.Response, scrub responseScrubber) (*http.Response, error) {
	fail := func(err error) (*http.Response, error) {
		resp.Body.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
		call.end()
		return nil, err
	}
	if resp.ContentLength > c.opts.MaxResponseBytes {
		return fail(tooLarge(host, c.opts.MaxResponseBytes))
	}
	body := resp.Body
	coding, ok := contentCoding(resp.Header["Content-Encoding"])
	switch {
	case req.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified:
		// No body follows, so there is nothing to decode or scrub.
	case !ok:
		return fail(&credvault.Error{
			Code: credvault.EUNAVAILABLE, Reason: "upstream_encoding",
			Message: fmt.Sprintf("upstream %s answered in a Content-Encoding credvault cannot fully decode, so it could not be scrubbed; only one gzip coding (or none) is accepted", quoteHost(host)),
		})
	case coding == "gzip":
		body = &gzipBody{r: body}
		resp.Header.Del("Content-Encoding")
		resp.Uncompressed = true
	default:
		resp.Header.Del("Content-Encoding") // a lone "identity"
	}
	declared := resp.ContentLength
	resp.Header.Del("Content-Length") // before scrubbing: nothing to read in a field that goes
	scrub.Header(resp.Header)
	resp.Status = scrub.String(resp.Status) // the reason phrase is the upstream's text
	resp.ContentLength = -1
	resp.Request = req
	// The readers live in call, which Do allocated anyway.
	call.cap = capReader{r: body, left: c.opts.MaxResponseBytes, max: c.opts.MaxResponseBytes, host: host}
	var r io.ReadCloser
	if s, ok := scrub.(*Scrubber); ok {
		r = s.readerIn(&call.scrub, &call.cap)
	} else {
		r = scrub.Reader(&call.cap)
	}
	call.body = responseBody{
		r:      r,
		call:   &call.callCtx,
		host:   host,
		scrub:  scrub,
		resp:   resp,
		length: declared,
	}
	resp.Body = &call.body
	return resp, nil
}

// contentCoding reads every Content-Encoding field line (RFC 9110 section
// 8.4: a list, possibly split over several lines) and returns the one
// coding to undo: "" for none (no header, or only "identity") or "gzip".
// ok is false for anything else: an unknown coding, or more than one
// coding (nested, or the same header twice, such as "identity" then
// "gzip"), since a body credvault does not fully decode cannot be scrubbed.
func contentCoding(lines []string) (coding string, ok bool) {
	n := 0
	for _, line := range lines {
		for _, c := range strings.Split(line, ",") {
			c = strings.TrimSpace(c)
			if c == "" {
				continue
			}
			n++
			switch {
			case strings.EqualFold(c, "identity"):
				coding = "identity"
			case strings.EqualFold(c, "gzip") || strings.EqualFold(c, "x-gzip"):
				coding = "gzip"
			default:
				return "", false
			}
		}
	}
	if n > 1 {
		return "", false
	}
	if coding == "identity" {
		coding = ""
	}
	return coding, true
}

func tooLarge(host string, max int64) *credvault.Error {
	return &credvault.Error{
		Code: credvault.EUNAVAILABLE, Reason: "upstream_response_too_large",
		Message: fmt.Sprintf("the response of upstream %s is larger than %d bytes", quoteHost(host), max),
	}
}

// responseBody is the body Do hands out: read errors become
// *credvault.Error, the trailers are scrubbed once the body is read, and
// Close releases the call's context.
type responseBody struct {
	r      io.ReadCloser
	call   *callCtx // the call's context; Close ends it
	host   string
	scrub  responseScrubber
	resp   *http.Response
	length int64
	done   bool
}

// UpstreamLength reports the body length the upstream declared on the wire
// (Content-Length, before decompression and scrubbing), or -1 when it
// declared none or the transport decompressed the body. The proxy reads a
// body of declared length at most its buffering bound to the end before
// answering: all of it is already on its way.
func (b *responseBody) UpstreamLength() int64 { return b.length }

func (b *responseBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	switch {
	case err == nil:
	case err == io.EOF:
		if !b.done {
			b.done = true
			b.scrub.Header(b.resp.Trailer)
		}
	default:
		var ce *credvault.Error
		if !errors.As(err, &ce) {
			err = classify(b.call, err, b.host, b.scrub)
		}
	}
	return n, err
}

func (b *responseBody) Close() error {
	err := b.r.Close()
	b.call.end()
	return err
}

// capReader fails once more than max bytes arrive, so that an upstream
// cannot make credvault buffer or relay an unbounded body.
type capReader struct {
	r         io.ReadCloser
	left, max int64
	host      string
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, tooLarge(c.host, c.max)
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return 0, tooLarge(c.host, c.max)
	}
	return n, err
}

func (c *capReader) Close() error { return c.r.Close() }

// gzipBody decompresses a gzip body the transport did not decompress itself
// (an upstream that compressed without being asked). The gzip header is read
// lazily, on the first Read, so that finish does not block on the upstream.
// A decompressed body that is itself a gzip stream (gzip nested in gzip
// under one Content-Encoding) is refused as nested codings are: its inside
// could not be scrubbed.
type gzipBody struct {
	r    io.ReadCloser
	zr   *gzip.Reader
	head []byte // the first decompressed bytes, read to check for nesting
}

func (g *gzipBody) Read(p []byte) (int, error) {
	if g.zr == nil {
		zr, err := gzip.NewReader(g.r)
		if err != nil {
			return 0, err
		}
		g.zr = zr
		var magic [3]byte
		n, err := io.ReadFull(zr, magic[:])
		if n == 3 && magic == [3]byte{0x1f, 0x8b, 8} {
			return 0, &credvault.Error{Code: credvault.EUNAVAILABLE, Reason: "upstream_encoding", Err: ErrUnscrubbable,
				Message: "the upstream's gzip body holds another gzip stream (nested codings), which credvault cannot scrub"}
		}
		g.head = magic[:n]
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return 0, err
		}
	}
	if len(g.head) > 0 {
		n := copy(p, g.head)
		g.head = g.head[n:]
		return n, nil
	}
	return g.zr.Read(p)
}

func (g *gzipBody) Close() error { return g.r.Close() }

// classify turns a transport failure into the error Do returns. The cause
// is kept for errors.Is and the log, with its text scrubbed; the message
// names only the host.
func classify(ctx context.Context, err error, host string, scrub responseScrubber) error {
	cause := &causeError{text: scrub.String(err.Error()), err: err}
	h := quoteHost(host)
	var ne net.Error
	switch {
	case errors.Is(err, ErrPrivateAddress):
		return &credvault.Error{Code: credvault.EFORBIDDEN, Reason: "egress_denied", Err: cause,
			Message: fmt.Sprintf("upstream %s is at an address that is not public (private, loopback, link-local or metadata); credvault does not send credentials there", h)}
	case errors.Is(ctx.Err(), context.Canceled):
		// The caller went away (the transport's own error may not say so).
		if !errors.Is(err, context.Canceled) {
			cause.err = errors.Join(err, context.Canceled)
		}
		return &credvault.Error{Code: credvault.EUNAVAILABLE, Reason: "upstream_unreachable", Err: cause,
			Message: fmt.Sprintf("the call to upstream %s was canceled", h)}
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		// The transport's timeouts (dial, TLS, response headers) and the
		// call's deadline.
		return &credvault.Error{Code: credvault.EUNAVAILABLE, Reason: "upstream_timeout", Err: cause,
			Message: fmt.Sprintf("upstream %s did not answer in time", h)}
	case errors.Is(err, context.Canceled):
		return &credvault.Error{Code: credvault.EUNAVAILABLE, Reason: "upstream_unreachable", Err: cause,
			Message: fmt.Sprintf("the call to upstream %s was canceled", h)}
	}
	return &credvault.Error{Code: credvault.EUNAVAILABLE, Reason: "upstream_unreachable", Err: cause,
		Message: fmt.Sprintf("upstream %s could not be reached", h)}
}

// causeError keeps a transport error for errors.Is and errors.As while
// showing a text with the credential value scrubbed out.
type causeError struct {
	text string
	err  error
}

func (e *causeError) Error() string { return e.text }
func (e *causeError) Unwrap() error { return e.err }
