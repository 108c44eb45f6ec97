package credvault

import (
	"unicode"
	"unicode/utf8"

	"context"
	"golang.org/x/text/unicode/norm"
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
	// Observe, when set, is told of every call sent with a credential: the
	// upstream's status (0 without a response), the error, and the time
	// until the response headers. The metrics hook; it must not block.
	Observe func(status int, err error, elapsed time.Duration)
}

// Forward sends req with the credential applied and returns the upstream's
// response (the caller closes its body). req.URL holds the path and query
// relative to the credential's base_url; without a base_url, target is
// the absolute URL to call. Forward takes req over: it writes the URL it
// calls over *req.URL (so req.URL must not be shared) and clears req.Host. Errors: those of UseCredential; EINVALID (no
// target); EFORBIDDEN egress_denied; EUNAVAILABLE upstream_unreachable or
// upstream_timeout. The workflow id TestWorkflowID is the credential
// test's own and is refused (EINVALID) from callers.
func (s *ProxyService) Forward(ctx context.Context, credentialID string, req *http.Request, target string, meta UseMeta) (*http.Response, error) {
	if err := checkUseMeta(meta); err != nil {
		return nil, err
	}
	return s.forward(ctx, credentialID, req, target, meta)
}

// checkUseMeta refuses a caller's claim to be the credential test, whose
// uses do not count as workflow use.
func checkUseMeta(meta UseMeta) error {
	if meta.WorkflowID == TestWorkflowID {
		return Errorf(EINVALID, "workflow id %q is reserved for credential tests", TestWorkflowID)
	}
	return nil
}

func (s *ProxyService) forward(ctx context.Context, credentialID string, req *http.Request, target string, meta UseMeta) (*http.Response, error) {
	c, value, err := s.Credentials.UseCredential(ctx, credentialID)
	if err != nil {
		return nil, err
	}
	if req.URL == nil {
		req.URL = &url.URL{}
	}
	// The target is written over req.URL (the caller's relative URL, which
	// Forward takes over with req), saving a URL per call.
	if err := targetURLInto(req.URL, c, req.URL, target); err != nil {
		return nil, err
	}
	u := req.URL
	req.Host = ""
	start := time.Now()
	if req.Context() != ctx {
		req = req.WithContext(ctx)
	}
	resp, err := s.Outbound.Send(req, c, value)
	if err == nil && resp.StatusCode == http.StatusUnauthorized && c.Kind == KindOAuth2 && replayable(req) {
		resp, err = s.retryRefreshed(ctx, req, c, resp)
	}
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	end := time.Now()
	elapsed := end.Sub(start)
	if s.Observe != nil {
		s.Observe(status, err, elapsed)
	}
	s.recordAt(ctx, c, u.Host, status, elapsed, meta, end)
	return resp, err
}

// CheckProxyPath refuses a proxied path that an upstream could resolve
// outside the credential's base_url path, because servers disagree on how
// to read it: after percent-decoding (as many times as it decodes), a
// segment that is ".." (also with trailing spaces or a ";parameter", as
// Tomcat reads "..;"), a backslash (raw or encoded: IIS treats it as "/"),
// a double-encoded escape ("%25" followed by two hex digits, which a
// double-decoding upstream turns into a new escape), a control character,
// an escape that does not decode, bytes that are not valid UTF-8 once
// decoded (an overlong "%c0%ae" is "." to a lenient decoder), or a
// character that Unicode normalisation (NFKC) turns into ".", "/", "\",
// ";" or "%" (the fullwidth full stop "%ef%bc%8e", the two-dot leader), an
// ideographic full stop or an invisible character (nonASCIIPathError).
// raw is the path as sent (escaped form). The rules follow RFC 3986 section 5.2.4 for dot segments and the
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
	nonASCIIChecked := false // nonASCIIPathError reads the rest of p at once
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\':
			return bad("holds a backslash (raw or encoded)")
		case c < 0x20 || c == 0x7f:
			return bad("holds a control character")
		case c >= utf8.RuneSelf && !nonASCIIChecked:
			if why := nonASCIIPathError(p[i:]); why != "" {
				return bad(why)
			}
			nonASCIIChecked = true // the ASCII bytes after it are still checked
		}
	}
	for rest := p; ; {
		seg, next, more := strings.Cut(rest, "/")
		name, _, _ := strings.Cut(seg, ";")
		if strings.TrimRight(name, " \t") == ".." {
			return bad("holds a \"..\" segment (also as \"..;\" or encoded)")
		}
		if !more {
			return nil
		}
		rest = next
	}
}

// pathLookalikes are the ASCII characters that separate or climb a path
// ("." for dot segments, "/" and "\" for segments, ";" for Tomcat's
// parameters, "%" for escapes): a non-ASCII character whose NFKC form
// holds one of them is a look-alike that an upstream normalising Unicode
// would read as that delimiter.
const pathLookalikes = "./\\;%"

// nonASCIIPathError checks the decoded path from its first non-ASCII byte
// on: it must be valid UTF-8 (an overlong "%c0%ae" is a "." to a lenient
// decoder), no character may normalise (NFKC, Unicode UAX #15) to a
// path delimiter, as the fullwidth full stop "%ef%bc%8e" does to ".", and
// none may be one that other normalisers turn into a dot or delete: the
// ideographic full stops U+3002 and U+FF61 (UTS #46 maps them to "."), or
// a default-ignorable character (format characters such as U+200B and
// U+00AD, U+034F, variation selectors; NFKC_Casefold and UTS #46 delete
// them, joining ".\u200b." into "..").
// ASCII-only paths never come here, so the proxy's usual cost is
// unchanged. It returns why the path is refused, or "".
func nonASCIIPathError(p string) string {
	if !utf8.ValidString(p) {
		return "holds bytes that are not valid UTF-8 after percent-decoding (such as an overlong \"%c0%ae\")"
	}
	for _, r := range p {
		if r < utf8.RuneSelf {
			continue
		}
		var buf [utf8.UTFMax]byte
		n := utf8.EncodeRune(buf[:], r)
		if strings.ContainsAny(string(norm.NFKC.Bytes(buf[:n])), pathLookalikes) {
			return "holds a character that Unicode normalisation (NFKC) turns into \".\", \"/\", \"\\\", \";\" or \"%\", such as a fullwidth full stop"
		}
		if r == '\u3002' || r == '\uff61' {
			return "holds an ideographic full stop, which IDNA mapping (UTS #46) turns into \".\""
		}
		if unicode.In(r, unicode.Cf, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector) {
			return "holds an invisible (default-ignorable) character, which NFKC_Casefold and IDNA mapping delete, so that \".\u200b.\" becomes \"..\""
		}
	}
	return ""
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
	var u url.URL
	if err := targetURLInto(&u, c, rel, target); err != nil {
		return nil, err
	}
	return &u, nil
}

// targetURLInto is targetURL writing the URL into dst, which may be rel
// itself; on an error dst is left as it was.
func targetURLInto(dst *url.URL, c *Credential, rel *url.URL, target string) error {
	if c.BaseURL == "" {
		if target == "" {
			return Errorf(EINVALID, "this credential has no base_url: name the absolute URL to call in the X-Credvault-Target header")
		}
		u, err := url.Parse(target)
		if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil {
			return Errorf(EINVALID, "header X-Credvault-Target must be an absolute http(s) URL without credentials")
		}
		if err := CheckProxyPath(u.EscapedPath()); err != nil {
			return err
		}
		*dst = *u
		return nil
	}
	if err := CheckProxyPath(rel.EscapedPath()); err != nil {
		return err
	}
	base, err := c.baseURL()
	if err != nil {
		return Wrap(EINTERNAL, err, "stored base_url does not parse")
	}
	u := *base
	prefix := strings.TrimSuffix(base.Path, "/")
	if prefix == "" && strings.HasPrefix(rel.Path, "/") {
		u.Path = rel.Path // what the join below gives, without building it
	} else {
		u.Path = prefix + "/" + strings.TrimPrefix(rel.Path, "/")
	}
	if rel.RawPath != "" {
		u.RawPath = strings.TrimSuffix(base.EscapedPath(), "/") + "/" + strings.TrimPrefix(rel.RawPath, "/")
	}
	// Dot segments are resolved here, so that "../" cannot climb out of
	// base_url's path (a credential scoped to /tenants/42 stays there).
	cleaned := path.Clean(u.Path)
	if strings.HasSuffix(u.Path, "/") && cleaned != "/" {
		if cleaned == u.Path[:len(u.Path)-1] {
			cleaned = u.Path // clean but for the kept trailing slash
		} else {
			cleaned += "/"
		}
	}
	if cleaned != u.Path {
		u.Path, u.RawPath = cleaned, ""
	}
	if prefix != "" && u.Path != prefix && !(strings.HasPrefix(u.Path, prefix) && u.Path[len(prefix)] == '/') {
		return &Error{Code: EFORBIDDEN, Reason: "egress_denied", Message: "the path leaves the credential's base_url path"}
	}
	for i := 0; i < len(rel.RawQuery); i++ {
		if c := rel.RawQuery[i]; c <= ' ' || c == 0x7f {
			return Errorf(EINVALID, "the query string holds a space or control character; percent-encode it")
		}
	}
	// A '#' cannot be part of a query on the wire; escaped, it cannot cut
	// the URL short either.
	u.RawQuery = strings.ReplaceAll(rel.RawQuery, "#", "%23")
	*dst = u
	return nil
}

func (s *ProxyService) record(ctx context.Context, c *Credential, host string, status int, latency time.Duration, meta UseMeta) {
	if s.Usage == nil {
		return
	}
	s.recordAt(ctx, c, host, status, latency, meta, time.Now())
}

// recordAt is record for a use that ended at now (the time forward read
// already).
func (s *ProxyService) recordAt(ctx context.Context, c *Credential, host string, status int, latency time.Duration, meta UseMeta, now time.Time) {
	if s.Usage == nil {
		return
	}
	u := Usage{
		CredentialID: c.ID, OrgID: c.OrgID, WorkflowID: meta.WorkflowID, NodeID: meta.NodeID,
		DestinationHost: strings.ToValidUTF8(host, "?"), Status: status, LatencyMS: int(latency.Milliseconds()), CreatedAt: now.UTC(),
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

// ResolveInput is POST /v1/inject: the request a runner will send, the
// credential to apply and the user the workflow runs for.
type ResolveInput struct {
	CredentialID string
	// ActingUser is the user the runner acts for; the resolve needs their
	// `use` on the credential.
	ActingUser string
	Method     string
	URL        string
	Headers    map[string][]string
	Query      map[string][]string
	Meta       UseMeta
}

// Resolve applies the credential to the described request and returns it,
// value included: the one route that hands a value out. It needs a service
// key (a runner) holding credentials:resolve (never implied by admin),
// naming an acting user who may use the credential, and a destination in
// its allowed_hosts. Every attempt is audited as credential.resolve with
// its outcome, refused ones included, never with the value.
// Errors: EFORBIDDEN (insufficient_scope, service_key_required,
// egress_denied), EINVALID (acting_user_required, a request field),
// ENOTFOUND (the acting user may not use the credential).
func (s *ProxyService) Resolve(ctx context.Context, in ResolveInput) (*ResolvedRequest, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	actx, host := ctx, ""
	res, err := s.resolve(ctx, p, in, &actx, &host)
	// The acting user is recorded once found in the org (never the raw
	// header), as the event's actor.
	data := map[string]any{
		"workflow_id": in.Meta.WorkflowID, "node_id": in.Meta.NodeID, "destination_host": host, "outcome": "applied",
	}
	if ap := PrincipalFrom(actx); ap != p {
		data["acting_user"] = ap.UserID
	}
	if err != nil {
		data["outcome"] = outcomeOf(err)
	}
	ev := newAuditEvent(actx, p.OrgID, "credential.resolve", "credential", in.CredentialID, data)
	if aerr := s.Audit.CreateAuditEvent(ctx, ev); aerr != nil {
		return nil, aerr
	}
	return res, err
}

func (s *ProxyService) resolve(ctx context.Context, p *Principal, in ResolveInput, actx *context.Context, host *string) (*ResolvedRequest, error) {
	if err := requireScope(p, ScopeCredentialsResolve); err != nil {
		return nil, err
	}
	if p.Kind != KeyKindService {
		return nil, &Error{Code: EFORBIDDEN, Reason: "service_key_required", Message: "only service keys (runners) may resolve a credential value"}
	}
	if in.ActingUser == "" {
		return nil, &Error{Code: EINVALID, Reason: "acting_user_required",
			Message: "name the user the workflow runs for in the X-Credvault-Acting-User header (or the field \"acting_user\"): a resolve needs their use permission"}
	}
	if err := checkUseMeta(in.Meta); err != nil {
		return nil, err
	}
	c, err := actAs(ctx, s.Credentials.Users, in.ActingUser)
	if err != nil {
		return nil, err
	}
	*actx = c
	req, err := resolveRequest(c, in)
	if err != nil {
		return nil, err
	}
	*host = strings.ToValidUTF8(req.URL.Host, "?")
	cred, value, err := s.Credentials.UseCredential(c, in.CredentialID)
	if err != nil {
		return nil, err
	}
	if err := s.Outbound.Apply(req, cred, value); err != nil {
		return nil, err
	}
	s.record(c, cred, req.URL.Host, 0, 0, in.Meta)
	return &ResolvedRequest{Method: req.Method, URL: req.URL.String(), Headers: req.Header}, nil
}

// resolveRequest builds the runner's request from in. Errors: EINVALID
// naming the field.
func resolveRequest(ctx context.Context, in ResolveInput) (*http.Request, error) {
	u, err := url.Parse(in.URL)
	if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil {
		return nil, Errorf(EINVALID, "field \"request.url\" must be an absolute http(s) URL without credentials")
	}
	q := u.Query()
	for k, vs := range in.Query {
		for _, v := range vs {
			q.Add(k, v)
		}
	}
	u.RawQuery = q.Encode()
	method := in.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, Errorf(EINVALID, "field \"request\" does not make a valid request")
	}
	for k, vs := range in.Headers {
		for _, v := range vs {
			if strings.ContainsAny(k+v, "\r\n\x00") {
				return nil, Errorf(EINVALID, "field \"request.headers\" must not contain CR, LF or NUL")
			}
			req.Header.Add(k, v)
		}
	}
	return req, nil
}

// outcomeOf names a refusal for the audit trail: the error's reason, or
// its code.
func outcomeOf(err error) string {
	if r := ErrorReason(err); r != "" {
		return r
	}
	return ErrorCode(err)
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
	res, _, err := s.test(ctx, credentialID)
	return res, err
}

// test is Test, also returning the credential it tested (nil when it was
// not found), so that a scheduled check names it without reading it again.
func (s *ProxyService) test(ctx context.Context, credentialID string) (*TestResult, *Credential, error) {
	c, _, err := s.Credentials.FindCredential(ctx, credentialID)
	if err != nil {
		return nil, nil, err
	}
	res, err := s.testFound(ctx, c)
	return res, c, err
}

func (s *ProxyService) testFound(ctx context.Context, c *Credential) (*TestResult, error) {
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
	resp, err := s.forward(ctx, c.ID, req, "", UseMeta{WorkflowID: TestWorkflowID})
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

// replayable reports whether req can be sent again: no body, or a body
// credvault buffered (GetBody), which the HTTP layer does up to its body
// limit.
func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// retryRefreshed handles an upstream's 401 to an oauth2 credential's
// token: refresh once (unless another call already replaced that token)
// and send the request once more. When the refresh fails, the caller gets
// the upstream's 401 as it was.
func (s *ProxyService) retryRefreshed(ctx context.Context, req *http.Request, c *Credential, first *http.Response) (*http.Response, error) {
	fresh, value, err := s.Credentials.RefreshRejected(ctx, c)
	if err != nil {
		return first, nil
	}
	retry := req.Clone(ctx)
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return first, nil
		}
		retry.Body = body
	}
	_, _ = io.CopyN(io.Discard, first.Body, 64<<10)
	first.Body.Close()
	return s.Outbound.Send(retry, fresh, value)
}
