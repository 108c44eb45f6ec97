package httpapi

import "bytes"

// headRefusal is why the framing guard refused a request head: a
// snake_case error code (statusOfHeadCode, in error.go, gives its status)
// and a message that says what to send instead. Messages never echo the
// request's bytes. page is set when the request was for an HTML page
// (pagePaths), which answers with a page rather than JSON.
type headRefusal struct {
	code, message string
	page          bool
}

// refuseFraming refuses a request whose body length cannot be read one way
// only (RFC 9112 section 6).
func refuseFraming(why string) *headRefusal {
	return &headRefusal{code: "invalid_framing", message: "request framing refused: " + why + " (RFC 9112 section 6); send one Content-Length or Transfer-Encoding: chunked"}
}

// refuseHead refuses a request head that is not HTTP/1.1 syntax.
func refuseHead(why string) *headRefusal {
	return &headRefusal{code: "invalid_request_head", message: "request head refused: " + why}
}

// checkRequestHead checks a complete request head: the request line,
// every field line ending with CRLF, then the empty line. It returns the
// length of the body that follows (-1: chunked), or why the head is
// refused:
//   - a request line that is not `method SP request-target SP HTTP/d.d`,
//     a method that is not a token, and a NUL, a bare CR or another
//     control character anywhere in the head (RFC 9112 sections 2.2 and 3,
//     RFC 9110 sections 5.5 and 9.1): invalid_request_head;
//   - a method token the server does not implement (any but GET, HEAD,
//     POST, PUT, PATCH, DELETE, OPTIONS, CONNECT, TRACE; names are
//     case-sensitive): method_not_implemented (501, RFC 9110 section 9.1);
//   - an HTTP major version of 2 or more: http_version_not_supported (505);
//   - no Host in HTTP/1.1, more than one Host, or a Host that is not
//     `uri-host [":" port]` once the spaces around it are removed (RFC 9112
//     section 3.2, RFC 3986 section 3.2), a tab beside it included:
//     invalid_host;
//   - folded lines, whitespace before a colon, several or non-numeric
//     Content-Length, Content-Length with Transfer-Encoding, a
//     Transfer-Encoding whose final coding is not chunked, or chunked twice,
//     or Transfer-Encoding in HTTP/1.0 (RFC 9112 section 6): invalid_framing;
//   - a transfer coding other than chunked before the final chunked:
//     unsupported_transfer_coding (501, RFC 9112 section 6.1);
//   - Transfer-Encoding on more than one line (fasthttp reads one; with
//     chunked accepted, the others held only empty elements):
//     invalid_framing.
//
// An accepted Transfer-Encoding value is left as `chunked` with
// whitespace around it, which is all fasthttp accepts: each comma of an
// empty list element is overwritten with a space in head itself.
//
// Transfer coding names are case-insensitive and list elements are
// separated by commas with optional whitespace, empty elements ignored
// (RFC 9110 sections 5.6.1 and 10.1.4): `Chunked`, `CHUNKED` and
// `chunked` padded with spaces or tabs all mean chunked.
func checkRequestHead(head []byte) (int64, *headRefusal) {
	if bytes.IndexByte(head, 0) >= 0 {
		return 0, refuseHead("it holds a NUL byte (RFC 9110 section 5.5)")
	}
	rest := head[:len(head)-2] // every line, each ending with CRLF
	end := bytes.Index(rest, []byte("\r\n"))
	http10, r := checkRequestLine(rest[:end])
	if r != nil {
		return 0, r
	}
	rest = rest[end+2:]
	var (
		cl       int64 = -1
		nCL      int
		nHost    int
		host     []byte
		codings  [][]byte
		teValue  []byte // the Transfer-Encoding line's value, within head
		nTE      int
		valueErr string
	)
	for len(rest) > 0 {
		end := bytes.Index(rest, []byte("\r\n"))
		l := rest[:end]
		rest = rest[end+2:]
		if r := fieldLineError(l); r != nil {
			return 0, r
		}
		colon := bytes.IndexByte(l, ':')
		name, value := l[:colon], bytes.Trim(l[colon+1:], " \t")
		switch {
		case bytes.EqualFold(name, []byte("Host")):
			// The host checked is the one fasthttp routes on: it strips
			// only spaces around a value, so a tab (OWS to RFC 9110, kept
			// by fasthttp) stays in the host and validHost refuses it, as
			// nginx does.
			nHost++
			host = bytes.Trim(l[colon+1:], " ")
		case bytes.EqualFold(name, []byte("Content-Length")):
			nCL++
			n, ok := decimal(value)
			if !ok {
				valueErr = "Content-Length is not a single decimal number"
			}
			cl = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			nTE++
			teValue = value
			for _, c := range bytes.Split(value, []byte(",")) {
				if c = bytes.Trim(c, " \t"); len(c) > 0 {
					codings = append(codings, c)
				}
			}
		}
	}
	switch {
	case nHost > 1:
		return 0, refuseHostHeader("Host is sent more than once")
	case nHost == 0 && !http10:
		return 0, refuseHostHeader("an HTTP/1.1 request has no Host")
	case nHost == 1 && !validHost(host):
		return 0, refuseHostHeader("Host is not a host name or IP address with an optional port")
	case valueErr != "":
		return 0, refuseFraming(valueErr)
	case nCL > 1:
		return 0, refuseFraming("Content-Length is sent more than once")
	case nCL > 0 && nTE > 0:
		return 0, refuseFraming("both Content-Length and Transfer-Encoding are sent")
	case nTE > 0 && http10:
		return 0, refuseFraming("Transfer-Encoding is not defined for HTTP/1.0")
	case nTE > 0:
		if r := checkTransferCodings(codings); r != nil {
			return 0, r
		}
		if nTE > 1 {
			// fasthttp reads one Transfer-Encoding line; the others
			// could only have held empty list elements here.
			return 0, refuseFraming("Transfer-Encoding is sent on more than one line")
		}
		// The one coding is chunked, among empty list elements that
		// RFC 9110 section 5.6.1 says to ignore; fasthttp accepts only
		// `chunked` with whitespace around it, so each comma becomes a
		// space, in place (the head keeps its length).
		for i, b := range teValue {
			if b == ',' {
				teValue[i] = ' '
			}
		}
		return -1, nil
	case cl > 0:
		return cl, nil
	}
	return 0, nil
}

// checkTransferCodings checks a request's Transfer-Encoding list, every
// line of it in order: chunked must be the final coding, once and without
// parameters (RFC 9112 sections 6.3 and 7); credvault implements no other
// coding, so one before it is 501 (section 6.1).
func checkTransferCodings(codings [][]byte) *headRefusal {
	chunked := []byte("chunked")
	switch {
	case len(codings) == 0:
		return refuseFraming("Transfer-Encoding is empty")
	case !bytes.EqualFold(codings[len(codings)-1], chunked):
		return refuseFraming("the final Transfer-Encoding coding is not chunked (it takes no parameters)")
	}
	for _, c := range codings[:len(codings)-1] {
		if name, _, _ := bytes.Cut(c, []byte(";")); bytes.EqualFold(bytes.TrimRight(name, " \t"), chunked) {
			return refuseFraming("chunked is applied more than once")
		}
	}
	if len(codings) > 1 {
		return &headRefusal{code: "unsupported_transfer_coding", message: "a Transfer-Encoding coding other than chunked is not implemented (RFC 9112 section 6.1); send the body with Transfer-Encoding: chunked alone"}
	}
	return nil
}

func refuseHostHeader(why string) *headRefusal {
	return &headRefusal{code: "invalid_host", message: "request refused: " + why + " (RFC 9112 section 3.2); send exactly one Host, such as Host: api.example.com:8080"}
}

// checkRequestLine checks `method SP request-target SP HTTP-version`
// (RFC 9112 section 3): a token, a target of visible characters, and
// HTTP/1.x. It reports whether the version is HTTP/1.0.
func checkRequestLine(l []byte) (http10 bool, r *headRefusal) {
	sp1 := bytes.IndexByte(l, ' ')
	sp2 := bytes.LastIndexByte(l, ' ')
	if sp1 <= 0 || sp2 <= sp1+1 {
		return false, refuseHead("the request line is not method, request target and HTTP version separated by single spaces (RFC 9112 section 3)")
	}
	if !isToken(l[:sp1]) {
		return false, refuseHead("the method holds a character that is not a token character (RFC 9110 section 9.1)")
	}
	if !implementedMethod(l[:sp1]) {
		return false, &headRefusal{code: "method_not_implemented", message: "credvault implements the methods GET, HEAD, POST, PUT, PATCH, DELETE, " +
			"OPTIONS, CONNECT and TRACE (method names are case-sensitive; an unrecognized method is 501, RFC 9110 section 9.1)"}
	}
	for _, b := range l[sp1+1 : sp2] {
		if b <= ' ' || b == 0x7f {
			return false, refuseHead("the request target holds a space or control character")
		}
	}
	v := l[sp2+1:]
	if len(v) != 8 || string(v[:5]) != "HTTP/" || !isDigit(v[5]) || v[6] != '.' || !isDigit(v[7]) {
		return false, refuseHead("the request line does not end with an HTTP version such as HTTP/1.1 (RFC 9112 section 2.3)")
	}
	if v[5] == '0' {
		// HTTP/0.9 requests carry no version; "HTTP/0.x" is not one (nginx
		// answers 400 too).
		return false, refuseHead("the request line names HTTP/0.x, which does not exist on the wire; send HTTP/1.1")
	}
	if v[5] != '1' {
		return false, &headRefusal{code: "http_version_not_supported", message: "credvault speaks HTTP/1.1 on this listener (RFC 9110 section 15.6.6); send HTTP/1.1"}
	}
	return v[7] == '0', nil
}

// implementedMethod reports whether m is a method the server routes
// (fiber.DefaultMethods; the routes answer 405 with Allow for those they
// do not take). Another token reached the router as Fiber's plain-text
// 400 "Invalid http method".
func implementedMethod(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE":
		return true
	}
	return false
}

// fieldLineError says why a field line (without its CRLF) is not
// `field-name ":" OWS field-value OWS` (RFC 9112 section 5), or nil.
// Folding and whitespace before the colon change where fields end for
// some readers, so they are framing errors.
func fieldLineError(l []byte) *headRefusal {
	if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
		return refuseFraming("a header line is folded (obs-fold)")
	}
	colon := bytes.IndexByte(l, ':')
	if colon <= 0 {
		return refuseFraming("a header line has no field name and colon")
	}
	if n := l[colon-1]; n == ' ' || n == '\t' {
		return refuseFraming("a header field name is followed by whitespace before the colon")
	}
	if !isToken(l[:colon]) {
		return refuseHead("a header field name holds a character that is not a token character (RFC 9110 section 5.1)")
	}
	for _, b := range l[colon+1:] {
		if byteClass[b]&classValue != 0 {
			continue
		}
		switch {
		case b == '\r':
			return refuseHead("a header field value holds a bare CR (RFC 9112 section 2.2)")
		case b == 0:
			return refuseHead("a header field value holds a NUL byte (RFC 9110 section 5.5)")
		case b < ' ' && b != '\t' || b == 0x7f:
			return refuseHead("a header field value holds a control character (RFC 9110 section 5.5)")
		}
	}
	return nil
}

// validHost reports whether v is `uri-host [":" port]` (RFC 9110 section
// 7.2, RFC 3986 section 3.2.2): an IP literal in brackets, or a reg-name of
// unreserved characters and sub-delims, then optionally a colon and
// decimal digits. Percent escapes, which RFC 3986 allows in a reg-name,
// are refused: no DNS name needs one (IDNA names are ASCII), and fasthttp
// decodes them into the request URI, where they change routing.
func validHost(v []byte) bool {
	host, port := v, []byte(nil)
	if len(v) > 0 && v[0] == '[' {
		end := bytes.IndexByte(v, ']')
		if end < 0 {
			return false
		}
		host, port = v[1:end], v[end+1:]
		for _, b := range host {
			if !(isHex(b) || b == ':' || b == '.' || b == 'v' || b == 'V') {
				return false
			}
		}
		if len(host) == 0 {
			return false
		}
	} else {
		if i := bytes.LastIndexByte(v, ':'); i >= 0 {
			host, port = v[:i], v[i:]
		}
		if len(host) == 0 {
			return false
		}
		for _, b := range host {
			if byteClass[b]&classRegName == 0 {
				return false
			}
		}
	}
	if len(port) == 0 {
		return true
	}
	if port[0] != ':' || len(port) > 6 {
		return false
	}
	for _, b := range port[1:] {
		if !isDigit(b) {
			return false
		}
	}
	return true
}

// decimal reads a Content-Length value: 1 to 18 decimal digits, no sign
// or other character (RFC 9110 section 8.6).
func decimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// isToken reports whether b is a non-empty token (RFC 9110 section 5.6.2).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if byteClass[c]&classToken == 0 {
			return false
		}
	}
	return true
}

// Byte classes of the head check, one table lookup per byte.
const (
	classToken   = 1 << iota // tchar (RFC 9110 section 5.6.2)
	classRegName             // unreserved or sub-delims (RFC 3986 section 2)
	classValue               // field-vchar, SP or HTAB (RFC 9110 section 5.5)
)

var byteClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		alnum := b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || isDigit(b)
		if alnum || bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), b) >= 0 {
			t[c] |= classToken
		}
		if alnum || bytes.IndexByte([]byte("-._~!$&'()*+,;="), b) >= 0 {
			t[c] |= classRegName
		}
		if b == '\t' || b >= ' ' && b != 0x7f {
			t[c] |= classValue
		}
	}
	return t
}()

func isDigit(b byte) bool { return b >= '0' && b <= '9' }
func isHex(b byte) bool   { return hexVal(b) >= 0 }
