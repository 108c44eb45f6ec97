package injector

import (
	"bytes"
	"unicode/utf8"
)

// view is a decoding of the input: data[i] comes from input bytes
// [lo[i], hi[i]). The input itself has lo == nil (byte i comes from [i, i+1)).
type view struct {
	data   []byte
	lo, hi []int32
	up     []int32 // index in the parent view where byte i's source starts
	parent *view
	text   bool // decoded from text escapes
	binary bool // raw bytes: decoded from a binary-to-text alphabet, or decompressed
	wide   bool // UTF-16 (or -32) text with its zero bytes dropped
	pct    int8 // percent-decoding layers that end in this view, in a row
}

func (v *view) from(i int) int32 {
	if v.lo == nil {
		return int32(i) // #nosec G115 -- offsets are bounded by the scrubber window, far below 2^31
	}
	return v.lo[i]
}

func (v *view) to(i int) int32 {
	if v.hi == nil {
		return int32(i + 1) // #nosec G115 -- offsets are bounded by the scrubber window, far below 2^31
	}
	return v.hi[i]
}

// viewBuilder appends a child view of parent at the top of the scratch
// stacks; pop gives the space back once the child has been searched.
type viewBuilder struct {
	sc     *scratch
	parent *view
	base   int
}

func newBuilder(sc *scratch, parent *view) viewBuilder {
	return viewBuilder{sc: sc, parent: parent, base: len(sc.data)}
}

// emit adds byte c, decoded from parent bytes [a, b).
func (vb *viewBuilder) emit(c byte, a, b int) {
	vb.sc.data = append(vb.sc.data, c)
	vb.sc.lo = append(vb.sc.lo, vb.parent.from(a))
	vb.sc.hi = append(vb.sc.hi, vb.parent.to(b-1))
	vb.sc.up = append(vb.sc.up, int32(a)) // #nosec G115 -- offsets are bounded by the scrubber window, far below 2^31
}

func (vb *viewBuilder) view() view {
	sc := vb.sc
	return view{data: sc.data[vb.base:], lo: sc.lo[vb.base:], hi: sc.hi[vb.base:], up: sc.up[vb.base:], parent: vb.parent}
}

func (vb *viewBuilder) pop() {
	sc := vb.sc
	sc.data, sc.lo, sc.hi, sc.up = sc.data[:vb.base], sc.lo[:vb.base], sc.hi[:vb.base], sc.up[:vb.base]
}

// scan looks for the value in v, then in the views decoded from v.
func (s *Scrubber) scan(sc *scratch, in view, depth int) {
	if sc.over {
		return
	}
	sc.used += len(in.data)
	if sc.used > sc.limit {
		sc.over = true
		return
	}
	// The view lives in sc.views[depth] (see scratch.views); depth d is
	// reused only after the view there and all its children are searched.
	v := &sc.views[depth]
	*v = in
	s.match(sc, v)
	if v.text {
		s.matchSwallowed(sc, v)
	}
	if depth == maxViewDepth {
		// Layers of percent encoding ("%252541") are undone in views at
		// the same depth (see textView), so a chain can go on here.
		if v.pct > 0 && v.pct < maxPercentLayers && bytes.IndexByte(v.data, '%') >= 0 {
			s.textView(sc, v, '%', schemePercent, depth)
		}
		return
	}
	if bytes.ContainsAny(v.data, `%\&=`) {
		s.textViews(sc, v, depth)
	}
	if s.binary {
		for i := range binaryAlphabets {
			s.binaryViews(sc, v, &binaryAlphabets[i], s.minRun[i], depth)
		}
	}
	if v.binary || v.parent == nil {
		// The input itself may be a raw gzip or zlib stream (an
		// application/gzip body, zlib inside a gzip body).
		s.inflateViews(sc, v, depth)
	}
	if !v.wide {
		s.wideView(sc, v, depth)
	}
}

// maxPercentLayers is how many percent-decoding layers in a row a view
// chain may undo at one depth: four layers ("%25252541") are what a URL
// encoded once per hop of a redirect chain carries.
const maxPercentLayers = 6

// match records every occurrence of the folded value in v.
func (s *Scrubber) match(sc *scratch, v *view) {
	if len(v.data) < 2 {
		return
	}
	if cap(sc.folded) < len(v.data) {
		sc.folded = make([]byte, len(v.data), 2*len(v.data))
	}
	f := sc.folded[:len(v.data)]
	foldInto(f, v.data)
	for i := 0; ; {
		j := bytes.Index(f[i:], s.needle)
		if j < 0 {
			return
		}
		j += i
		sc.spans = append(sc.spans, [2]int{int(v.from(j)), int(v.to(j + len(s.needle) - 1))})
		i = j + 1
	}
}

// maxSwallow is how many leading bytes of the value an escape begun by the
// text before it can absorb: "\" then "u0041…" reads as one JSON escape,
// "%" then "41…" as one percent escape.
const maxSwallow = 5

// matchSwallowed finds the value in a text view when its first k bytes
// were absorbed by an escape that starts before it: the rest of the value
// follows in the view, and the parent view right before that rest ends
// with the value's first k bytes.
func (s *Scrubber) matchSwallowed(sc *scratch, v *view) {
	input := v.parent.data
	if len(v.data) < 2 {
		return
	}
	f := sc.folded[:len(v.data)] // folded by match
	for k := 1; k <= maxSwallow && len(s.needle)-k >= 2; k++ {
		rest := s.needle[k:]
		for i := 1; i+len(rest) <= len(f); {
			j := bytes.Index(f[i:], rest)
			if j < 0 {
				break
			}
			j += i
			at := int(v.up[j])
			if at >= k && bytes.Equal(foldCopy(input[at-k:at]), s.needle[:k]) {
				sc.spans = append(sc.spans, [2]int{int(v.from(j - 1)), int(v.to(j + len(rest) - 1))})
			}
			i = j + 1
		}
	}
}

func foldCopy(b []byte) []byte {
	var buf [maxSwallow]byte
	foldInto(buf[:len(b)], b)
	return buf[:len(b)]
}

// Text escape schemes, as a bit set.
const (
	schemePercent = 1 << iota
	schemeJSON
	schemeHTML
	schemeQP
)

// textViews decodes the escapes of v one scheme at a time: each view
// undoes exactly one layer, so that a composition (JSON-escaped percent
// encoding) is undone layer by layer. Decoding several schemes in one pass
// would mix layers: an escape of an outer layer decoded early can join an
// inner layer's escape that is still encoded.
func (s *Scrubber) textViews(sc *scratch, v *view, depth int) {
	for _, sch := range [...]struct {
		intro  byte
		scheme int
	}{{'%', schemePercent}, {'\\', schemeJSON}, {'&', schemeHTML}, {'=', schemeQP}} {
		s.textView(sc, v, sch.intro, sch.scheme, depth)
	}
}

// textView builds the view of v with scheme's escapes decoded. Only the
// part from Window() bytes before the first escape to Window() bytes after
// the last is decoded: an occurrence that holds no escape was already
// found in v itself, and one that does lies within that reach.
func (s *Scrubber) textView(sc *scratch, v *view, intro byte, scheme int, depth int) {
	d := v.data
	first, last := -1, -1
	for i := bytes.IndexByte(d, intro); i >= 0; {
		if _, n, _ := escapeAt(d, i, scheme); n > 0 {
			first = i
			break
		}
		k := bytes.IndexByte(d[i+1:], intro)
		if k < 0 {
			break
		}
		i += 1 + k
	}
	if first < 0 {
		return
	}
	for i := bytes.LastIndexByte(d, intro); i >= first; i = bytes.LastIndexByte(d[:i], intro) {
		if _, n, _ := escapeAt(d, i, scheme); n > 0 {
			last = i + n
			break
		}
	}
	vb := newBuilder(sc, v)
	defer vb.pop()
	decodeText(&vb, d, max(0, first-s.window), min(len(d), last+s.window), scheme)
	tv := vb.view()
	tv.text = true
	next := depth + 1
	if scheme == schemePercent {
		// A percent layer under a percent layer does not count as a
		// layer of its own: each one adds only "25" per escape.
		tv.pct = v.pct + 1
		if v.pct > 0 {
			next = depth
		}
	}
	s.scan(sc, tv, next)
}

// escapeAt reads the escape of scheme at d[i]: the rune (or, for a percent
// or quoted-printable escape, the raw byte) and its length; length 0 when
// there is none. A quoted-printable soft line break ("=" CRLF, RFC 2045
// section 6.7) decodes to nothing: r is -1.
func escapeAt(d []byte, i int, scheme int) (r rune, n int, raw bool) {
	switch {
	case scheme == schemePercent && d[i] == '%', scheme == schemeQP && d[i] == '=':
		if i+2 < len(d) && hexVal[d[i+1]] >= 0 && hexVal[d[i+2]] >= 0 {
			return rune(hexVal[d[i+1]])<<4 | rune(hexVal[d[i+2]]), 3, true
		}
		if scheme == schemeQP && i+1 < len(d) && d[i+1] == '\n' {
			return -1, 2, true
		}
		if scheme == schemeQP && i+2 < len(d) && d[i+1] == '\r' && d[i+2] == '\n' {
			return -1, 3, true
		}
	case scheme == schemeJSON && d[i] == '\\':
		r, n = jsonEscape(d[i:])
	case scheme == schemeHTML && d[i] == '&':
		r, n = htmlReference(d[i:])
	}
	return r, n, false
}

// decodeText emits d[lo:hi] with the escapes of scheme decoded (an escape
// that starts before hi is read whole).
func decodeText(vb *viewBuilder, d []byte, lo, hi int, scheme int) {
	var rb [utf8.UTFMax]byte
	for i := lo; i < hi; {
		r, n, raw := escapeAt(d, i, scheme)
		switch {
		case n == 0:
			vb.emit(d[i], i, i+1)
			i++
			continue
		case raw && r < 0:
			// A soft line break: nothing.
		case raw:
			vb.emit(byte(r), i, i+n) // #nosec G115 -- raw: r is a percent escape's byte, two hex digits (0-255), so byte(r) is exact
		default:
			for _, b := range rb[:utf8.EncodeRune(rb[:], r)] {
				vb.emit(b, i, i+n)
			}
		}
		i += n
	}
}

// hexVal is the value of a hex digit, or -1.
var hexVal = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = int8(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = int8(c - 'a' + 10)
		t[c-'a'+'A'] = int8(c - 'a' + 10)
	}
	return t
}()

func hexRune(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		if hexVal[c] < 0 {
			return 0, false
		}
		r = r<<4 | rune(hexVal[c])
	}
	return r, true
}

// jsonEscape decodes the escape at the start of d (d[0] == '\\'):
// the rune and the escape's length, or length 0.
func jsonEscape(d []byte) (rune, int) {
	if len(d) < 2 {
		return 0, 0
	}
	switch d[1] {
	case '"', '\\', '/':
		return rune(d[1]), 2
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
	default:
		return 0, 0
	}
	if len(d) < 6 {
		return 0, 0
	}
	r, ok := hexRune(d[2:6])
	if !ok {
		return 0, 0
	}
	if r >= 0xd800 && r < 0xdc00 && len(d) >= 12 && d[6] == '\\' && d[7] == 'u' {
		if lo, ok := hexRune(d[8:12]); ok && lo >= 0xdc00 && lo < 0xe000 {
			return 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00), 12
		}
	}
	if r >= 0xd800 && r < 0xe000 {
		return 0, 0
	}
	return r, 6
}

// maxRefDigits bounds the digits of a numeric character reference, so that
// zero padding cannot stretch one character without limit.
const maxRefDigits = 8

// htmlReference decodes the character reference at the start of d
// (d[0] == '&'): numeric ("&#65;", "&#x41;") or one of
// htmlNames. It returns the rune and the reference's length, or length 0.
func htmlReference(d []byte) (rune, int) {
	if len(d) < 3 {
		return 0, 0
	}
	if d[1] == '#' {
		i, base := 2, rune(10)
		if d[2] == 'x' || d[2] == 'X' {
			i, base = 3, 16
		}
		start := i
		var r rune
		for i < len(d) && i-start < maxRefDigits {
			v := rune(hexVal[d[i]])
			if v < 0 || v >= base {
				break
			}
			r = r*base + v
			i++
		}
		// The ';' may be missing, as browsers read "&#65B" (HTML Living
		// Standard, numeric character reference end state). A reference
		// whose digits are themselves escaped ("&#4%38;") then decodes
		// early and wrongly here, but the percent view decodes it right
		// first: each view undoes one scheme.
		if i == start || r > utf8.MaxRune || (r >= 0xd800 && r < 0xe000) {
			return 0, 0
		}
		if i < len(d) && d[i] == ';' {
			i++
		}
		return r, i
	}
	end := bytes.IndexByte(d[:min(len(d), 20)], ';')
	if end < 2 {
		return 0, 0
	}
	if r, ok := htmlNames[string(d[1:end])]; ok {
		return r, end + 1
	}
	return 0, 0
}

// htmlNames are the named character references (HTML Living Standard,
// "Named character references") of the ASCII characters an encoder
// escapes.
var htmlNames = map[string]rune{
	"amp": '&', "AMP": '&', "lt": '<', "LT": '<', "gt": '>', "GT": '>', "quot": '"', "QUOT": '"',
	"apos": '\'', "excl": '!', "num": '#', "dollar": '$', "percnt": '%', "lpar": '(', "rpar": ')',
	"ast": '*', "midast": '*', "plus": '+', "comma": ',', "period": '.', "sol": '/', "colon": ':',
	"semi": ';', "equals": '=', "quest": '?', "commat": '@', "lsqb": '[', "lbrack": '[', "bsol": '\\',
	"rsqb": ']', "rbrack": ']', "Hat": '^', "lowbar": '_', "UnderBar": '_', "grave": '`', "DiacriticalGrave": '`',
	"lcub": '{', "lbrace": '{', "verbar": '|', "vert": '|', "VerticalLine": '|', "rcub": '}', "rbrace": '}',
	"tilde": '~', "hyphen": '-', "dash": '-', "nbsp": 0xa0, "Tab": '\t', "NewLine": '\n',
}

// binaryAlphabet is a binary-to-text encoding: the value of each character
// (-1: not in the alphabet, -2: skipped inside a run, as line breaks) and
// the bits it carries.
type binaryAlphabet struct {
	val  [256]int8
	bits int
}

var binaryAlphabets = [4]binaryAlphabet{
	newAlphabet("0123456789abcdef", "0123456789ABCDEF", 4),
	newAlphabet("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "abcdefghijklmnopqrstuvwxyz234567", 5),
	// base32hex, the "Extended Hex" alphabet (RFC 4648 section 7).
	newAlphabet("0123456789ABCDEFGHIJKLMNOPQRSTUV", "0123456789abcdefghijklmnopqrstuv", 5),
	// Standard and URL alphabets at once ('+' and '-' are 62, '/' and
	// '_' are 63).
	newAlphabet("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", 6),
}

func newAlphabet(a, b string, bits int) binaryAlphabet {
	var al binaryAlphabet
	for i := range al.val {
		al.val[i] = -1
	}
	for i := range a {
		al.val[a[i]] = int8(i) // #nosec G115 -- i indexes an alphabet of at most 64 symbols
		al.val[b[i]] = int8(i) // #nosec G115 -- i indexes an alphabet of at most 64 symbols
	}
	al.val['\r'], al.val['\n'] = -2, -2
	al.val[' '], al.val['\t'] = -3, -3
	al.bits = bits
	return al
}

// minGroup is the shortest group of characters a space or tab may follow
// inside an encoded run ("QUJD REVG R0hJ"): formatters split base64 and
// hex into fixed groups of 4 or more.
const minGroup = 4

// runEnd returns where the run of al's characters that starts at d[start]
// ends, and how many characters of the alphabet it holds. Line breaks are
// skipped (MIME); a space or tab continues the run only between groups of
// one fixed length of at least minGroup characters, so that words of prose
// do not join into one long run.
func runEnd(d []byte, start int, al *binaryAlphabet) (end, sig int) {
	group, groupLen := 0, 0
	i := start
	for ; i < len(d); i++ {
		x := al.val[d[i]]
		if x == -1 {
			break
		}
		if x == -3 {
			if groupLen == 0 && group >= minGroup {
				groupLen = group
			}
			if group != groupLen || i+1 == len(d) || al.val[d[i+1]] < 0 {
				break
			}
			group = 0
			continue
		}
		if x >= 0 {
			sig++
			group++
		}
	}
	return i, sig
}

// binaryViews decodes every run of al's characters in v that is long
// enough to hold the value, at each bit alignment the run can start at.
func (s *Scrubber) binaryViews(sc *scratch, v *view, al *binaryAlphabet, minRun, depth int) {
	d := v.data
	for i := 0; i < len(d); {
		if al.val[d[i]] < 0 {
			i++
			continue
		}
		start := i
		var sig int
		i, sig = runEnd(d, start, al)
		if sig < minRun {
			continue
		}
		// A byte of the encoded data starts every 8 bits; relative to the
		// run's first character that is at bit (bits*k) mod 8 for the k-th
		// character the data may begin at.
		for phase := 0; phase < 8; phase += phaseStep(al.bits) {
			vb := newBuilder(sc, v)
			decodeRun(&vb, d, start, i, al, phase)
			if len(vb.sc.data)-vb.base >= len(s.needle) {
				bv := vb.view()
				bv.binary = true
				s.scan(sc, bv, depth+1)
			}
			vb.pop()
			if sc.over {
				return
			}
		}
	}
}

// phaseStep is the distance between the bit alignments a run of bits-bit
// characters can hold bytes at (gcd(bits, 8)).
func phaseStep(bits int) int {
	switch bits {
	case 4:
		return 4
	case 6:
		return 2
	}
	return 1
}

// decodeRun emits the bytes of d[start:end] read as al, after skipping the
// first phase bits.
func decodeRun(vb *viewBuilder, d []byte, start, end int, al *binaryAlphabet, phase int) {
	var acc uint32
	nbits, drop, first := 0, phase, -1
	for i := start; i < end; i++ {
		x := al.val[d[i]]
		if x < 0 {
			continue
		}
		acc = acc<<al.bits | uint32(x)
		nbits += al.bits
		if drop > 0 {
			k := min(drop, nbits)
			nbits -= k
			drop -= k
			acc &= 1<<nbits - 1
		}
		if first < 0 && nbits > 0 {
			first = i
		}
		for nbits >= 8 {
			vb.emit(byte(acc>>(nbits-8)), first, i+1) // #nosec G115 -- the low 8 bits are the decoded byte on purpose
			nbits -= 8
			acc &= 1<<nbits - 1
			first = -1
			if nbits > 0 {
				first = i
			}
		}
	}
}
