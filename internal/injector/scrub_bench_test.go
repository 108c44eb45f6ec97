package injector

import (
	"encoding/base64"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"credvault/internal/credvault"
)

// scrubInputs are 16 KiB texts without the value: what a JSON API sends,
// JSON full of escapes, one long base64 run (the costliest ordinary text:
// every alignment is decoded), text crafted to make views (escapes of
// escapes over hex over base64), which the budget bounds, English prose
// (words between spaces) and a UTF-16 JSON.
func scrubInputs() map[string][]byte {
	rng := rand.New(rand.NewPCG(7, 7))
	raw := make([]byte, 12<<10)
	for i := range raw {
		raw[i] = byte(rng.IntN(256))
	}
	var js strings.Builder
	for js.Len() < 16<<10 {
		js.WriteString(`{"id":"ch_3MmlLrLkdIwHu7ix0snN0B15","object":"charge","amount":1099,"currency":"usd","paid":true},`)
	}
	var esc strings.Builder
	for esc.Len() < 16<<10 {
		esc.WriteString(`"msg":"line one\nline two \u00e9\u00e8 \"quoted\" \/path &amp; 100%25 done",`)
	}
	var prose strings.Builder
	words := strings.Fields("the card was declined because the issuing bank refused this charge please try again with another card or contact support for help with your account settings and limits")
	for i := 0; prose.Len() < 16<<10; i++ {
		prose.WriteString(words[rng.IntN(len(words))] + " ")
	}
	var wide []byte
	for _, c := range js.String()[:8<<10] {
		wide = append(wide, byte(c), 0)
	}
	b64 := base64.StdEncoding.EncodeToString(raw)
	nested := escapeEach(hex.EncodeToString([]byte(b64[:4<<10])), "%%%02X", every2)
	nested = escapeEach(nested, `\u%04x`, every2)
	return map[string][]byte{
		"json":         []byte(js.String()[:16<<10]),
		"json-escapes": []byte(esc.String()[:16<<10]),
		"base64":       []byte(b64[:16<<10]),
		"nested":       []byte(nested[:16<<10]),
		"prose":        []byte(prose.String()[:16<<10]),
		"utf-16":       wide,
	}
}

// BenchmarkScrubber measures the cost per byte of scrubbing (MB/s) and
// reports view-bytes/byte: how many bytes of decoded views were built per
// input byte, which viewBudget caps at 64 (then the text is treated as
// holding the value).
func BenchmarkScrubber(b *testing.B) {
	s := NewScrubber(credvault.NewSecret(testValue))
	for name, in := range scrubInputs() {
		b.Run(name, func(b *testing.B) {
			sc := getScratch()
			s.find(sc, in)
			views, over := float64(sc.used)/float64(len(in)), sc.over
			putScratch(sc)
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				sc := getScratch()
				s.find(sc, in)
				putScratch(sc)
			}
			b.ReportMetric(views, "view-bytes/byte")
			if over {
				b.ReportMetric(1, "over-budget")
			}
		})
	}
	b.Run("reader-json", func(b *testing.B) {
		in := scrubInputs()["json"]
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			r := s.Reader(io.NopCloser(strings.NewReader(string(in))))
			io.Copy(io.Discard, r)
			r.Close()
		}
	})
}
