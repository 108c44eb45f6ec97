package injector

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"sort"
	"sync"

	"credvault/internal/credvault"
)

// redactedMark replaces every occurrence of a credential value (in any of
// the views a Scrubber reads) in what an upstream sends back.
const redactedMark = "[REDACTED]"

// Scrubber removes one credential value from what an upstream sends back,
// so that an upstream that echoes the key (in an error message, a debug
// header, a redirect URL) cannot hand it to the workflow that called
// through credvault.
//
// It does not list the outputs of known encoders. It reads the text through
// views that undo the encodings an upstream plausibly applies, and looks for
// the value in each view:
//
//   - the text itself;
//   - text decoding, one scheme per view: percent escapes (RFC 3986
//     section 2.1; any subset of the characters escaped, either hex case),
//     JSON string escapes (RFC 8259 section 7: \uXXXX for all or some
//     characters, surrogate pairs, \/ and the one-letter escapes), HTML
//     character references (decimal and hex, with or without their ';' as
//     browsers read them, and the named references of ASCII punctuation)
//     or quoted-printable (RFC 2045 section 6.7: "=4B" and soft line
//     breaks); an escape begun by the text just before the value that
//     absorbs its first bytes ("%" then "41…") is seen through one layer
//     deep;
//   - binary decoding of every long enough run of hex, base32 (RFC 4648
//     section 6, either case), base32hex (section 7) or base64 (sections 4
//     and 5, both alphabets, with or without padding, line breaks skipped
//     as in MIME, spaces or tabs skipped between fixed-size groups of 4 or
//     more characters) characters, at every bit alignment, so the value is
//     also found inside a longer encoded text such as
//     "Basic base64(user:value)";
//   - decompression of a gzip (RFC 1952) or zlib (RFC 1950) stream found in
//     the raw input or a binary or decompressed view (an application/gzip
//     body, base64 of gzip, gzip of gzip), up to the budget;
//   - UTF-16 text (either byte order, alone or inside other data), read
//     with the zero byte beside each ASCII character dropped.
//
// Views are composed up to maxViewDepth decodings deep (percent-encoded
// base64, JSON-escaped percent encoding, base64 of hex, ...); layers of
// percent encoding in a row ("%252541") count as one, up to
// maxPercentLayers. The value is
// compared with ASCII case folded in every view (an upstream may upper-case
// it, and hex and base32 are case-insensitive anyway) and with '+' equal to
// ' ' (form encoding). Each occurrence's bytes in the original text become
// "[REDACTED]"; overlapping occurrences are redacted together.
//
// The work per input byte is bounded: at most viewBudget bytes of views
// are built per byte of input (plus a constant). Text that would need more
// (crafted nested encodings) is treated as holding the value: String
// returns "[REDACTED]" for all of it and Reader fails.
//
// Values shorter than credvault.MinSecretValueLen are scrubbed in the text
// views only (their hex or base64 forms would match random data); Client
// refuses to send such a value at all. A Scrubber is built once per value,
// is immutable and safe for concurrent use, and can be reused for every
// request with that value.
type Scrubber struct {
	needle   []byte                    // the value, folded
	binary   bool                      // look in binary views (long enough value)
	nameB64  [][]byte                  // folded base64 cores, for header names (see Header)
	window   int                       // hold-back of Reader, bytes
	minRun   [len(binaryAlphabets)]int // shortest run worth decoding, per binaryAlphabet
	emptyVal bool
}

// maxViewDepth is how many decodings a view may stack.
const maxViewDepth = 3

// viewBudget bounds the bytes of views built per byte of input.
const viewBudget = 64

// NewScrubber prepares the matcher for value. Build it once per value and
// reuse it. It cannot fail.
func NewScrubber(value credvault.Secret) *Scrubber {
	v := []byte(value.Reveal())
	s := &Scrubber{emptyVal: len(v) == 0}
	if s.emptyVal {
		return s
	}
	s.needle = make([]byte, len(v))
	foldInto(s.needle, v)
	s.binary = len(v) >= credvault.MinSecretValueLen
	for i, a := range binaryAlphabets {
		// The value's bits fill at least this many whole characters.
		s.minRun[i] = 8 * len(v) / a.bits
	}
	// The longest single-layer form is a JSON or HTML escape of every
	// character (up to 12 bytes for one UTF-8 sequence); two layers of
	// percent and JSON escapes are covered as well.
	s.window = 18*len(v) + 32
	if s.binary {
		// Canonical header names have their case changed, which base64
		// cannot be decoded through; compare the case-folded forms.
		zv := append(make([]byte, 2, 2+len(v)), v...)
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			for off := 0; off < 3; off++ {
				e := enc.AppendEncode(nil, zv[2-off:])
				skip := (8*off + 5) / 6
				end := 8 * (off + len(v)) / 6
				core := e[skip:end]
				foldInto(core, core)
				s.nameB64 = append(s.nameB64, core)
			}
		}
	}
	return s
}

// foldTable maps ASCII upper case to lower case and '+' to ' '.
var foldTable = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = byte(c) + 'a' - 'A'
	}
	t['+'] = ' '
	return t
}()

func foldInto(dst, src []byte) {
	for i, c := range src {
		dst[i] = foldTable[c]
	}
}

// scratch holds the views of one search; pooled, since the proxy scrubs
// every response.
type scratch struct {
	data   []byte  // view bytes, stack-allocated by depth
	lo, hi []int32 // where each view byte comes from in the input
	up     []int32 // where each view byte comes from in its parent view
	folded []byte
	spans  [][2]int
	// views[d] is the view being searched at depth d (issue 24): kept
	// here rather than in scan's frame, because a child view points to its
	// parent and that made every scan's view escape to the heap (one
	// allocation per scan, about eight per proxied call).
	views [maxViewDepth + 1]view
	in    []byte // the text String and Contains search, copied once
	used  int    // view bytes built so far
	limit int
	over  bool
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// maxPooledScratch keeps scratch that grew on a huge input out of the pool.
const maxPooledScratch = 1 << 20

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(sc *scratch) {
	if cap(sc.data) > maxPooledScratch || cap(sc.lo) > maxPooledScratch {
		return
	}
	sc.data, sc.lo, sc.hi, sc.up, sc.spans = sc.data[:0], sc.lo[:0], sc.hi[:0], sc.up[:0], sc.spans[:0]
	sc.views, sc.in = [maxViewDepth + 1]view{}, sc.in[:0]
	scratchPool.Put(sc)
}

// find sets sc.spans to the sorted, merged ranges of b that hold the value
// in some view, and sc.over when the budget ran out (then spans are
// incomplete and b must be treated as holding the value).
func (s *Scrubber) find(sc *scratch, b []byte) {
	sc.spans, sc.used, sc.over = sc.spans[:0], 0, false
	if s.emptyVal || len(b) == 0 {
		return
	}
	sc.limit = viewBudget*len(b) + 64*len(s.needle) + 4096
	s.scan(sc, view{data: b}, 0)
	if len(sc.spans) < 2 {
		return
	}
	sort.Slice(sc.spans, func(i, j int) bool { return sc.spans[i][0] < sc.spans[j][0] })
	out := sc.spans[:1]
	for _, sp := range sc.spans[1:] {
		last := &out[len(out)-1]
		if sp[0] <= last[1] {
			last[1] = max(last[1], sp[1])
			continue
		}
		out = append(out, sp)
	}
	sc.spans = out
}

// String returns v with every occurrence of the value replaced, for single
// texts such as a status line or an error. It does not allocate when there
// is nothing to replace, and cannot fail.
func (s *Scrubber) String(v string) string {
	if s.emptyVal || v == "" {
		return v
	}
	sc := getScratch()
	defer putScratch(sc)
	sc.in = append(sc.in[:0], v...) // no allocation once the pooled buffer has grown
	b := sc.in
	s.find(sc, b)
	switch {
	case sc.over:
		return redactedMark
	case len(sc.spans) == 0:
		return v
	}
	return string(redactSpans(make([]byte, 0, len(v)), b, sc.spans))
}

// Contains reports whether v holds the value in any view (or is too costly
// to read, which counts as holding it). The redirect guard uses it. It
// cannot fail.
func (s *Scrubber) Contains(v string) bool {
	if s.emptyVal || v == "" {
		return false
	}
	sc := getScratch()
	defer putScratch(sc)
	sc.in = append(sc.in[:0], v...)
	s.find(sc, sc.in)
	return sc.over || len(sc.spans) > 0
}

// redactSpans appends b to out with each span replaced by the mark.
func redactSpans(out, b []byte, spans [][2]int) []byte {
	pos := 0
	for _, sp := range spans {
		out = append(out, b[pos:sp[0]]...)
		out = append(out, redactedMark...)
		pos = sp[1]
	}
	return append(out, b[pos:]...)
}

// Header scrubs every value of h (response headers or trailers) in place.
// Names are not rewritten: a header whose name holds the value is deleted,
// since a name cannot be redacted without changing what the header means.
// net/http hands names over in canonical form (ASCII case changed), which
// case-folded matching sees through for every view except base64, whose
// decoding depends on case; for names the case-folded base64 forms of the
// value are compared as well. h may be nil. It cannot fail.
func (s *Scrubber) Header(h http.Header) {
	if s.emptyVal {
		return
	}
	for k, vs := range h {
		if s.nameHolds(k) {
			delete(h, k)
			continue
		}
		for i, v := range vs {
			vs[i] = s.String(v)
		}
	}
}

func (s *Scrubber) nameHolds(k string) bool {
	if s.Contains(k) {
		return true
	}
	if len(s.nameB64) == 0 {
		return false
	}
	var buf [64]byte // header names are short: no allocation per name (issue 24)
	f := append(buf[:0], k...)
	foldInto(f, f)
	for _, core := range s.nameB64 {
		if bytes.Contains(f, core) {
			return true
		}
	}
	return false
}
