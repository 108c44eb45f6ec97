package injector

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"credvault/internal/credvault"
)

// TestScrubberInflatesRawStreams: a gzip or zlib stream sent as raw bytes
// (an application/gzip body, or zlib inside a gzip body) and a stream
// compressed twice inside base64 are decompressed like base64 of gzip is:
// the value inside comes back redacted.
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

// TestClientScrubsRawGzipBody: an upstream that answers an application/gzip
// body (no Content-Encoding) holding the value gets it redacted through
// Client, and gzip holding zlib under one Content-Encoding too.
func TestClientScrubsRawGzipBody(t *testing.T) {
	v := testValue
	for name, tc := range map[string]struct {
		coding string
		body   []byte
	}{
		"application/gzip":    {"", gzipOf([]byte(`{"echo":"` + v + `"}`))},
		"zlib in gzip coding": {"gzip", gzipOf(zlibOf([]byte(`{"echo":"` + v + `"}`)))},
	} {
		t.Run(name, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/gzip")
				if tc.coding != "" {
					w.Header().Set("Content-Encoding", tc.coding)
				}
				w.Write(tc.body)
			})
			client := testClient(t, ClientOptions{})
			resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/", nil), credential("bearer", "", "", up.host()), credvault.NewSecret(v))
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, resp.Body); !strings.Contains(got, redactedMark) {
				t.Errorf("the value passed unredacted (%d bytes)", len(got))
			}
		})
	}
}
