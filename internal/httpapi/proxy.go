package httpapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
	"golang.org/x/net/http/httpguts"

	"credvault/internal/credvault"
)

// Headers a proxied call never forwards: hop-by-hop headers (RFC 9110
// 7.6.1), the ones the client sets itself, and credvault's own.
var dropRequestHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Host": true, "Content-Length": true, "Accept-Encoding": true,
}

var dropResponseHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authenticate": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Content-Length": true,
}

const proxyPrefix = "/v1/proxy/"

// proxyMethods are the methods the proxy forwards (not CONNECT or TRACE).
var proxyMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

// actingContext switches to the acting user a service key names.
func (s *Server) actingContext(c *fiber.Ctx) error {
	if acting := strings.TrimSpace(c.Get("X-Credvault-Acting-User")); acting != "" {
		ctx, err := s.cfg.Services.Users.ActAs(c.UserContext(), strings.Clone(acting))
		if err != nil {
			return err
		}
		c.SetUserContext(ctx)
	}
	return nil
}

func useMeta(c *fiber.Ctx) credvault.UseMeta {
	return credvault.UseMeta{
		WorkflowID: cleanLabel(c.Get("X-Credvault-Workflow-Id")),
		NodeID:     cleanLabel(c.Get("X-Credvault-Node-Id")),
	}
}

// cleanLabel makes a caller's label safe to store: valid UTF-8, no control
// characters, at most 200 bytes cut on a character boundary, and copied out
// of Fiber's reused buffer.
func cleanLabel(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return strings.Clone(s)
}

// outboundRequest builds the upstream request from the caller's: method,
// path after /v1/proxy/{id}, raw query, body and end-to-end headers, minus
// hop-by-hop headers, the caller's credvault key headers and every
// X-Credvault-* header. It returns the request and the credential id
// (pathID's). To keep the per-call allocations few, the id, the path, the
// query, the kept header names and values and the body share one
// immutable string, and the request, its URL and the first header values
// one proxyRequest.
func (s *Server) outboundRequest(c *fiber.Ctx) (*http.Request, string, error) {
	rawID := c.Params("id") // Fiber's buffer: copied below
	uri := c.Request().URI()
	path := uri.PathOriginal()
	if len(path) >= len(proxyPrefix)+len(rawID) && string(path[:len(proxyPrefix)]) == proxyPrefix && string(path[len(proxyPrefix):len(proxyPrefix)+len(rawID)]) == rawID {
		path = path[len(proxyPrefix)+len(rawID):]
	}
	query, body := uri.QueryString(), c.Body()
	// The kept headers, as Fasthttp's slices (valid during the handler),
	// collected in one pass; past len(keptArr) the slice grows on the heap.
	var keptArr [16]keptHeader
	kept, size := keptArr[:0], 0
	for k, v := range c.Request().Header.All() {
		if s.forwardHeader(k) {
			kept = append(kept, keptHeader{k, v})
			size += len(k) + len(v)
		}
	}
	var buf strings.Builder // String hands its bytes over without a copy
	buf.Grow(len(rawID) + len(path) + len(query) + len(body) + size)
	buf.WriteString(rawID)
	buf.Write(path)
	buf.Write(query)
	buf.Write(body)
	for _, kv := range kept {
		buf.Write(kv.name)
		buf.Write(kv.value)
	}
	all := buf.String()
	id, all := all[:len(rawID)], all[len(rawID):]
	rest, all := all[:len(path)], all[len(path):]
	rawQuery, all := all[:len(query)], all[len(query):]
	bodyText, all := all[:len(body)], all[len(body):]

	if err := credvault.CheckProxyPath(rest); err != nil {
		return nil, id, err
	}
	p, err := url.PathUnescape(rest)
	if err != nil {
		return nil, id, credvault.Errorf(credvault.EINVALID, "the path after /v1/proxy/{credential_id} is not a valid URL path")
	}
	method := c.Method()
	// A method is a token (RFC 9110 section 9.1), as is a field name:
	// what http.NewRequest requires.
	if !httpguts.ValidHeaderFieldName(method) {
		return nil, id, credvault.Errorf(credvault.EINVALID, "method %q is not valid", method)
	}
	pr := &proxyRequest{}
	rel := &pr.url
	rel.RawQuery = rawQuery
	rel.Path = p
	if rest != rel.EscapedPath() {
		rel.RawPath = rest
	}
	// What http.NewRequestWithContext(ctx, method, "/", http.NoBody)
	// gives, with the URL above; WithContext is inlined, so that its copy
	// stays on the stack and only pr is allocated.
	pr.req = *(&http.Request{
		Method: method, URL: rel, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: proxyHeaders.Get().(http.Header), Body: http.NoBody,
	}).WithContext(c.UserContext())
	req := &pr.req
	if len(bodyText) > 0 {
		pr.body.Reader.Reset(bodyText)
		req.Body = &pr.body
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(bodyText)), nil }
	}
	copyRequestHeaders(req.Header, kept, all, pr.vals[:])
	if conn := c.Get(fiber.HeaderConnection); conn != "" {
		for h := range strings.SplitSeq(conn, ",") {
			req.Header.Del(strings.TrimSpace(h))
		}
	}
	req.ContentLength = int64(len(bodyText))
	return req, id, nil
}

// proxyHeaders recycles the header maps of outboundRequest's requests.
// The injector reads a request's header only while Forward runs: Do
// copies it into the header it sends (and Clone copies it for a retry or
// a redirect), and nothing it returns or keeps refers to the map. So once
// Forward has returned, proxyVia takes the map out of the request
// (releaseHeader) and no request, response or body reaches it any more
// (TestProxyHeaderPool).
var proxyHeaders = sync.Pool{New: func() any { return make(http.Header, 8) }}

// maxPooledHeader keeps a map that grew on an unusually long header out of
// proxyHeaders.
const maxPooledHeader = 32

// releaseHeader takes req's header map (outboundRequest's, from
// proxyHeaders) out of req, empties it and puts it back in proxyHeaders.
// Nothing may use req's header afterwards.
func releaseHeader(req *http.Request) {
	h := req.Header
	req.Header = nil
	if len(h) > maxPooledHeader {
		return
	}
	clear(h)
	proxyHeaders.Put(h)
}

// proxyRequest is outboundRequest's request, with its URL, its body reader
// and the backing of its first header values, in one allocation.
type proxyRequest struct {
	req  http.Request
	url  url.URL
	body proxyBody
	vals [4]string
}

// proxyBody is the request body outboundRequest sends: the caller's body,
// copied.
type proxyBody struct{ strings.Reader }

func (*proxyBody) Close() error { return nil }

// keptHeader is a caller's header that goes to the upstream, as Fasthttp
// holds it.
type keptHeader struct{ name, value []byte }

// copyRequestHeaders adds the kept headers to h: their names and values
// are all, one after the other in order. Their value slices are cut from
// inline when it holds them all, else from one new array.
func copyRequestHeaders(h http.Header, kept []keptHeader, all string, inline []string) {
	vals := inline
	if len(kept) > len(inline) {
		vals = make([]string, len(kept))
	}
	i, off := 0, 0
	for _, kv := range kept {
		name := all[off : off+len(kv.name)]
		value := all[off+len(kv.name) : off+len(kv.name)+len(kv.value)]
		off += len(kv.name) + len(kv.value)
		name = http.CanonicalHeaderKey(name) // no copy when already canonical, as fasthttp keeps it
		if old, ok := h[name]; ok {
			h[name] = append(old, value)
			continue
		}
		vals[i] = value
		h[name] = vals[i : i+1 : i+1]
		i++
	}
}

// forwardHeader reports whether the caller's header named k goes to the
// upstream: not hop-by-hop, not a key header, not X-Credvault-*.
func (s *Server) forwardHeader(k []byte) bool {
	if !isCanonicalHeader(k) {
		return s.forwardHeaderName(http.CanonicalHeaderKey(string(k)))
	}
	return !dropRequestHeaders[string(k)] && !s.authHeaderSet[string(k)] && !bytes.HasPrefix(k, []byte("X-Credvault-"))
}

func (s *Server) forwardHeaderName(name string) bool {
	return !dropRequestHeaders[name] && !s.authHeaderSet[name] && !strings.HasPrefix(name, "X-Credvault-")
}

// isCanonicalHeader reports whether k is already in the form
// http.CanonicalHeaderKey gives (upper case after the start and each '-',
// lower case elsewhere), as fasthttp normally keeps names.
func isCanonicalHeader(k []byte) bool {
	upper := true
	for _, b := range k {
		switch {
		case upper && 'a' <= b && b <= 'z', !upper && 'A' <= b && b <= 'Z':
			return false
		case b == ' ' || b >= 0x80:
			return false // CanonicalHeaderKey leaves such names alone; take the slow path
		}
		upper = b == '-'
	}
	return true
}

// handleProxy is ANY /v1/proxy/{credential_id}/{path…}: the caller's call,
// sent to the credential's base_url with the credential attached, the
// response streamed back with the value scrubbed out.
func (s *Server) handleProxy(c *fiber.Ctx) error {
	return s.proxyVia(c, s.cfg.Services.Proxy.Forward)
}

// forwardFunc is credvault.ProxyService.Forward.
type forwardFunc func(ctx context.Context, credentialID string, req *http.Request, target string, meta credvault.UseMeta) (*http.Response, error)

// proxyVia is handleProxy with the call forwarded by forward.
func (s *Server) proxyVia(c *fiber.Ctx, forward forwardFunc) error {
	if err := s.actingContext(c); err != nil {
		return err
	}
	req, id, err := s.outboundRequest(c)
	if err != nil {
		return err
	}
	resp, err := forward(c.UserContext(), id, req, strings.Clone(c.Get("X-Credvault-Target")), useMeta(c))
	releaseHeader(req)
	if err != nil {
		return err
	}
	if c.Method() != http.MethodHead {
		if err := bufferSmallBody(c.Response(), resp.Body); err != nil {
			return err
		}
	} else {
		// No body goes back; release the upstream connection now.
		resp.Body.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
	}
	c.Status(resp.StatusCode)
	// The upstream's own rate-limit headers win over credvault's for the
	// caller's key: two sets would be ambiguous.
	for _, h := range upstreamRateLimitHeaders {
		if _, ok := resp.Header[h]; ok {
			for _, mine := range ownRateLimitHeaders {
				c.Response().Header.Del(mine)
			}
			break
		}
	}
	for k, vs := range resp.Header {
		if dropResponseHeaders[k] {
			continue
		}
		for _, v := range vs {
			c.Response().Header.Add(k, v)
		}
	}
	return nil
}

var (
	upstreamRateLimitHeaders = []string{"Ratelimit-Limit", "Ratelimit-Remaining", "Ratelimit-Reset", "Retry-After"}
	ownRateLimitHeaders      = []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"}
)

// maxBufferedBody is the largest (scrubbed) response body the proxy holds
// in memory to send it in one write with Content-Length; the rest of a
// larger body streams (chunked).
const maxBufferedBody = 64 << 10

// proxyReadBuf recycles the buffers bufferSmallBody reads through.
var proxyReadBuf = sync.Pool{New: func() any {
	b := make([]byte, 16<<10)
	return &b
}}

// declaredLength is implemented by the injector's response bodies: the
// length the upstream declared on the wire (Content-Length, before
// decompression and scrubbing), or -1.
type declaredLength interface{ UpstreamLength() int64 }

// bufferSmallBody sets the scrubbed upstream body as dst's body. When the
// upstream declared a length of at most maxBufferedBody — so that reading
// it to the end waits for nothing but bytes already on their way — it is
// read (scrubbed) into memory: a body that ends within maxBufferedBody goes
// out in one write with its Content-Length, a longer one (decompression
// can grow it) streams on from where reading stopped. A body of unknown
// length (chunked, server-sent events, decompressed by the transport)
// streams from the start, so that what the upstream sends as it comes is
// relayed as it comes. body is closed once read (fasthttp closes a
// stream once sent); on a read error it is closed, dst keeps no body, and
// the error (a *credvault.Error from the injector) is returned.
func bufferSmallBody(dst *fasthttp.Response, body io.ReadCloser) error {
	dl, ok := body.(declaredLength)
	if ok {
		n := dl.UpstreamLength()
		ok = n >= 0 && n <= maxBufferedBody
	}
	if !ok {
		dst.SetBodyStream(body, -1)
		return nil
	}
	bp := proxyReadBuf.Get().(*[]byte)
	defer proxyReadBuf.Put(bp)
	buf := *bp
	total := 0
	for {
		n, err := body.Read(buf)
		dst.AppendBody(buf[:n])
		total += n
		switch {
		case err == io.EOF:
			body.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
			return nil
		case err != nil:
			body.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
			dst.ResetBody()
			return err
		case total > maxBufferedBody:
			head := bytes.Clone(dst.Body())
			dst.SetBodyStream(&prefixedBody{Reader: io.MultiReader(bytes.NewReader(head), body), body: body}, -1)
			return nil
		}
	}
}

// prefixedBody is what was already read of a body, then the rest of it;
// Close closes the body.
type prefixedBody struct {
	io.Reader
	body io.Closer
}

func (p *prefixedBody) Close() error { return p.body.Close() }

type injectRequest struct {
	CredentialID string `json:"credential_id" validate:"required,uuid"`
	WorkflowID   string `json:"workflow_id" validate:"max=200"`
	NodeID       string `json:"node_id" validate:"max=200"`
	// ActingUser may stand in for the X-Credvault-Acting-User header.
	ActingUser string `json:"acting_user" validate:"omitempty,uuid"`
	Request    struct {
		Method  string              `json:"method" validate:"omitempty,oneof=GET HEAD POST PUT PATCH DELETE OPTIONS"`
		URL     string              `json:"url" validate:"required,max=8192"`
		Headers map[string][]string `json:"headers"`
		Query   map[string][]string `json:"query"`
	} `json:"request"`
}

// handleInject is POST /v1/inject: the request with the credential
// applied, for runners (service keys with credentials:resolve) acting for
// a user who may use the credential; every attempt is audited.
func (s *Server) handleInject(c *fiber.Ctx) error {
	var in injectRequest
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	acting := strings.TrimSpace(c.Get("X-Credvault-Acting-User"))
	if acting != "" && in.ActingUser != "" && acting != in.ActingUser {
		return credvault.Errorf(credvault.EINVALID, "field \"acting_user\" and header X-Credvault-Acting-User name different users; send one")
	}
	if acting == "" {
		acting = in.ActingUser
	}
	res, err := s.cfg.Services.Proxy.Resolve(c.UserContext(), credvault.ResolveInput{
		CredentialID: in.CredentialID, ActingUser: strings.Clone(acting),
		Method: in.Request.Method, URL: in.Request.URL, Headers: in.Request.Headers, Query: in.Request.Query,
		Meta: credvault.UseMeta{WorkflowID: in.WorkflowID, NodeID: in.NodeID},
	})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{"request": res})
}

// handleCredentialTest is POST /v1/credentials/{id}/test.
func (s *Server) handleCredentialTest(c *fiber.Ctx) error {
	if err := s.actingContext(c); err != nil {
		return err
	}
	res, err := s.cfg.Services.Proxy.Test(c.UserContext(), pathID(c))
	if err != nil {
		return err
	}
	return c.JSON(res)
}
