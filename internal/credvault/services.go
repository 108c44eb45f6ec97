package credvault

import (
	"maps"
	"sort"
	"strings"
)

// ServicePreset is how a well-known API takes its key, so that connecting
// it needs only the key: GET /v1/services lists these, and creating a
// credential with one of their ids fills in whatever the caller leaves out.
type ServicePreset struct {
	ID           string       `json:"id"`
	Name         string       `json:"name"`
	Placement    string       `json:"placement"`
	ParamName    string       `json:"param_name"`
	ValuePrefix  string       `json:"value_prefix"`
	BaseURL      string       `json:"base_url"`
	AllowedHosts []string     `json:"allowed_hosts"`
	TestRequest  *TestRequest `json:"test_request"`
	DocsURL      string       `json:"docs_url"`
}

// TestRequest is the call POST /v1/credentials/{id}/test sends through the
// injector to check a credential: Method and Path (appended to the
// credential's base_url, and which may carry a query string) with the
// credential applied, and the status that means the key works. Headers are
// extra, non-secret request headers some APIs insist on (such as
// anthropic-version); they never carry the credential, which the injector
// adds.
type TestRequest struct {
	Method       string            `json:"method"`
	Path         string            `json:"path"`
	ExpectStatus int               `json:"expect_status"`
	Headers      map[string]string `json:"headers,omitempty"`
}

// testRequestMethods are the methods a test request may use.
var testRequestMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// Limits on a test request.
const (
	maxTestPathLen        = 512
	maxTestHeaders        = 10
	maxTestHeaderValueLen = 256
)

// CheckTestRequest checks a credential's test request, which credvault
// sends on the caller's behalf to the credential's own base_url, and
// returns a normalised copy (tr itself is not changed): the method is
// trimmed and upper-cased ("" means GET) and must be one of GET HEAD POST
// PUT PATCH DELETE OPTIONS; the path must start with "/", be at most 512
// bytes of printable ASCII without spaces, backslashes or a fragment, and
// must not name a scheme or host or step out of base_url with a ".."
// segment (plain or percent-encoded); a query string after "?" is allowed;
// expect_status must be 100 to 599 (0 means 200); at most 10 headers, each
// a valid header name that is neither reserved (Host, Content-Length, ...,
// X-Credvault-*) nor Authorization, with a printable ASCII value of at most
// 256 bytes. A nil tr means "no test request" and gives nil, nil.
//
// It returns EINVALID naming "test_request.method", "test_request.path",
// "test_request.expect_status" or "test_request.headers".
func CheckTestRequest(tr *TestRequest) (*TestRequest, error) {
	if tr == nil {
		return nil, nil
	}
	out := &TestRequest{
		Method:       strings.ToUpper(strings.TrimSpace(tr.Method)),
		Path:         tr.Path,
		ExpectStatus: tr.ExpectStatus,
	}
	if out.Method == "" {
		out.Method = "GET"
	}
	known := false
	for _, m := range testRequestMethods {
		if out.Method == m {
			known = true
			break
		}
	}
	if !known {
		return nil, Errorf(EINVALID, "field \"test_request.method\" must be one of: %s (got %s)", strings.Join(testRequestMethods, " "), quoteEntry(tr.Method))
	}
	if reason := checkTestPath(out.Path); reason != "" {
		return nil, Errorf(EINVALID, "field \"test_request.path\" %s", reason)
	}
	if out.ExpectStatus == 0 {
		out.ExpectStatus = 200
	}
	if out.ExpectStatus < 100 || out.ExpectStatus > 599 {
		return nil, Errorf(EINVALID, "field \"test_request.expect_status\" must be an HTTP status from 100 to 599 (0 means 200)")
	}
	if len(tr.Headers) > 0 {
		if len(tr.Headers) > maxTestHeaders {
			return nil, Errorf(EINVALID, "field \"test_request.headers\" has %d headers; at most %d are allowed", len(tr.Headers), maxTestHeaders)
		}
		// Check in a fixed order so that the same input gives the same error.
		names := make([]string, 0, len(tr.Headers))
		for name := range tr.Headers {
			names = append(names, name)
		}
		sort.Strings(names)
		out.Headers = make(map[string]string, len(names))
		for _, name := range names {
			if reason := checkTestHeader(name, tr.Headers[name]); reason != "" {
				return nil, Errorf(EINVALID, "field \"test_request.headers\": %s", reason)
			}
			out.Headers[name] = tr.Headers[name]
		}
	}
	return out, nil
}

// checkTestPath says why a test request path is refused, or "".
func checkTestPath(p string) string {
	const help = `; give a path such as "/v1/balance", optionally with a query string`
	if p == "" {
		return "is required" + help
	}
	if len(p) > maxTestPathLen {
		return "is too long; at most 512 bytes are allowed"
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\r' || c == '\n':
			return "must not contain CR/LF"
		case c < 0x20 || c == 0x7f:
			return "must not contain control characters"
		case c == ' ':
			return "must not contain spaces; percent-encode them as %20"
		case c >= 0x80:
			return "must be ASCII; percent-encode other characters"
		case c == '#':
			return "must not have a fragment (\"#...\")"
		case c == '\\':
			return "must not contain backslashes"
		}
	}
	if p[0] != '/' {
		return "must start with \"/\"" + help
	}
	pathPart := p
	if i := strings.IndexByte(p, '?'); i >= 0 {
		pathPart = p[:i]
	}
	if strings.HasPrefix(pathPart, "//") || strings.Contains(pathPart, "://") {
		return "must be a path on the credential's base_url, without a scheme or host" + help
	}
	for _, seg := range strings.Split(pathPart, "/") {
		if seg == "" || len(seg) > 9 { // "%2e%2e" is the longest spelling of ".."
			continue
		}
		if strings.ReplaceAll(strings.ToLower(seg), "%2e", ".") == ".." {
			return "must not contain \"..\" segments" + help
		}
	}
	return ""
}

// checkTestHeader says why a test request header is refused, or "".
func checkTestHeader(name, value string) string {
	if name == "" || len(name) > maxParamNameLen {
		return "header names must be 1 to 64 characters"
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return "header " + quoteEntry(name) + " is not a valid header name: use only letters, digits and !#$%&'*+-.^_`|~"
		}
	}
	lower := strings.ToLower(name)
	if canon, ok := reservedHeaders[lower]; ok {
		return "reserved header " + canon + " cannot be set"
	}
	if strings.HasPrefix(lower, credvaultHeaderPrefix) {
		return "reserved header " + name + ": X-Credvault-* headers belong to credvault"
	}
	if lower == "authorization" {
		return "header Authorization cannot be set: the credential provides authentication"
	}
	if len(value) > maxTestHeaderValueLen {
		return "the value of header " + name + " is too long; at most 256 bytes are allowed"
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c < 0x20 || c > 0x7e {
			return "the value of header " + name + " may only hold printable ASCII characters (no CR/LF or other control characters)"
		}
	}
	return ""
}

// servicePresets is the catalogue, in the order GET /v1/services shows it
// (alphabetical by id). Every entry is checked by the package tests.
var servicePresets = []ServicePreset{
	{
		ID: "anthropic", Name: "Anthropic",
		Placement: "header", ParamName: "x-api-key",
		BaseURL: "https://api.anthropic.com", AllowedHosts: []string{"api.anthropic.com"},
		// The API refuses requests without an anthropic-version header.
		TestRequest: &TestRequest{Method: "GET", Path: "/v1/models", ExpectStatus: 200,
			Headers: map[string]string{"anthropic-version": "2023-06-01"}},
		DocsURL: "https://docs.anthropic.com/en/api/getting-started",
	},
	{
		ID: "github", Name: "GitHub",
		Placement: "bearer",
		BaseURL:   "https://api.github.com", AllowedHosts: []string{"api.github.com"},
		TestRequest: &TestRequest{Method: "GET", Path: "/user", ExpectStatus: 200},
		DocsURL:     "https://docs.github.com/en/rest/authentication/authenticating-to-the-rest-api",
	},
	{
		ID: "google_maps", Name: "Google Maps Platform",
		Placement: "query", ParamName: "key",
		BaseURL: "https://maps.googleapis.com", AllowedHosts: []string{"maps.googleapis.com"},
		TestRequest: &TestRequest{Method: "GET", Path: "/maps/api/geocode/json?address=x", ExpectStatus: 200},
		DocsURL:     "https://developers.google.com/maps/documentation/geocoding/requests-geocoding",
	},
	{
		ID: "openai", Name: "OpenAI",
		Placement: "bearer",
		BaseURL:   "https://api.openai.com", AllowedHosts: []string{"api.openai.com"},
		TestRequest: &TestRequest{Method: "GET", Path: "/v1/models", ExpectStatus: 200},
		DocsURL:     "https://platform.openai.com/docs/api-reference/authentication",
	},
	{
		ID: "sendgrid", Name: "SendGrid",
		Placement: "bearer",
		BaseURL:   "https://api.sendgrid.com", AllowedHosts: []string{"api.sendgrid.com"},
		TestRequest: &TestRequest{Method: "GET", Path: "/v3/scopes", ExpectStatus: 200},
		DocsURL:     "https://www.twilio.com/docs/sendgrid/api-reference/api-key-permissions/retrieve-a-list-of-scopes-for-which-this-user-has-access",
	},
	{
		ID: "slack", Name: "Slack",
		Placement: "bearer",
		BaseURL:   "https://slack.com/api", AllowedHosts: []string{"slack.com"},
		TestRequest: &TestRequest{Method: "POST", Path: "/auth.test", ExpectStatus: 200},
		DocsURL:     "https://docs.slack.dev/reference/methods/auth.test",
	},
	{
		ID: "stripe", Name: "Stripe",
		Placement: "bearer",
		BaseURL:   "https://api.stripe.com", AllowedHosts: []string{"api.stripe.com"},
		TestRequest: &TestRequest{Method: "GET", Path: "/v1/balance", ExpectStatus: 200},
		DocsURL:     "https://docs.stripe.com/api/authentication",
	},
}

// ServicePresets lists the presets in a stable order (alphabetical by id)
// for GET /v1/services. It returns fresh copies, so callers may change
// them without affecting the catalogue. It never fails.
func ServicePresets() []ServicePreset {
	out := make([]ServicePreset, len(servicePresets))
	for i, p := range servicePresets {
		out[i] = p.clone()
	}
	return out
}

// FindServicePreset looks a preset up by id, case-insensitively, so that a
// credential created with service "Stripe" gets the Stripe defaults. ok is
// false when the id is unknown; the preset is a fresh copy.
func FindServicePreset(id string) (ServicePreset, bool) {
	id = strings.TrimSpace(id)
	for _, p := range servicePresets {
		if asciiEqualFold(p.ID, id) {
			return p.clone(), true
		}
	}
	return ServicePreset{}, false
}

// clone deep-copies p's slices, pointer and map.
func (p ServicePreset) clone() ServicePreset {
	p.AllowedHosts = append([]string(nil), p.AllowedHosts...)
	if p.TestRequest != nil {
		tr := *p.TestRequest
		tr.Headers = maps.Clone(tr.Headers)
		p.TestRequest = &tr
	}
	return p
}
