package injector

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/base32"
	"encoding/base64"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"unicode/utf16"

	"credvault/internal/credvault"
)

func gzipOf(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func zlibOf(b []byte) []byte {
	var buf bytes.Buffer
	zw := zlib.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// utf16Of encodes s as UTF-16, little- or big-endian.
func utf16Of(s string, little bool) []byte {
	var out []byte
	for _, u := range utf16.Encode([]rune(s)) {
		if little {
			out = append(out, byte(u), byte(u>>8))
		} else {
			out = append(out, byte(u>>8), byte(u))
		}
	}
	return out
}

// groups splits s into groups of n characters joined by sep.
func groups(s string, n int, sep string) string {
	var parts []string
	for len(s) > n {
		parts = append(parts, s[:n])
		s = s[n:]
	}
	return strings.Join(append(parts, s), sep)
}

// issue21Forms are the forms of v that issue 21 item 2 found passing
// through the proxy unredacted.
func issue21Forms(v string) map[string]string {
	fourPercent := escapeEach(v, "%%%02X", all)
	for range 3 {
		fourPercent = url.QueryEscape(fourPercent)
	}
	b64 := base64.StdEncoding.EncodeToString([]byte(v))
	return map[string]string{
		"base64 of gzip":               base64.StdEncoding.EncodeToString(gzipOf([]byte(`{"token":"` + v + `"}`))),
		"base64url of zlib":            base64.RawURLEncoding.EncodeToString(zlibOf([]byte("key=" + v))),
		"quoted-printable every byte":  escapeEach(v, "=%02X", all),
		"quoted-printable soft breaks": groups(escapeEach(v, "=%02X", all), 75, "=\r\n"),
		"html decimal without ;":       escapeEach(v, "&#%d", all),
		"html hex without ;":           escapeEach(v, "&#x%X", all),
		"base64 in space groups":       groups(b64, 4, " "),
		"base64 in tab groups":         groups(b64, 8, "\t"),
		"base32hex":                    base32.HexEncoding.EncodeToString([]byte(v)),
		"base32hex lower raw":          strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte(v))),
		"four layers of percent":       fourPercent,
	}
}

// TestScrubberFindsIssue21Forms is issue 21 item 2: each form, inside a
// JSON text, comes back redacted with the text around it unchanged.
func TestScrubberFindsIssue21Forms(t *testing.T) {
	for _, v := range viewValues {
		s := NewScrubber(credvault.NewSecret(v))
		forms := issue21Forms(v)
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
		// Whole UTF-16 texts (a charset=utf-16 JSON), either byte order.
		for _, little := range []bool{true, false} {
			in := utf16Of(`{"error":"bad key `+v+`", "n": 1}`, little)
			got := s.String(string(in))
			if bytes.Contains([]byte(got), utf16Of(v, little)[1:len(utf16Of(v, little))-1]) || !strings.Contains(got, redactedMark) {
				t.Errorf("%.10s… utf-16 little=%v: got %q", v, little, got)
			}
		}
		// Text without the value is left alone.
		for _, clean := range []string{
			`{"error":"bad key", "n": 1, "q": "a=1&b=2 =3D ok"}`, "one two three four five six seven eight nine ten",
			base64.StdEncoding.EncodeToString(gzipOf([]byte("nothing secret here at all"))),
			string(utf16Of("nothing secret here", true)), "QUJD REVG R0hJ SktM", "&#65&#66&#67",
		} {
			if got := s.String(clean); got != clean {
				t.Errorf("%.10s…: text without the value changed: %q -> %q", v, clean, got)
			}
		}
	}
}

// TestClientScrubsIssue21Bodies sends the forms through Client as response
// bodies: a UTF-16 JSON, a gzip body holding base64 of gzip, and gzip
// nested in gzip under one Content-Encoding, which is refused with 502
// upstream_encoding as other nested encodings are.
func TestClientScrubsIssue21Bodies(t *testing.T) {
	v := testValue
	for name, tc := range map[string]struct {
		ctype, coding string
		body          []byte
	}{
		"utf-16le json":           {"application/json; charset=utf-16le", "", utf16Of(`{"echo":"`+v+`"}`, true)},
		"utf-16be json":           {"application/json; charset=utf-16", "", append([]byte{0xfe, 0xff}, utf16Of(`{"echo":"`+v+`"}`, false)...)},
		"gzip of base64 of gzip":  {"application/json", "gzip", gzipOf([]byte(`{"blob":"` + base64.StdEncoding.EncodeToString(gzipOf([]byte(v))) + `"}`))},
		"base64 of zlib in plain": {"text/plain", "", []byte(base64.StdEncoding.EncodeToString(zlibOf([]byte(v))))},
		// A raw stream: an application/gzip body, zlib inside a gzip body.
		"application/gzip":    {"application/gzip", "", gzipOf([]byte(`{"echo":"` + v + `"}`))},
		"zlib in gzip coding": {"application/octet-stream", "gzip", gzipOf(zlibOf([]byte(`{"echo":"` + v + `"}`)))},
	} {
		t.Run(name, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ctype)
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
			got := readAll(t, resp.Body)
			if !strings.Contains(got, redactedMark) {
				t.Errorf("got %q, want the value redacted", got)
			}
		})
	}

	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(gzipOf(gzipOf([]byte(`{"echo":"` + v + `"}`))))
	})
	client := testClient(t, ClientOptions{})
	resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/", nil), credential("bearer", "", "", up.host()), credvault.NewSecret(v))
	if err == nil {
		var got string
		got, err = readAllErr(resp.Body)
		if err == nil {
			t.Fatalf("gzip in gzip under one Content-Encoding: got %q, want upstream_encoding", got)
		}
	}
	wantError(t, err, credvault.EUNAVAILABLE, "upstream_encoding", v)
}

// readAllErr reads r to its end and closes it, returning the read error.
func readAllErr(r interface {
	Read([]byte) (int, error)
	Close() error
}) (string, error) {
	defer r.Close()
	var buf bytes.Buffer
	_, err := buf.ReadFrom(r)
	return buf.String(), err
}

// TestScrubberInflateStaysInBudget: base64 of a gzip bomb (a few KiB that
// inflate to 4 MiB) is not inflated past the view budget: the text counts
// as holding the value, as other over-budget texts do, and the search
// stops early.
func TestScrubberInflateStaysInBudget(t *testing.T) {
	bomb := base64.StdEncoding.EncodeToString(gzipOf(make([]byte, 4<<20)))
	s := NewScrubber(credvault.NewSecret(testValue))
	sc := getScratch()
	defer putScratch(sc)
	s.find(sc, []byte(`{"blob":"`+bomb+`"}`))
	if !sc.over {
		t.Fatalf("a gzip bomb was read within budget (%d view bytes for %d input bytes)", sc.used, len(bomb))
	}
	if sc.used > sc.limit {
		t.Fatalf("%d view bytes scanned, over the limit of %d", sc.used, sc.limit)
	}
	if got := s.String(`{"blob":"` + bomb + `"}`); got != redactedMark {
		t.Fatalf("got %.40q…, want the whole text redacted", got)
	}
}

// TestScrubberReaderFindsIssue21Forms streams each form through Reader in
// random small reads: every one fits the held-back window, so the stream
// is redacted as String redacts the whole text.
func TestScrubberReaderFindsIssue21Forms(t *testing.T) {
	s := NewScrubber(credvault.NewSecret(testValue))
	rng := rand.New(rand.NewPCG(21, 2))
	forms := issue21Forms(testValue)
	forms["utf-16le in ASCII"] = string(utf16Of(`{"echo":"`+testValue+`"}`, true))
	forms["utf-16be in ASCII"] = string(utf16Of(`{"echo":"`+testValue+`"}`, false))
	for name, form := range forms {
		in := strings.Repeat("filler text, ", 40) + form + strings.Repeat(" more filler", 40)
		r := s.Reader(io.NopCloser(&chunky{data: []byte(in), rng: rng, max: 97}))
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := s.String(in); string(got) != want || !strings.Contains(want, redactedMark) {
			t.Errorf("%s: streamed %q, want %q", name, got, want)
		}
	}
}
