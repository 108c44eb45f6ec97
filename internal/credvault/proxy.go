package credvault

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// Outbound is the injector as the domain sees it: it applies a
// credential to a request (placement, scheme and host checks) and sends
// requests through the egress-safe client, which scrubs the value from
// what comes back.
type Outbound interface {
	Apply(req *http.Request, c *Credential, value Secret) error
	Send(req *http.Request, c *Credential, value Secret) (*http.Response, error)
}

// UsageRecorder takes uses of credentials, to be written in batches.
type UsageRecorder interface {
	Record(u Usage)
}

// UseMeta labels a use: which workflow and node made the call.
type UseMeta struct {
	WorkflowID string
	NodeID     string
}

// ProxyService attaches credentials to outbound workflow calls: the
// pass-through proxy, the resolve API for trusted runners, and the
// credential test.
type ProxyService struct {
	Credentials *CredentialService
	Outbound    Outbound
	Usage       UsageRecorder
	Audit       AuditStore
}

// Forward sends req with the credential applied and returns the upstream's
// response (the caller closes its body). req.URL holds the path and query
// relative to the credential's base_url; without a base_url, target is
// the absolute URL to call. Errors: those of UseCredential; EINVALID (no
// target); EFORBIDDEN egress_denied; EUNAVAILABLE upstream_unreachable or
// upstream_timeout.
func (s *ProxyService) Forward(ctx context.Context, credentialID string, req *http.Request, target string, meta UseMeta) (*http.Response, error) {
	c, value, err := s.Credentials.UseCredential(ctx, credentialID)
	if err != nil {
		return nil, err
	}
	u, err := targetURL(c, req.URL, target)
	if err != nil {
		return nil, err
	}
	req.URL, req.Host = u, ""
	start := time.Now()
	resp, err := s.Outbound.Send(req.WithContext(ctx), c, value)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	s.record(ctx, c, u.Host, status, time.Since(start), meta)
	return resp, err
}

// CheckProxyPath refuses a proxied path that an upstream could resolve
// outside the credential's base_url path, because servers disagree on how
// to read it: after percent-decoding (as many times as it decodes), a
// segment that is ".." (also with trailing spaces or a ";parameter", as
// Tomcat reads "..;"), a backslash (raw or encoded: IIS treats it as "/"),
// a double-encoded escape ("%25" followed by two hex digits, which a
// double-decoding upstream turns into a new escape), a control character
// or an escape that does not decode. raw is the path as sent (escaped
// form). The rules follow RFC 3986 section 5.2.4 for dot segments and the
// OWASP path traversal guidance for encoded variants.
//
// It returns EINVALID reason "invalid_path", naming the problem, never
// echoing the path.
func CheckProxyPath(raw string) error {
	bad := func(why string) error {
		return &Error{Code: EINVALID, Reason: "invalid_path", Message: "the path after /v1/proxy/{credential_id} " + why + "; send the path the API documents, without dot segments or encoded separators"}
	}
	p, err := url.PathUnescape(raw)
	if err != nil {
		return bad("holds a \"%\" that is not a valid escape")
	}
	if hasEscape(p) {
		// Decoding once more would change the path again.
		return bad("is percent-encoded twice (\"%25\" followed by hex digits)")
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\':
			return bad("holds a backslash (raw or encoded)")
		case c < 0x20 || c == 0x7f:
			return bad("holds a control character")
		}
	}
	for _, seg := range strings.Split(p, "/") {
		name, _, _ := strings.Cut(seg, ";")
		if strings.TrimRight(name, " \t") == ".." {
			return bad("holds a \"..\" segment (also as \"..;\" or encoded)")
		}
	}
	return nil
}

// hasEscape reports whether s holds a percent escape ("%" and two hex
// digits).
func hasEscape(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '%' && isHex(s[i+1]) && isHex(s[i+2]) {
			return true
		}
	}
	return false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// targetURL resolves where a proxied call goes: the credential's base_url
// joined with the caller's path (the host always comes from base_url, so
// no path can point the call elsewhere), or the caller's absolute target
// when the credential has no base_url.
func targetURL(c *Credential, rel *url.URL, target string) (*url.URL, error) {
	if c.BaseURL == "" {
		if target == "" {
			return nil, Errorf(EINVALID, "this credential has no base_url: name the absolute URL to call in the X-Credvault-Target header")
		}
		u, err := url.Parse(target)
		if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil {
			return nil, Errorf(EINVALID, "header X-Credvault-Target must be an absolute http(s) URL without credentials")
		}
		if err := CheckProxyPath(u.EscapedPath()); err != nil {
			return nil, err
		}
		return u, nil
	}
	if err := CheckProxyPath(rel.EscapedPath()); err != nil {
		return nil, err
	}
	base, err := url.Parse(c.BaseURL)
	if err != nil {
		return nil, Wrap(EINTERNAL, err, "stored base_url does not parse")
	}
	u := *base
	prefix := strings.TrimSuffix(base.Path, "/")
	u.Path = prefix + "/" + strings.TrimPrefix(rel.Path, "/")
	if rel.RawPath != "" {
		u.RawPath = strings.TrimSuffix(base.EscapedPath(), "/") + "/" + strings.TrimPrefix(rel.RawPath, "/")
	}
	// Dot segments are resolved here, so that "../" cannot climb out of
	// base_url's path (a credential scoped to /tenants/42 stays there).
	cleaned := path.Clean(u.Path)
	if strings.HasSuffix(u.Path, "/") && cleaned != "/" {
		cleaned += "/"
	}
	if cleaned != u.Path {
		u.Path, u.RawPath = cleaned, ""
	}
	if prefix != "" && u.Path != prefix && !strings.HasPrefix(u.Path, prefix+"/") {
		return nil, &Error{Code: EFORBIDDEN, Reason: "egress_denied", Message: "the path leaves the credential's base_url path"}
	}
	for i := 0; i < len(rel.RawQuery); i++ {
		if c := rel.RawQuery[i]; c <= ' ' || c == 0x7f {
			return nil, Errorf(EINVALID, "the query string holds a space or control character; percent-encode it")
		}
	}
	// A '#' cannot be part of a query on the wire; escaped, it cannot cut
	// the URL short either.
	u.RawQuery = strings.ReplaceAll(rel.RawQuery, "#", "%23")
	return &u, nil
}

func (s *ProxyService) record(ctx context.Context, c *Credential, host string, status int, latency time.Duration, meta UseMeta) {
	if s.Usage == nil {
		return
	}
	u := Usage{
		CredentialID: c.ID, OrgID: c.OrgID, WorkflowID: meta.WorkflowID, NodeID: meta.NodeID,
		DestinationHost: strings.ToValidUTF8(host, "?"), Status: status, LatencyMS: int(latency.Milliseconds()), CreatedAt: time.Now().UTC(),
	}
	if p := PrincipalFrom(ctx); p != nil && p.UserID != "" {
		u.UserID = &p.UserID
	}
	s.Usage.Record(u)
}

// ResolvedRequest is what POST /v1/inject answers: the request with the
// credential applied, for a trusted runner that sends it itself.
type ResolvedRequest struct {
	Method  string              `json:"method"`
	URL     string              `json:"url"`
	Headers map[string][]string `json:"headers"`
}

// Resolve applies the credential to the described request and returns it,
// value included: the one route that hands a value out, so it needs scope
// credentials:resolve and is audited every time (without the value).
// Errors: EFORBIDDEN (scope; egress_denied), ENOTFOUND, EINVALID.
func (s *ProxyService) Resolve(ctx context.Context, credentialID string, req *http.Request, meta UseMeta) (*ResolvedRequest, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireScope(p, ScopeCredentialsResolve); err != nil {
		return nil, err
	}
	c, value, err := s.Credentials.UseCredential(ctx, credentialID)
	if err != nil {
		return nil, err
	}
	applyErr := s.Outbound.Apply(req, c, value)
	outcome := "applied"
	if applyErr != nil {
		outcome = ErrorReason(applyErr)
	}
	ev := newAuditEvent(ctx, c.OrgID, "credential.resolve", "credential", c.ID, map[string]any{
		"workflow_id": meta.WorkflowID, "node_id": meta.NodeID, "destination_host": req.URL.Host, "outcome": outcome,
	})
	if err := s.Audit.CreateAuditEvent(ctx, ev); err != nil {
		return nil, err
	}
	if applyErr != nil {
		return nil, applyErr
	}
	s.record(ctx, c, req.URL.Host, 0, 0, meta)
	return &ResolvedRequest{Method: req.Method, URL: req.URL.String(), Headers: req.Header}, nil
}

// TestResult is what POST /v1/credentials/{id}/test reports.
type TestResult struct {
	OK           bool   `json:"ok"`
	Status       int    `json:"status"`
	ExpectStatus int    `json:"expect_status"`
	LatencyMS    int64  `json:"latency_ms"`
	Rejected     bool   `json:"rejected"` // the upstream refused the key (401 or 403)
	Error        string `json:"error,omitempty"`
	Code         string `json:"code,omitempty"`
}

// Test sends the credential's test_request through the injector and
// reports status and latency, and whether the upstream rejected the key.
// An upstream failure is a result, not an error. Errors: those of
// UseCredential; EINVALID when there is no test_request or base_url.
func (s *ProxyService) Test(ctx context.Context, credentialID string) (*TestResult, error) {
	c, _, err := s.Credentials.FindCredential(ctx, credentialID)
	if err != nil {
		return nil, err
	}
	if c.TestRequest == nil || c.BaseURL == "" {
		return nil, Errorf(EINVALID, "this credential has no test_request and base_url to test with; set them with PATCH")
	}
	rel, err := url.Parse(c.TestRequest.Path)
	if err != nil {
		return nil, Errorf(EINVALID, "field \"test_request.path\" does not parse")
	}
	req, err := http.NewRequestWithContext(ctx, c.TestRequest.Method, "http://placeholder/", nil)
	if err != nil {
		return nil, Wrap(EINTERNAL, err, "build test request")
	}
	req.URL = rel
	for k, v := range c.TestRequest.Headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := s.Forward(ctx, c.ID, req, "", UseMeta{WorkflowID: "credvault:test"})
	res := &TestResult{ExpectStatus: c.TestRequest.ExpectStatus, LatencyMS: time.Since(start).Milliseconds()}
	if res.ExpectStatus == 0 {
		res.ExpectStatus = http.StatusOK
	}
	if err != nil {
		if code := ErrorCode(err); code != EUNAVAILABLE && code != EFORBIDDEN {
			return nil, err
		}
		res.Error, res.Code = ErrorMessage(err), ErrorReason(err)
		return res, nil
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	res.Status = resp.StatusCode
	res.OK = res.Status == res.ExpectStatus
	res.Rejected = res.Status == http.StatusUnauthorized || res.Status == http.StatusForbidden
	return res, nil
}
