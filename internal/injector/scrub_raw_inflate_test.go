package injector

import (
	"encoding/base64"
	"strings"
	"testing"

	"credvault/internal/credvault"
)

// TestScrubberInflatesRawStreams: a gzip or zlib stream sent as raw bytes
// (an application/gzip body, or zlib inside a gzip body) and a stream
// compressed twice inside base64 are decompressed like base64 of gzip is:
// the value inside comes back redacted. TestClientScrubsIssue21Bodies
// sends the raw forms through Client.
func TestScrubberInflatesRawStreams(t *testing.T) {
	for _, v := range viewValues {
		s := NewScrubber(credvault.NewSecret(v))
		inner := []byte(`{"token":"` + v + `"}`)
		for name, form := range map[string]string{
			"raw gzip":                string(gzipOf(inner)),
			"raw zlib":                string(zlibOf(inner)),
			"raw gzip after text":     "archive follows: " + string(gzipOf(inner)),
			"base64 of gzip of gzip":  base64.StdEncoding.EncodeToString(gzipOf(gzipOf(inner))),
			"base64 of zlib of gzip":  base64.StdEncoding.EncodeToString(zlibOf(gzipOf(inner))),
			"raw gzip of base64 of v": string(gzipOf([]byte(base64.StdEncoding.EncodeToString([]byte(v))))),
		} {
			if got := s.String(form); !strings.Contains(got, redactedMark) {
				t.Errorf("%.10s… %s: the value passed unredacted (%d bytes out)", v, name, len(got))
			}
		}
		for _, clean := range []string{string(gzipOf([]byte("nothing secret here at all"))), "x^ plain text with x^ in it"} {
			if got := s.String(clean); got != clean {
				t.Errorf("%.10s…: text without the value changed: %q -> %q", v, clean, got)
			}
		}
	}
}
