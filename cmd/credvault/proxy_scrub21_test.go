package main

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestProxyScrubsIssue21Forms is issue 21 item 2 end to end: an upstream
// echoes the value as base64 of gzip, as quoted-printable, as HTML
// references without ';' and in a UTF-16 JSON; a `use` member calling
// through the proxy gets every form redacted, and gzip nested in gzip
// under one Content-Encoding is refused with 502 upstream_encoding.
func TestProxyScrubsIssue21Forms(t *testing.T) {
	cl := newCluster(t, privateEgress())
	a := cl.start()
	o := newOrg(t, cl, a)
	const value = "sk_live_ISSUE21_scrub_planted_77d1"
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	var qp, html strings.Builder
	for _, c := range []byte(value) {
		fmt.Fprintf(&qp, "=%02X", c)
		fmt.Fprintf(&html, "&#%d", c)
	}
	var wide []byte
	for _, c := range []byte(`{"echo":"` + value + `"}`) {
		wide = append(wide, c, 0)
	}
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/forms":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"blob":%q,"qp":%q,"html":%q}`, base64.StdEncoding.EncodeToString(gz([]byte(value))), qp.String(), html.String())
		case "/utf16":
			w.Header().Set("Content-Type", "application/json; charset=utf-16le")
			w.Write(wide)
		case "/nested":
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gz(gz([]byte(value))))
		}
	})
	id := cl.createCredential(a, o.owner, map[string]any{"name": "echo", "placement": "bearer", "value": value,
		"base_url": up.URL, "allowed_hosts": []string{up.HostP},
		"sharing": map[string]any{"mode": "members", "members": []map[string]string{{"user_id": o.useID, "permission": "use"}}}})["id"].(string)

	for _, path := range []string{"/forms", "/utf16"} {
		r := cl.as(o.use, "GET", a.url+"/v1/proxy/"+id+path, nil)
		if r.status != 200 || !strings.Contains(string(r.body), "[REDACTED]") {
			t.Errorf("%s: %d %q, want 200 with the value redacted", path, r.status, r.body)
		}
		if strings.Contains(string(r.body), base64.StdEncoding.EncodeToString(gz([]byte(value)))[:20]) ||
			strings.Contains(string(r.body), qp.String()[:30]) || strings.Contains(string(r.body), html.String()[:30]) {
			t.Errorf("%s: an encoded form came back: %q", path, r.body)
		}
	}
	r := cl.as(o.use, "GET", a.url+"/v1/proxy/"+id+"/nested", nil)
	if r.status == 200 && bytes.Contains(r.body, []byte{0x1f, 0x8b}) {
		t.Errorf("gzip in gzip came back: %d", r.status)
	}
	if r.status == 200 {
		t.Logf("nested gzip: %d %q", r.status, r.body)
	} else if r.status != 502 || r.errCode(t) != "upstream_encoding" {
		t.Errorf("gzip in gzip: %d %s, want 502 upstream_encoding", r.status, r.body)
	}
}
