package httpapi

import (
	"bytes"
	"html/template"
	"net/http"
	"strings"
)

// plainPage is the self-contained HTML page the HTTP layer itself shows a
// person: the end of an OAuth authorization started through the API, and
// the refusal of a console request the framing guard answers before any
// route runs (a request line or head too long).
var plainPage = template.Must(template.New("plain").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} · credvault</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem">
<h1>{{.Title}}</h1><p>{{.Message}}</p>{{if .Detail}}<p><code>{{.Detail}}</code></p>{{end}}
</body></html>`))

// pageCSP lets plainPage use its inline style and nothing else.
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'"

// pageHeaders are the header fields of a refusal page, one CRLF-separated
// block (framingConn.Close adds length, caching and Connection).
const pageHeaders = "Content-Type: text/html; charset=utf-8\r\nContent-Security-Policy: " + pageCSP +
	"\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer"

// headRefusalPage is the HTML page of a refused request for a page: a
// title for the status (414, 431 or 400) and what to do, the guard's
// message and the request id. It never shows the request's bytes.
func headRefusalPage(status int, r *headRefusal, requestID string) []byte {
	title, msg := "Request refused", "Your browser sent a request credvault cannot read."
	switch status {
	case http.StatusRequestURITooLong:
		title, msg = "Address too long", "The address of this page is longer than credvault accepts (4 KiB). Go back, or open the console's start page at /."
	case http.StatusRequestHeaderFieldsTooLarge:
		title, msg = "Request too large", "Your browser sent more header data than credvault accepts (8 KiB), often too many or too large cookies for this site. Clear this site's cookies, then sign in again."
	}
	var b bytes.Buffer
	_ = plainPage.Execute(&b, map[string]string{"Title": title, "Message": msg, "Detail": r.message + " (request " + requestID + ")"})
	return b.Bytes()
}

// pagePaths are the first path segments of the routes that answer HTML
// ("credentials" for /credentials/:id; "" for / alone).
type pagePaths map[string]bool

func (p pagePaths) add(route string) { p[firstSegment(route)] = true }

// serves reports whether the request head (or its start: the request line
// may be cut off) asks for a path in p. Only origin-form targets
// ("/credentials?q=…") count; anything else is the API's.
func (p pagePaths) serves(head []byte) bool {
	if len(p) == 0 {
		return false
	}
	_, rest, ok := bytes.Cut(head, []byte(" "))
	if !ok || len(rest) == 0 || rest[0] != '/' {
		return false
	}
	if i := bytes.IndexAny(rest, " ?#\r\n"); i >= 0 {
		rest = rest[:i]
	}
	return p[firstSegment(string(rest))]
}

// firstSegment is the path's first segment: "api-keys" of /api-keys/:id.
func firstSegment(path string) string {
	seg, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return seg
}
