package injector

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"credvault/internal/credvault"
)

// redactedMark replaces every occurrence of a credential value (in any of the
// encodings a Scrubber knows) in what an upstream sends back.
const redactedMark = "[REDACTED]"

// minScrubLen is the shortest value a Scrubber looks for. Shorter values
// would match ordinary text far too often and turn responses into noise;
// they are also far too short to be a real API key.
const minScrubLen = 4

// minCoreLen is the shortest value whose base64 form is also looked for
// inside a longer base64 text (as in "Basic base64(user:value)"): the part
// of such an encoding that does not depend on the neighbouring bytes is
// shorter than the value, and for short values it would match random base64
// data.
const minCoreLen = 8

// maxPatterns bounds how many encodings of one value a Scrubber holds.
const maxPatterns = 32

// Scrubber removes one credential value from what an upstream sends back,
// so that an upstream that echoes the key (in an error message, a debug
// header, a redirect URL) cannot hand it to the workflow that called through
// credvault. It finds the raw value; its URL encodings (url.QueryEscape and
// url.PathEscape forms, with upper- or lower-case percent hex, though not
// mixed case in one occurrence); its base64 encodings (standard and URL
// alphabets, with and without padding, and the standard form URL-encoded);
// and, for values of at least 8 bytes, the part of its base64 encoding that
// is the same wherever the value sits inside a longer base64 text. Each
// occurrence becomes "[REDACTED]"; where occurrences overlap, the leftmost
// (then longest) wins.
//
// Values shorter than 4 bytes are not scrubbed at all: they would match
// ordinary text everywhere. A Scrubber is immutable and safe for concurrent
// use; it returns no errors.
type Scrubber struct {
	bpats  [][]byte // every encoding, longest first
	spats  []string // the same, as strings
	roots  []int    // the patterns no shorter pattern is a prefix of
	maxLen int
}

// NewScrubber prepares the patterns for value once, so that headers and
// every chunk of a streamed body are checked without re-encoding it. The
// proxy calls it on every request, so the encodings share one buffer. It
// cannot fail.
func NewScrubber(value credvault.Secret) *Scrubber {
	s := &Scrubber{}
	v := value.Reveal()
	if len(v) < minScrubLen {
		return s
	}
	// zv is v after two zero bytes: zv[2-off:] is v at offset off of a
	// base64 group. Its spare capacity holds the standard base64 form.
	zv := make([]byte, 2+len(v), 2+len(v)+base64.StdEncoding.EncodedLen(len(v)))
	copy(zv[2:], v)
	vb := zv[2:]
	std := base64.StdEncoding.AppendEncode(zv[len(zv):], vb)
	ps := patternSet{buf: make([]byte, 0, 12*len(v)+64)}

	ps.addString(v)
	// As a JSON string: Go's encoder (\u003c for <, >, &), a plain one, and
	// one that also escapes "/" (\/), for an upstream echoing it in JSON.
	for _, j := range jsonForms(v) {
		ps.addString(j)
	}
	ps.addEscaped(url.QueryEscape(v))
	ps.addEscaped(url.PathEscape(v))
	ps.addBytes(std)
	for _, lower := range []bool{false, true} {
		st := len(ps.buf)
		ps.buf = appendEscapedBase64(ps.buf, std, lower)
		ps.commit(st)
	}
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		st := len(ps.buf)
		ps.buf = enc.AppendEncode(ps.buf, vb)
		ps.commit(st)
	}
	if len(v) >= minCoreLen {
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			for off := 0; off < 3; off++ {
				st := len(ps.buf)
				ps.buf = enc.AppendEncode(ps.buf, zv[2-off:])
				skip := (8*off + 5) / 6       // characters holding bits of the bytes before v
				end := 8 * (off + len(v)) / 6 // characters complete without the bytes after v
				n := copy(ps.buf[st:], ps.buf[st+skip:st+end])
				ps.buf = ps.buf[:st+n]
				ps.commit(st)
			}
		}
	}

	spans := ps.spans[:ps.n]
	slices.SortStableFunc(spans, func(a, b [2]int) int { return (b[1] - b[0]) - (a[1] - a[0]) })
	all := string(ps.buf)
	s.bpats = make([][]byte, len(spans))
	s.spats = make([]string, len(spans))
	for i, sp := range spans {
		s.bpats[i] = ps.buf[sp[0]:sp[1]:sp[1]]
		s.spats[i] = all[sp[0]:sp[1]]
	}
	s.roots = make([]int, 0, len(spans))
	for i, p := range s.spats {
		root := true
		for j := i + 1; j < len(s.spats); j++ {
			if len(s.spats[j]) < len(p) && strings.HasPrefix(p, s.spats[j]) {
				root = false
				break
			}
		}
		if root {
			s.roots = append(s.roots, i)
		}
	}
	s.maxLen = len(s.spats[0])
	return s
}

// patternSet collects the encodings of a value in one buffer, without
// duplicates and without the ones too short to look for.
type patternSet struct {
	buf   []byte
	spans [maxPatterns][2]int
	n     int
}

// commit keeps buf[start:] as a pattern, or drops it.
func (ps *patternSet) commit(start int) {
	p := ps.buf[start:]
	keep := len(p) >= minScrubLen && ps.n < maxPatterns
	for _, sp := range ps.spans[:ps.n] {
		if keep && bytes.Equal(ps.buf[sp[0]:sp[1]], p) {
			keep = false
		}
	}
	if !keep {
		ps.buf = ps.buf[:start]
		return
	}
	ps.spans[ps.n] = [2]int{start, len(ps.buf)}
	ps.n++
}

func (ps *patternSet) addBytes(e []byte) {
	st := len(ps.buf)
	ps.buf = append(ps.buf, e...)
	ps.commit(st)
}

func (ps *patternSet) addString(e string) {
	st := len(ps.buf)
	ps.buf = append(ps.buf, e...)
	ps.commit(st)
}

// addEscaped adds a percent-encoded form as it is and with lower-case hex.
func (ps *patternSet) addEscaped(e string) {
	ps.addString(e)
	st := len(ps.buf)
	ps.buf = append(ps.buf, e...)
	lowerHex(ps.buf[st:])
	ps.commit(st)
}

// lowerHex turns the hex digits of every percent escape in b to lower case.
func lowerHex(b []byte) {
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			for j := i + 1; j <= i+2; j++ {
				if b[j] >= 'A' && b[j] <= 'F' {
					b[j] += 'a' - 'A'
				}
			}
			i += 2
		}
	}
}

// appendEscapedBase64 appends standard base64 text as url.QueryEscape
// writes it ('+', '/' and '=' escaped), with lower-case hex if lower.
func appendEscapedBase64(dst, b64 []byte, lower bool) []byte {
	hex := "0123456789ABCDEF"
	if lower {
		hex = "0123456789abcdef"
	}
	for _, c := range b64 {
		if c == '+' || c == '/' || c == '=' {
			dst = append(dst, '%', hex[c>>4], hex[c&15])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// String returns v with every occurrence of the value replaced, for single
// texts such as a status line or an error. It does not allocate when there
// is nothing to replace, and cannot fail.
func (s *Scrubber) String(v string) string {
	if !s.containsAny(v) {
		return v
	}
	out, _ := s.redact(make([]byte, 0, len(v)+len(redactedMark)), []byte(v), len(v))
	return string(out)
}

func (s *Scrubber) containsAny(v string) bool {
	for _, i := range s.roots {
		if p := s.spats[i]; len(v) >= len(p) && strings.Contains(v, p) {
			return true
		}
	}
	return false
}

// Header scrubs every value of h (response headers or trailers) in place.
// Names are not rewritten, but a header whose name itself holds the value is
// deleted, since a name cannot be redacted without changing what the header
// means. h may be nil. It cannot fail.
func (s *Scrubber) Header(h http.Header) {
	if len(s.spats) == 0 {
		return
	}
	for k, vs := range h {
		if s.containsAny(k) {
			delete(h, k)
			continue
		}
		for i, v := range vs {
			vs[i] = s.String(v)
		}
	}
}

// redact appends b[:limit] to out with matches replaced and returns how
// many bytes of b it consumed: at least limit, more when a match that
// starts before limit runs past it. Matches are only looked for at starting
// positions below limit. Only the root patterns are searched for (every
// occurrence of a longer pattern starts with one of them); at a hit, the
// longest pattern there is replaced.
func (s *Scrubber) redact(out, b []byte, limit int) ([]byte, int) {
	var next [maxPatterns]int // next hit of each root at or after pos; -1 none, -2 unknown
	for r := range s.roots {
		next[r] = -2
	}
	pos := 0
	for {
		best := -1
		for r, i := range s.roots {
			if next[r] == -2 || (next[r] >= 0 && next[r] < pos) {
				j := bytes.Index(b[pos:], s.bpats[i])
				if j >= 0 {
					j += pos
				}
				next[r] = j
			}
			if j := next[r]; j >= 0 && j < limit && (best < 0 || j < best) {
				best = j
			}
		}
		if best < 0 {
			break
		}
		n := 0
		for _, p := range s.bpats {
			if bytes.HasPrefix(b[best:], p) {
				n = len(p)
				break
			}
		}
		out = append(out, b[pos:best]...)
		out = append(out, redactedMark...)
		pos = best + n
	}
	if pos < limit {
		out = append(out, b[pos:limit]...)
		pos = limit
	}
	return out, pos
}

// jsonForms returns v as it appears inside JSON strings written by common
// encoders (without the quotes).
func jsonForms(v string) []string {
	var out []string
	var buf bytes.Buffer
	for _, html := range []bool{true, false} {
		buf.Reset()
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(html)
		if enc.Encode(v) != nil {
			continue
		}
		j := strings.TrimSuffix(buf.String(), "\n")
		j = j[1 : len(j)-1]
		out = append(out, j, strings.ReplaceAll(j, "/", `\/`))
	}
	return out
}
