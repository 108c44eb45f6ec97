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

// setRawPath makes u's path on the wire exactly raw (which must be a
// valid escaped path).
func setRawPath(u *url.URL, raw string) error {
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
