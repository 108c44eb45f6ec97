package injector

import (
	"bufio"
	"errors"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"slices"

	"golang.org/x/net/http/httpguts"
)

// defaultUserAgent is what net/http's Request.Write sends when the header
// has no User-Agent (net/http's defaultUserAgent, unexported).
const defaultUserAgent = "Go-http-client/1.1"

// errCTLInURL is Request.Write's error for a control byte in the request
// target, with net/http's text.
var errCTLInURL = errors.New("net/http: can't write control character in Request.URL")

// writeRequest writes req to bw as net/http's Request.Write does, byte for
// byte. A request without a body, without Close, not a CONNECT (whose
// target Request.Write may make the host), with an ASCII host (no
// zone) and a URL without Opaque, and no httptrace hooks — every proxied GET
// — has its head written straight into bw (request line, Host,
// User-Agent, Content-Length for POST, PUT and PATCH, the other header
// fields sorted by name, values trimmed): no fmt, no header sorter, no
// transfer writer, no allocation. Every other request goes to
// Request.Write itself. The caller has run validRequest (valid method,
// header names and values: no CR or LF, which Request.Write would turn into
// spaces and this path would not), as both paths assume. The request is not
// flushed. Errors: Request.Write's; a control byte in the request target
// is refused with Request.Write's error before anything is written.
func writeRequest(bw *bufio.Writer, req *http.Request) error {
	host, ok := fastHead(req)
	if !ok {
		return req.Write(bw)
	}
	u := req.URL
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if hasCTL(path) || hasCTL(u.RawQuery) {
		return errCTLInURL
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	bw.WriteString(method)
	bw.WriteByte(' ')
	bw.WriteString(path)
	if u.ForceQuery || u.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(u.RawQuery)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	ua := defaultUserAgent
	if vv, has := req.Header["User-Agent"]; has {
		ua = ""
		if len(vv) > 0 {
			ua = textproto.TrimString(vv[0])
		}
	}
	if ua != "" {
		writeField(bw, "User-Agent", ua)
	}
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		bw.WriteString("Content-Length: 0\r\n") // as net/http: many servers expect one
	}
	var stack [32]string
	keys := stack[:0]
	for k := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue // net/http's reqWriteExcludeHeader
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !httpguts.ValidHeaderFieldName(k) {
			continue // as Header.writeSubset
		}
		for _, v := range req.Header[k] {
			writeField(bw, k, textproto.TrimString(v))
		}
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// fastHead reports whether writeRequest may write req's head itself (see
// there), and the Host it sends.
func fastHead(req *http.Request) (string, bool) {
	if (req.Body != nil && req.Body != http.NoBody) || (req.Body == nil && req.ContentLength != 0) ||
		req.Close || req.URL == nil || req.URL.Opaque != "" || len(req.TransferEncoding) > 0 ||
		req.Method == http.MethodConnect { // Request.Write's target for CONNECT may be the host
		return "", false
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	// Request.Write would punycode a non-ASCII host, drop an invalid one
	// and remove an IPv6 zone; leave those to it.
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 || host[i] == '%' {
			return "", false
		}
	}
	if host == "" || !httpguts.ValidHostHeader(host) {
		return "", false
	}
	if httptrace.ContextClientTrace(req.Context()) != nil {
		return "", false
	}
	return host, true
}

func writeField(bw *bufio.Writer, name, value string) {
	bw.WriteString(name)
	bw.WriteString(": ")
	bw.WriteString(value)
	bw.WriteString("\r\n")
}

// hasCTL is net/http's stringContainsCTLByte: a byte below space or DEL.
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < ' ' || b == 0x7f {
			return true
		}
	}
	return false
}
