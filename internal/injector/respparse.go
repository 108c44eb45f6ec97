package injector

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"

	"golang.org/x/net/http/httpguts"
)

// readResponse is http.ReadResponse with a fast path for the common
// response head (see fastResponse): when the head is one of those, it
// builds the *http.Response net/http would, with fewer allocations;
// otherwise the reader is left untouched and net/http parses it.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	if resp := fastResponse(br, req); resp != nil {
		return resp, nil
	}
	return http.ReadResponse(br, req)
}

// fastMaxFields bounds the header lines the fast path takes.
const fastMaxFields = 64

// fastField is one header line of a head: offsets of its name and of its
// value (trimmed of SP and HTAB) in the head.
type fastField struct {
	ks, ke, vs, ve uint16
}

// fastInline is how many header values fastResponse keeps inside its one
// allocation of the response; more take an array of their own.
const fastInline = 8

// fastResp is the one allocation of a response built by fastResponse:
// the response, its body and the backing array of up to fastInline
// header values.
type fastResp struct {
	resp http.Response
	body fastBody
	vals [fastInline]string
}

var crlfcrlf = []byte("\r\n\r\n")

// fastResponse parses the response head already buffered in br when it is
// of the common, unambiguous kind, and returns nil (br untouched) for
// anything else. What it takes: a head that ends (CRLF CRLF) within what
// br has buffered; a status line "HTTP/1.1 " or "HTTP/1.0 ", a 3-digit
// status 200-599 other than 204 and 304, then nothing or a space and a
// reason of visible ASCII, SP and HTAB; at most fastMaxFields header lines
// ending in CRLF, none starting with SP or HTAB (no obs-fold), each a
// token name, a colon and a value of visible ASCII, SP and HTAB; at most
// one Content-Length, of 1 to 18 digits; Transfer-Encoding absent, or (on
// HTTP/1.1, with no Content-Length, no Trailer header and a request other
// than HEAD) one field that is "chunked" in any case. The response built
// is field for field net/http's (see readTransfer and shouldClose in
// net/http): Connection handling, the Pragma: no-cache rule, the body's
// framing and its errors, trailers of a chunked body. The differential
// tests (respparse_test.go) hold it to http.ReadResponse.
func fastResponse(br *bufio.Reader, req *http.Request) *http.Response {
	n := br.Buffered()
	if n < 16 {
		return nil
	}
	buf, _ := br.Peek(n) // n bytes are buffered: no read, no error
	end := bytes.Index(buf, crlfcrlf)
	if end < 0 {
		return nil
	}
	b := buf[:end+2] // the status line and the header lines, each with its CRLF
	if len(b) > 1<<16-1 {
		return nil
	}
	// Status line.
	if len(b) < 14 || string(b[:7]) != "HTTP/1." || (b[7] != '1' && b[7] != '0') || b[8] != ' ' {
		return nil
	}
	d0, d1, d2 := b[9]-'0', b[10]-'0', b[11]-'0'
	if d0 < 2 || d0 > 5 || d1 > 9 || d2 > 9 {
		return nil
	}
	code := int(d0)*100 + int(d1)*10 + int(d2)
	if code == http.StatusNoContent || code == http.StatusNotModified {
		return nil
	}
	i := 12
	if b[i] == ' ' {
		for i++; b[i] != '\r'; i++ {
			if c := b[i]; (c < 0x20 && c != '\t') || c > 0x7e {
				return nil
			}
		}
	}
	if b[i] != '\r' || b[i+1] != '\n' {
		return nil
	}
	statusEnd := i
	i += 2
	// Header lines.
	var fields [fastMaxFields]fastField
	nf := 0
	canon := true // every name is already in canonical form
	for i < len(b) {
		if nf == fastMaxFields {
			return nil
		}
		f := &fields[nf]
		f.ks = uint16(i)
		upper := true
		for ; b[i] != ':'; i++ {
			c := b[i]
			if !httpguts.IsTokenRune(rune(c)) {
				return nil
			}
			if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
				canon = false
			}
			upper = c == '-'
		}
		if i == int(f.ks) {
			return nil
		}
		f.ke = uint16(i)
		i++
		for b[i] == ' ' || b[i] == '\t' {
			i++
		}
		f.vs = uint16(i)
		for ; b[i] != '\r'; i++ {
			if c := b[i]; (c < 0x20 && c != '\t') || c > 0x7e {
				return nil
			}
		}
		if b[i+1] != '\n' {
			return nil
		}
		f.ve = uint16(i)
		for f.ve > f.vs && (b[f.ve-1] == ' ' || b[f.ve-1] == '\t') {
			f.ve--
		}
		i += 2
		nf++
	}

	// One string for the whole head, names in canonical form.
	var head string
	if canon {
		head = string(b)
	} else {
		var tmp [4096]byte
		var w []byte
		if len(b) <= len(tmp) {
			w = tmp[:len(b)]
		} else {
			w = make([]byte, len(b))
		}
		copy(w, b)
		for _, f := range fields[:nf] {
			upper := true
			for j := f.ks; j < f.ke; j++ {
				c := w[j]
				if upper && 'a' <= c && c <= 'z' {
					c -= 'a' - 'A'
				} else if !upper && 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				w[j] = c
				upper = c == '-'
			}
		}
		head = string(w)
	}

	// The framing fields.
	nCL, nTE, trailer := 0, 0, false
	var cl, te string
	for _, f := range fields[:nf] {
		switch head[f.ks:f.ke] {
		case "Content-Length":
			nCL++
			cl = head[f.vs:f.ve]
		case "Transfer-Encoding":
			nTE++
			te = head[f.vs:f.ve]
		case "Trailer":
			trailer = true
		}
	}
	minor := int(b[7] - '0')
	isHead := req != nil && req.Method == http.MethodHead
	var length int64 = -1
	if nCL > 1 {
		return nil
	}
	if nCL == 1 {
		if len(cl) == 0 || len(cl) > 18 {
			return nil
		}
		length = 0
		for j := 0; j < len(cl); j++ {
			c := cl[j] - '0'
			if c > 9 {
				return nil
			}
			length = length*10 + int64(c)
		}
	}
	chunked := false
	if nTE > 0 {
		if nTE > 1 || minor != 1 || nCL > 0 || trailer || isHead || !asciiEqualFold(te, "chunked") {
			return nil
		}
		chunked = true
	}

	// The header: one backing array for all values, each name's values
	// together and in order, each slice capped at its own values.
	fr := new(fastResp)
	h := make(http.Header, nf)
	var vals []string
	if nf <= fastInline {
		vals = fr.vals[:nf]
	} else {
		vals = make([]string, nf)
	}
	at := 0
	for x, f := range fields[:nf] {
		k := head[f.ks:f.ke]
		if _, seen := h[k]; seen {
			continue
		}
		start := at
		vals[at] = head[f.vs:f.ve]
		at++
		for _, g := range fields[x+1 : nf] {
			if head[g.ks:g.ke] == k {
				vals[at] = head[g.vs:g.ve]
				at++
			}
		}
		h[k] = vals[start:at:at]
	}
	if hp := h["Pragma"]; len(hp) > 0 && hp[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}

	resp := &fr.resp
	*resp = http.Response{
		Status:     head[9:statusEnd],
		StatusCode: code,
		Proto:      head[:8],
		ProtoMajor: 1,
		ProtoMinor: minor,
		Header:     h,
		Request:    req,
	}
	// Connection (net/http's shouldClose, the close field removed on 1.1).
	conn := h["Connection"]
	hasClose := httpguts.HeaderValuesContainsToken(conn, "close")
	if minor == 0 {
		resp.Close = hasClose || !httpguts.HeaderValuesContainsToken(conn, "keep-alive")
	} else {
		resp.Close = hasClose
		if hasClose {
			delete(h, "Connection")
		}
	}
	br.Discard(len(b) + 2) // #nosec G104 -- the bytes are buffered: Discard cannot fail
	switch {
	case chunked:
		delete(h, "Transfer-Encoding")
		resp.TransferEncoding = []string{"chunked"}
		resp.ContentLength = -1
		fr.body = fastBody{src: httputil.NewChunkedReader(br), resp: resp, r: br}
		resp.Body = &fr.body
	case isHead:
		resp.ContentLength = length
		resp.Body = http.NoBody
	case length == 0:
		resp.ContentLength = 0
		resp.Body = http.NoBody
	case length > 0:
		resp.ContentLength = length
		fb := &fr.body
		fb.lr = io.LimitedReader{R: br, N: length}
		fb.src = &fb.lr
		resp.Body = fb
	default:
		// No length, not chunked, a status with a body: it ends with the
		// connection.
		resp.ContentLength = -1
		resp.Close = true
		fr.body.src = br
		resp.Body = &fr.body
	}
	return resp
}

// asciiEqualFold is strings.EqualFold for ASCII only (net/http's
// internal/ascii.EqualFold): bytes outside ASCII never match.
func asciiEqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		a, b := s[i], t[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// fastBody is a body of a response read by fastResponse, with net/http's
// body semantics (its Read in net/http/transfer.go): a Content-Length body
// (src is lr) ends early with io.ErrUnexpectedEOF and returns io.EOF with
// its last bytes; a chunked body (resp set) reads its trailer at the end
// into resp.Trailer; a body of no length reads to the connection's end.
// It is read by one goroutine (directBody's Read).
type fastBody struct {
	src    io.Reader
	lr     io.LimitedReader
	resp   *http.Response // chunked: where the trailer goes; nil once read
	r      *bufio.Reader  // chunked: the connection's reader
	sawEOF bool
	closed bool
}

func (b *fastBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.sawEOF {
		return 0, io.EOF
	}
	n, err := b.src.Read(p)
	if err == io.EOF {
		b.sawEOF = true
		if b.resp != nil {
			if e := b.readTrailer(); e != nil {
				err = e
				b.sawEOF = false
				b.closed = true
			}
			b.resp = nil
		} else if b.src == &b.lr && b.lr.N > 0 {
			err = io.ErrUnexpectedEOF
		}
	}
	if err == nil && n > 0 && b.src == &b.lr && b.lr.N == 0 {
		err = io.EOF
		b.sawEOF = true
	}
	return n, err
}

// Close marks the body closed; the connection is directBody's to release.
func (b *fastBody) Close() error {
	b.closed = true
	return nil
}

var errTrailerEOF = errors.New("http: unexpected EOF reading trailer")

// readTrailer is net/http's body.readTrailer: the trailer after a chunked
// body's last chunk, within the reader's buffer.
func (b *fastBody) readTrailer() error {
	buf, err := b.r.Peek(2)
	if bytes.Equal(buf, crlfcrlf[:2]) {
		b.r.Discard(2) // #nosec G104 -- the two bytes are buffered
		return nil
	}
	if len(buf) < 2 {
		return errTrailerEOF
	}
	if err != nil {
		return err
	}
	if !seeUpcomingDoubleCRLF(b.r) {
		return errors.New("http: suspiciously long trailer after chunked body")
	}
	hdr, err := textproto.NewReader(b.r).ReadMIMEHeader()
	if err != nil {
		if err == io.EOF {
			return errTrailerEOF
		}
		return err
	}
	if b.resp.Trailer == nil {
		b.resp.Trailer = http.Header(hdr)
	} else {
		for k, v := range hdr {
			b.resp.Trailer[k] = v
		}
	}
	return nil
}

// seeUpcomingDoubleCRLF is net/http's: whether a CRLF CRLF is within what
// r can buffer.
func seeUpcomingDoubleCRLF(r *bufio.Reader) bool {
	for peekSize := 4; ; peekSize++ {
		buf, err := r.Peek(peekSize)
		if bytes.HasSuffix(buf, crlfcrlf) {
			return true
		}
		if err != nil {
			break
		}
	}
	return false
}
