package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// New returns the generated client for the credvault at baseURL (for
// example http://127.0.0.1:8080, optionally with a path prefix), sending
// apiKey in X-API-Key on every call and keeping proxy paths intact (see
// ProxyPathIntact). opts are the generator's own options (WithHTTPClient,
// WithRequestEditorFn, ...) and come after these. It fails only when
// baseURL is not an absolute http(s) URL.
func New(baseURL, apiKey string, opts ...ClientOption) (*ClientWithResponses, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("credvault URL %q must be an absolute http(s) URL", baseURL)
	}
	all := []ClientOption{
		WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			if apiKey != "" {
				req.Header.Set("X-API-Key", apiKey)
			}
			return nil
		}),
		WithRequestEditorFn(ProxyPathIntact(u.Path)),
	}
	return NewClientWithResponses(baseURL, append(all, opts...)...)
}

// ProxyPathIntact returns a request editor that undoes what a generator
// does to the proxy's {path} parameter: oapi-codegen (like most
// generators) percent-encodes a path parameter as one segment, so
// "v1/charges" would leave as "v1%2Fcharges" and reach the upstream as
// one segment. api/openapi.yaml declares the parameter allowReserved (its
// value is a raw path, sent as it is); this editor applies that to the
// requests under basePath + /v1/proxy/{id}/: the parameter's encoded
// value is decoded once, which gives back exactly the raw path the caller
// passed, percent-encodings included ("group%2Fproject" stays so).
func ProxyPathIntact(basePath string) RequestEditorFn {
	prefix := strings.TrimSuffix(basePath, "/") + "/v1/proxy/"
	return func(_ context.Context, req *http.Request) error {
		escaped := req.URL.EscapedPath()
		if !strings.HasPrefix(escaped, prefix) {
			return nil
		}
		id, param, ok := strings.Cut(escaped[len(prefix):], "/")
		if !ok {
			return nil
		}
		raw, err := url.PathUnescape(param)
		if err != nil {
			return fmt.Errorf("proxy path %q: %w", param, err)
		}
		return setRawPath(req.URL, prefix+id+"/"+raw)
	}
}

// setRawPath makes u's path on the wire raw, percent-encoding only what
// may not appear in a path (RFC 6570 reserved expansion: existing %XX
// triplets, "/" and the other reserved characters stay as they are).
func setRawPath(u *url.URL, raw string) error {
	raw = reservedEscape(raw)
	p, err := url.PathUnescape(raw)
	if err != nil {
		return fmt.Errorf("path %q is not a valid escaped path: %w", raw, err)
	}
	u.Path, u.RawPath = p, raw
	if u.EscapedPath() != raw {
		return fmt.Errorf("path %q cannot be sent as it is", raw)
	}
	return nil
}

// reservedEscape percent-encodes the bytes of s that RFC 3986 allows in no
// path (space, quotes, non-ASCII, a "%" not starting a triplet, ...),
// leaving unreserved and reserved characters and valid triplets alone.
// "?" and "#" are encoded too: in a path they would end it.
func reservedEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(c)
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
