package injector

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"credvault/internal/credvault"
)

// fuzzEncoder is one encoding an upstream may apply; bits chooses its
// variant (which characters, which case, where lines wrap).
type fuzzEncoder struct {
	name  string
	apply func(s string, bits uint64) string
	// text encoders may be stacked on anything; caseChange only on the
	// value itself (case cannot be undone through base64).
	caseChange bool
}

// pick reports whether the i-th element is chosen by bits.
func pick(bits uint64, i int) bool { return bits>>(uint(i)%64)&1 == 1 }

var fuzzEncoders = []fuzzEncoder{
	{name: "percent", apply: func(s string, bits uint64) string {
		hexd := "0123456789ABCDEF"
		if pick(bits, 63) {
			hexd = "0123456789abcdef"
		}
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c == '%' || c <= ' ' || c >= 0x7f || pick(bits, i) {
				b.WriteByte('%')
				b.WriteByte(hexd[c>>4])
				b.WriteByte(hexd[c&15])
				continue
			}
			b.WriteByte(c)
		}
		return b.String()
	}},
	{name: "json", apply: func(s string, bits uint64) string {
		var b strings.Builder
		i := 0
		for _, r := range s {
			i++
			switch {
			case r == '"' || r == '\\' || r < 0x20 || pick(bits, i):
				if r >= 0x10000 {
					r -= 0x10000
					fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
					continue
				}
				if pick(bits, 62) {
					fmt.Fprintf(&b, `\u%04X`, r)
				} else {
					fmt.Fprintf(&b, `\u%04x`, r)
				}
			case r == '/' && pick(bits, 61):
				b.WriteString(`\/`)
			default:
				b.WriteRune(r)
			}
		}
		return b.String()
	}},
	{name: "html", apply: func(s string, bits uint64) string {
		var b strings.Builder
		i := 0
		for _, r := range s {
			i++
			switch {
			case r == '&' && pick(bits, 60):
				b.WriteString("&amp;")
			case r == '&' || r < 0x20 || pick(bits, i):
				if pick(bits, i+1) {
					fmt.Fprintf(&b, "&#x%x;", r)
				} else {
					fmt.Fprintf(&b, "&#%d;", r)
				}
			default:
				b.WriteRune(r)
			}
		}
		return b.String()
	}},
	{name: "hex", apply: func(s string, bits uint64) string {
		h := hex.EncodeToString([]byte(s))
		if pick(bits, 0) {
			h = strings.ToUpper(h)
		}
		return h
	}},
	{name: "base32", apply: func(s string, bits uint64) string {
		enc := base32.StdEncoding
		if pick(bits, 0) {
			enc = enc.WithPadding(base32.NoPadding)
		}
		e := enc.EncodeToString([]byte(s))
		if pick(bits, 1) {
			e = strings.ToLower(e)
		}
		return e
	}},
	{name: "base64", apply: func(s string, bits uint64) string {
		encs := []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding}
		// Somewhere inside a longer text, as in "Basic base64(user:value)".
		lead := strings.Repeat("u", int(bits>>8%4))
		e := encs[bits%4].EncodeToString([]byte(lead + s + strings.Repeat("x", int(bits>>10%3))))
		if w := int(bits >> 12 % 80); w >= 4 {
			var b strings.Builder
			for len(e) > w {
				b.WriteString(e[:w] + "\r\n")
				e = e[w:]
			}
			b.WriteString(e)
			e = b.String()
		}
		return e
	}},
	// ASCII case only: the Scrubber folds ASCII letters.
	{name: "upper", caseChange: true, apply: func(s string, _ uint64) string { return asciiCase(s, 'a', 'z', 'A'-'a') }},
	{name: "lower", caseChange: true, apply: func(s string, _ uint64) string { return asciiCase(s, 'A', 'Z', 'a'-'A') }},
}

func textLayers(names []string) int {
	n := 0
	for _, name := range names {
		if name == "percent" || name == "json" || name == "html" {
			n++
		}
	}
	return n
}

func asciiCase(s string, from, to byte, delta int) string {
	b := []byte(s)
	for i, c := range b {
		if c >= from && c <= to {
			b[i] = byte(int(c) + delta)
		}
	}
	return string(b)
}

// FuzzScrubber encodes a random value with a random composition of the
// encodings the Scrubber undoes (up to maxViewDepth of them, plus a case
// change of the value), puts it between random texts, and checks that the
// encoded form never survives scrubbing, that no view of the output holds
// the value, and that text without the value comes out unchanged.
func FuzzScrubber(f *testing.F) {
	f.Add([]byte(testValue), []byte(`{"error":"bad key `), []byte(`"}`), []byte{0, 1}, uint64(0x5555))
	f.Add([]byte("AKIAIOSFODNN7EXAMPLE"), []byte("Authorization: Basic "), []byte("\r\n"), []byte{5}, uint64(0x1234567))
	f.Add([]byte("a b/c+d=e&f%41"), []byte("?q="), []byte("&x=1"), []byte{2, 0, 1}, uint64(0xffff))
	f.Add([]byte("ünïcode-key-42"), []byte("<p>"), []byte("</p>"), []byte{6, 3}, uint64(7))
	f.Add([]byte("xoxb-17653672481"), []byte("data: "), []byte("\n\n"), []byte{4, 5, 0}, uint64(0xdeadbeef))
	f.Fuzz(func(t *testing.T, value, before, after, chain []byte, bits uint64) {
		v := string(value)
		if credvault.CheckSecretValue(v) != nil || len(v) > 96 || len(before)+len(after) > 512 || !utf8.Valid(before) || !utf8.Valid(after) {
			return
		}
		s := NewScrubber(credvault.NewSecret(v))
		enc, names := v, []string{}
		layers := 0
		for i, c := range chain {
			e := fuzzEncoders[int(c)%len(fuzzEncoders)]
			if e.caseChange && layers > 0 || !e.caseChange && layers == maxViewDepth || i >= 4 {
				continue
			}
			if !e.caseChange {
				layers++
			}
			enc = e.apply(enc, bits>>uint(i*7)|bits<<uint(64-i*7))
			names = append(names, e.name)
		}
		if layers >= 2 && textLayers(names) >= 1 {
			// An escape begun in the text before the value that absorbs
			// its first bytes is seen through when the value is one layer
			// deep (matchSwallowed), not under a further encoding.
			for i := bytes.LastIndexAny(before, `%\&`); i >= 0 && i >= len(before)-12; i = bytes.LastIndexAny(before, `%\&`) {
				before = before[:i]
			}
		}
		text := string(before) + enc + string(after)
		out := s.String(text)
		if strings.Contains(out, enc) {
			t.Fatalf("%q encoded by %v survived: %q", v, names, out)
		}
		if rest := strings.ReplaceAll(out, redactedMark, "\x00"); s.Contains(rest) {
			t.Fatalf("%q encoded by %v: the output still holds it: %q", v, names, out)
		}
		clean := string(before) + string(after)
		if got := s.String(clean); got != clean && len(clean) <= 40 && !referenceHolds(clean, v) {
			t.Fatalf("%q: text without the value changed: %q -> %q", v, clean, got)
		}
	})
}

// referenceHolds is a slow oracle written with the standard library's
// decoders: whether some substring of text, decoded once or twice by them,
// holds v (ASCII case-insensitively, '+' as ' ').
func referenceHolds(text, v string) bool {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "+", " ") }
	want := norm(v)
	// Every substring decoded once, then the whole result decoded once
	// more: O(n^2) decodings, so the fuzz target keeps text short.
	for i := 0; i < len(text); i++ {
		for j := i + 1; j <= len(text); j++ {
			for _, d := range referenceDecoders(text[i:j]) {
				if len(d) < len(v) {
					continue
				}
				if strings.Contains(norm(d), want) {
					return true
				}
				for _, d2 := range referenceDecoders(d) {
					if strings.Contains(norm(d2), want) {
						return true
					}
				}
			}
		}
	}
	return strings.Contains(norm(text), want)
}

func referenceDecoders(s string) []string {
	var out []string
	add := func(b []byte, err error) {
		if err == nil {
			out = append(out, string(b))
		}
	}
	if u, err := unescapeAll(s); err == nil {
		out = append(out, u)
	}
	add(hex.DecodeString(s))
	bare := strings.NewReplacer("\r", "", "\n", "").Replace(s)
	for _, lead := range []string{"", "A", "AA", "AAA"} {
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			t := lead + strings.TrimRight(bare, "=")
			if len(t)%4 == 1 {
				t = t[:len(t)-1]
			}
			b, err := enc.DecodeString(t)
			if err == nil {
				out = append(out, string(b[len(lead)*6/8:]))
			}
		}
	}
	for n := 0; n < 8; n++ {
		t := strings.Repeat("A", n) + strings.ToUpper(strings.TrimRight(bare, "="))
		t = t[:len(t)/8*8]
		if b, err := base32.StdEncoding.DecodeString(t); err == nil && len(b) > n*5/8 {
			out = append(out, string(b[n*5/8:]))
		}
	}
	return out
}

// unescapeAll decodes percent escapes, JSON \u escapes and HTML numeric
// references in one pass, with the standard library's parsers.
func unescapeAll(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '%' && i+2 < len(s):
			if n, err := hex.DecodeString(s[i+1 : i+3]); err == nil {
				b.Write(n)
				i += 2
				continue
			}
		case s[i] == '\\' && i+5 < len(s) && s[i+1] == 'u':
			var r rune
			if _, err := fmt.Sscanf(s[i+2:i+6], "%04x", &r); err == nil {
				b.WriteRune(r)
				i += 5
				continue
			}
		case s[i] == '&' && i+2 < len(s) && s[i+1] == '#':
			end := strings.IndexByte(s[i:], ';')
			var r rune
			if end > 2 {
				num := s[i+2 : i+end]
				format := "%d"
				if num[0] == 'x' || num[0] == 'X' {
					num, format = num[1:], "%x"
				}
				if _, err := fmt.Sscanf(num, format, &r); err == nil {
					b.WriteRune(r)
					i += end
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String(), nil
}
