package injector

import (
	"bytes"
	"compress/gzip"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"credvault/internal/credvault"
)

// The encoders below are written for the tests, independently of the
// Scrubber: each is a way an upstream has been seen to write a value back.

// pyQuote is Python's urllib.parse.quote(v) (safe="/"): '+' becomes %2B,
// '/' stays.
func pyQuote(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if isAlnum(c) || strings.IndexByte("_.-~/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// escapeEach writes the bytes of v that pick selects with format (a
// fmt verb taking the byte), the others as they are.
func escapeEach(v, format string, pick func(i int, c byte) bool) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if pick(i, v[i]) {
			fmt.Fprintf(&b, format, v[i])
		} else {
			b.WriteByte(v[i])
		}
	}
	return b.String()
}

func all(int, byte) bool        { return true }
func every2(i int, _ byte) bool { return i%2 == 0 }

// mime is base64 wrapped at width characters with CRLF, as MIME writes it.
func mime(b []byte, width int) string {
	e := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(e) > width {
		out.WriteString(e[:width] + "\r\n")
		e = e[width:]
	}
	out.WriteString(e)
	return out.String()
}

// viewForms are the forms of v that issue 10 found passing through.
func viewForms(v string) map[string]string {
	return map[string]string{
		"python quote":        pyQuote(v),
		"underscore as %5F":   strings.ReplaceAll(v, "_", "%5F"),
		"every byte %XX":      escapeEach(v, "%%%02X", all),
		"every byte %xx":      escapeEach(v, "%%%02x", all),
		"hex upper":           strings.ToUpper(hex.EncodeToString([]byte(v))),
		"hex lower":           hex.EncodeToString([]byte(v)),
		"json \\u all":        escapeEach(v, `\u%04x`, all),
		"json \\u some":       escapeEach(v, `\u%04X`, every2),
		"html decimal":        escapeEach(v, "&#%d;", all),
		"html hex some":       escapeEach(v, "&#x%x;", every2),
		"html named":          strings.NewReplacer("_", "&lowbar;", "-", "&hyphen;", "/", "&sol;", "+", "&plus;").Replace(v),
		"mime base64":         mime([]byte(v), 8),
		"mime basic auth":     mime([]byte("user:"+v), 12),
		"base32":              base32.StdEncoding.EncodeToString([]byte(v)),
		"base32 lower raw":    strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte(v))),
		"upper case":          strings.ToUpper(v),
		"lower case":          strings.ToLower(v),
		"json of percent":     escapeEach(escapeEach(v, "%%%02X", all), `\u%04x`, every2),
		"percent of base64":   strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(base64.StdEncoding.EncodeToString([]byte(v))),
		"hex of base64":       hex.EncodeToString([]byte(base64.StdEncoding.EncodeToString([]byte(v)))),
		"html of json \\u":    strings.ReplaceAll(escapeEach(v, `\u%04x`, every2), `\`, "&#92;"),
		"base64 in json mime": strings.ReplaceAll(mime([]byte(v), 6), "\r\n", `\r\n`),
	}
}

var viewValues = []string{testValue, "AKIAIOSFODNN7EXAMPLE+wJalrXUtnFEMI/K7MDENG/bPxRfiCY", "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"}

// TestScrubberFindsEncodedForms is issue 10 case 1: every form reaches
// String with text around it and must come back redacted, the text around
// it unchanged.
func TestScrubberFindsEncodedForms(t *testing.T) {
	for _, v := range viewValues {
		s := NewScrubber(credvault.NewSecret(v))
		forms := viewForms(v)
		names := make([]string, 0, len(forms))
		for name := range forms {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			in := `{"error":"bad key ` + forms[name] + `", "n": 1}`
			got := s.String(in)
			if strings.Contains(got, forms[name]) || !strings.Contains(got, redactedMark) ||
				!strings.HasPrefix(got, `{"error":"bad key `) || !strings.HasSuffix(got, `", "n": 1}`) {
				t.Errorf("%.10s… %s: got %q", v, name, got)
			}
		}
		for _, clean := range []string{`{"error":"bad key", "n": 1}`, "plain text with words and 0123456789abcdef0123", forms["mime base64"][:8]} {
			if got := s.String(clean); got != clean {
				t.Errorf("%.10s…: text without the value changed: %q -> %q", v, clean, got)
			}
		}
	}
}

// TestScrubberHeaderNames is issue 10 case 4: a header whose name holds
// the value (as Go canonicalises it: case changed) is deleted.
func TestScrubberHeaderNames(t *testing.T) {
	hexValue := "0123456789ABCDEF0123456789ABCDEF"
	for _, tc := range []struct{ value, name string }{
		{hexValue, "X-" + hexValue},
		{testValue, "X-" + strings.ToUpper(hex.EncodeToString([]byte(testValue)))},
		{testValue, "X-" + base64.RawURLEncoding.EncodeToString([]byte(testValue))},
		{testValue, "X-K-" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte(testValue))},
	} {
		up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header()[tc.name] = []string{"1"} // sent as written
			w.Header().Set("X-Other", "kept")
		})
		client := testClient(t, ClientOptions{})
		resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/", nil), credential("bearer", "", "", up.host()), credvault.NewSecret(tc.value))
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp.Body)
		for k := range resp.Header {
			if strings.EqualFold(k, tc.name) {
				t.Errorf("header %q came back as %q", tc.name, k)
			}
		}
		if resp.Header.Get("X-Other") != "kept" {
			t.Errorf("other headers lost: %v", resp.Header)
		}
	}
}

// TestClientRefusesAmbiguousContentEncoding is issue 10 case 2: any
// Content-Encoding list but none, identity or one gzip is a 502
// upstream_encoding, never a body passed on undecoded.
func TestClientRefusesAmbiguousContentEncoding(t *testing.T) {
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	body := []byte(`{"echo":"` + testValue + `"}`)
	for name, tc := range map[string]struct {
		lines []string
		body  []byte
	}{
		"identity then gzip": {[]string{"identity", "gzip"}, gz(body)},
		"gzip twice":         {[]string{"gzip", "gzip"}, gz(gz(body))},
		"nested in one line": {[]string{"gzip, gzip"}, gz(gz(body))},
		"unknown":            {[]string{"deflate"}, body},
		"unknown after gzip": {[]string{"gzip", "br"}, gz(body)},
	} {
		t.Run(name, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header()["Content-Encoding"] = tc.lines
				w.Write(tc.body)
			})
			client := testClient(t, ClientOptions{})
			resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/", nil), credential("bearer", "", "", up.host()), credvault.NewSecret(testValue))
			if err == nil {
				readAll(t, resp.Body)
				t.Fatalf("got %d with Content-Encoding %q, want upstream_encoding", resp.StatusCode, resp.Header.Values("Content-Encoding"))
			}
			wantError(t, err, credvault.EUNAVAILABLE, "upstream_encoding", testValue)
		})
	}
	// A lone identity, and one gzip line, are decoded and scrubbed.
	for _, lines := range [][]string{{"identity"}, {"GZIP"}} {
		up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Encoding"] = lines
			if lines[0] == "identity" {
				w.Write(body)
			} else {
				w.Write(gz(body))
			}
		})
		client := testClient(t, ClientOptions{})
		resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/", nil), credential("bearer", "", "", up.host()), credvault.NewSecret(testValue))
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp.Body); got != `{"echo":"[REDACTED]"}` {
			t.Errorf("%v: got %q", lines, got)
		}
	}
}

// TestRedirectHoldingEncodedValueNotFollowed is the redirect half of issue
// 10 case 1: a Location that carries the value in any view the scrubber
// reads is not followed to another host.
func TestRedirectHoldingEncodedValueNotFollowed(t *testing.T) {
	for name, form := range map[string]string{
		"hex":          hex.EncodeToString([]byte(testValue)),
		"base32":       base32.StdEncoding.EncodeToString([]byte(testValue)),
		"python quote": pyQuote(testValue),
		"every %XX":    escapeEach(testValue, "%%%02X", all),
		"upper case":   strings.ToUpper(testValue),
	} {
		t.Run(name, func(t *testing.T) {
			b := newUpstream(t, nil)
			a := newUpstream(t, redirector(http.StatusFound, func(r *http.Request) string {
				return b.url() + "/landing?token=" + form
			}))
			client := testClient(t, ClientOptions{})
			resp, err := client.Do(newRequest(t, http.MethodGet, a.url()+"/start", nil), credential("header", "X-Api-Key", "", a.host(), b.host()), credvault.NewSecret(testValue))
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp.Body)
			if n := len(b.requests()); n != 0 || resp.StatusCode != http.StatusFound {
				t.Fatalf("redirect followed: status %d, second host got %d requests", resp.StatusCode, n)
			}
			if loc := resp.Header.Get("Location"); strings.Contains(loc, form) {
				t.Fatalf("Location handed back unscrubbed: %q", loc)
			}
		})
	}
}

// TestStreamingReleaseTimeIndependentOfPrefix is issue 10 case 3: an
// upstream reflects a guess, pauses, then ends. How long the guess takes
// to reach the caller must not depend on whether it is a prefix of the
// value. The two release times are compared as a ratio measured in one
// run (before the fix the correct prefix took the whole pause and the
// wrong one none of it).
func TestStreamingReleaseTimeIndependentOfPrefix(t *testing.T) {
	const pause = 600 * time.Millisecond
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "echo: "+r.URL.Query().Get("guess"))
		w.(http.Flusher).Flush()
		time.Sleep(pause)
		io.WriteString(w, " end")
	})
	client := testClient(t, ClientOptions{})
	firstByte := func(guess string) time.Duration {
		start := time.Now()
		resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/?guess="+guess, nil), credential("header", "X-Api-Key", "", up.host()), credvault.NewSecret(testValue))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := resp.Body.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		io.Copy(io.Discard, resp.Body)
		return d
	}
	right, wrong := testValue[:12], testValue[:11]+"!" // same length, wrong last character
	var tr, tw []time.Duration
	for range 2 {
		tr = append(tr, firstByte(right))
		tw = append(tw, firstByte(wrong))
	}
	r, w := min(tr[0], tr[1]), min(tw[0], tw[1])
	if ratio := float64(max(r, w)) / float64(min(r, w)); ratio > 1.5 {
		t.Fatalf("first byte after %v for a correct prefix, %v for a wrong one (ratio %.1f): the release time tells them apart", r, w, ratio)
	}
}
