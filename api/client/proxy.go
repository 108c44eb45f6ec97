package client

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ProxyTransport is an http.RoundTripper that sends each request through
// credvault's pass-through proxy, ANY /v1/proxy/{credential_id}/{path}:
// the request's escaped path goes after the credential id exactly as it
// was (slashes and percent-encodings intact), with its query, method, body
// and headers; credvault attaches the credential and calls the
// credential's base_url (the request's own scheme and host are then
// ignored) or, for a credential without base_url, the request's absolute
// URL, sent in X-Credvault-Target. The caller never holds the credential.
//
//	hc := &http.Client{Transport: &client.ProxyTransport{Credvault: cv, APIKey: key, CredentialID: id}}
//	resp, err := hc.Get("https://api.stripe.com/v1/charges?limit=3")
//
// Answers are the upstream's (scrubbed); credvault's own refusals (401,
// 403 egress_denied, 404, 502, 504) come back as responses too: use
// CheckResponse to tell them apart by their JSON error body.
type ProxyTransport struct {
	// Credvault is credvault's base URL (http://127.0.0.1:8080).
	Credvault string
	// APIKey is the caller's credvault key (scope credentials:use).
	APIKey string
	// CredentialID is the credential to attach.
	CredentialID string
	// Headers are added to every request (for example
	// X-Credvault-Workflow-Id, X-Credvault-Acting-User).
	Headers http.Header
	// Next sends the rewritten request; http.DefaultTransport when nil.
	Next http.RoundTripper
}

// RoundTrip rewrites req onto credvault and sends it with Next. It does
// not modify req (RoundTripper contract). Errors: a malformed Credvault
// URL or an empty CredentialID, and whatever Next returns.
func (t *ProxyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base, err := url.Parse(t.Credvault)
	if err != nil || base.Host == "" {
		closeBody(req)
		return nil, fmt.Errorf("credvault URL %q is not absolute", t.Credvault)
	}
	if t.CredentialID == "" || strings.ContainsAny(t.CredentialID, "/?#%") {
		closeBody(req)
		return nil, errors.New("ProxyTransport needs a credential id")
	}
	out := req.Clone(req.Context())
	u := *base
	u.RawQuery, u.Fragment = req.URL.RawQuery, ""
	rest := strings.TrimPrefix(req.URL.EscapedPath(), "/")
	if err := setRawPath(&u, strings.TrimSuffix(base.EscapedPath(), "/")+"/v1/proxy/"+t.CredentialID+"/"+rest); err != nil {
		closeBody(req)
		return nil, err
	}
	out.URL, out.Host = &u, ""
	if req.URL.IsAbs() {
		target := *req.URL
		target.User = nil
		out.Header.Set("X-Credvault-Target", target.String())
	}
	for k, vs := range t.Headers {
		for _, v := range vs {
			out.Header.Add(k, v)
		}
	}
	out.Header.Set("X-API-Key", t.APIKey)
	next := t.Next
	if next == nil {
		next = http.DefaultTransport
	}
	return next.RoundTrip(out)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
	}
}
