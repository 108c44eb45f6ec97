package credvault

import (
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestServicePresetsAreValid(t *testing.T) {
	presets := ServicePresets()
	if len(presets) < 5 {
		t.Fatalf("only %d presets", len(presets))
	}
	seen := map[string]bool{}
	for i, p := range presets {
		t.Run(p.ID, func(t *testing.T) {
			if p.ID == "" || p.ID != strings.ToLower(p.ID) || strings.TrimSpace(p.ID) != p.ID {
				t.Errorf("id %q must be non-empty lower-case", p.ID)
			}
			if seen[p.ID] {
				t.Errorf("id %q appears twice", p.ID)
			}
			seen[p.ID] = true
			if i > 0 && presets[i-1].ID >= p.ID {
				t.Errorf("presets are not sorted by id: %q before %q", presets[i-1].ID, p.ID)
			}
			if p.Name == "" {
				t.Error("no name")
			}
			if err := CheckParamName(p.Placement, p.ParamName, nil); err != nil {
				t.Errorf("CheckParamName: %v", err)
			}
			if err := CheckValuePrefix(p.Placement, p.ValuePrefix); err != nil {
				t.Errorf("CheckValuePrefix: %v", err)
			}
			hosts, err := ParseHostPatterns("allowed_hosts", p.AllowedHosts)
			if err != nil || len(hosts) == 0 {
				t.Fatalf("ParseHostPatterns: %v, %v", hosts, err)
			}
			for j, h := range hosts {
				if h.String() != p.AllowedHosts[j] {
					t.Errorf("allowed_hosts entry %q is not canonical (%q)", p.AllowedHosts[j], h.String())
				}
			}
			u, err := url.Parse(p.BaseURL)
			if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
				t.Fatalf("base_url %q is not a plain https URL", p.BaseURL)
			}
			if strings.HasSuffix(p.BaseURL, "/") {
				t.Errorf("base_url %q ends with '/': the test path would add a second one", p.BaseURL)
			}
			if !HostAllowed(hosts, u.Scheme, u.Host) {
				t.Errorf("base_url host %q is not in its own allowed_hosts %v", u.Host, p.AllowedHosts)
			}
			if p.TestRequest == nil {
				t.Fatal("no test request")
			}
			tr, err := CheckTestRequest(p.TestRequest)
			if err != nil {
				t.Fatalf("CheckTestRequest: %v", err)
			}
			if !reflect.DeepEqual(tr, p.TestRequest) {
				t.Errorf("test request %+v is not normalised (%+v)", p.TestRequest, tr)
			}
			// The request the test sends goes to an allowed host.
			full, err := url.Parse(p.BaseURL + tr.Path)
			if err != nil || !HostAllowed(hosts, full.Scheme, full.Host) {
				t.Errorf("test URL %q: %v", p.BaseURL+tr.Path, err)
			}
			d, err := url.Parse(p.DocsURL)
			if err != nil || d.Scheme != "https" || d.Host == "" {
				t.Errorf("docs_url %q is not an https URL", p.DocsURL)
			}
		})
	}
	for _, id := range []string{"stripe", "openai", "sendgrid", "github", "slack", "anthropic", "google_maps"} {
		if !seen[id] {
			t.Errorf("preset %q is missing", id)
		}
	}
}

func TestServicePresetFacts(t *testing.T) {
	type fact struct {
		placement, param, base, host, method, path string
	}
	want := map[string]fact{
		"stripe":      {"bearer", "", "https://api.stripe.com", "api.stripe.com", "GET", "/v1/balance"},
		"openai":      {"bearer", "", "https://api.openai.com", "api.openai.com", "GET", "/v1/models"},
		"sendgrid":    {"bearer", "", "https://api.sendgrid.com", "api.sendgrid.com", "GET", "/v3/scopes"},
		"github":      {"bearer", "", "https://api.github.com", "api.github.com", "GET", "/user"},
		"slack":       {"bearer", "", "https://slack.com/api", "slack.com", "POST", "/auth.test"},
		"anthropic":   {"header", "x-api-key", "https://api.anthropic.com", "api.anthropic.com", "GET", "/v1/models"},
		"google_maps": {"query", "key", "https://maps.googleapis.com", "maps.googleapis.com", "GET", "/maps/api/geocode/json?address=x"},
	}
	for id, f := range want {
		p, ok := FindServicePreset(id)
		if !ok {
			t.Errorf("%s: missing", id)
			continue
		}
		got := fact{p.Placement, p.ParamName, p.BaseURL, strings.Join(p.AllowedHosts, ","), p.TestRequest.Method, p.TestRequest.Path}
		if got != f || p.TestRequest.ExpectStatus != 200 {
			t.Errorf("%s: got %+v (status %d), want %+v (status 200)", id, got, p.TestRequest.ExpectStatus, f)
		}
	}
	if p, _ := FindServicePreset("anthropic"); p.TestRequest.Headers["anthropic-version"] == "" {
		t.Error("anthropic: the test request lacks the anthropic-version header the API requires")
	}
}

func TestFindServicePreset(t *testing.T) {
	for _, id := range []string{"stripe", "Stripe", "STRIPE", " stripe ", "Google_Maps"} {
		p, ok := FindServicePreset(id)
		if !ok || !strings.EqualFold(p.ID, strings.TrimSpace(id)) {
			t.Errorf("FindServicePreset(%q) = %q, %v", id, p.ID, ok)
		}
	}
	for _, id := range []string{"", "custom", "stripe2", "strip", "ſtripe"} {
		if p, ok := FindServicePreset(id); ok {
			t.Errorf("FindServicePreset(%q) found %q", id, p.ID)
		}
	}
}

func TestServicePresetsAreCopies(t *testing.T) {
	a := ServicePresets()
	a[0].AllowedHosts[0] = "evil.example.com"
	a[0].TestRequest.Path = "/evil"
	a[0].TestRequest.Headers = map[string]string{"x": "y"}
	p, _ := FindServicePreset(a[0].ID)
	p.AllowedHosts[0] = "evil.example.com"
	if p.TestRequest.Headers != nil {
		p.TestRequest.Headers["anthropic-version"] = "evil"
	}
	b := ServicePresets()
	q, _ := FindServicePreset(a[0].ID)
	for _, x := range []ServicePreset{b[0], q} {
		if x.AllowedHosts[0] == "evil.example.com" || x.TestRequest.Path == "/evil" || x.TestRequest.Headers["anthropic-version"] == "evil" {
			t.Fatalf("changing a returned preset changed the catalogue: %+v", x)
		}
	}
}

func TestServicePresetJSON(t *testing.T) {
	p, _ := FindServicePreset("stripe")
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "name", "placement", "param_name", "value_prefix", "base_url", "allowed_hosts", "test_request", "docs_url"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	tr, _ := m["test_request"].(map[string]any)
	for _, k := range []string{"method", "path", "expect_status"} {
		if _, ok := tr[k]; !ok {
			t.Errorf("test_request JSON lacks %q: %s", k, b)
		}
	}
	if _, ok := tr["headers"]; ok {
		t.Errorf("empty headers are not omitted: %s", b)
	}
}

func TestCheckTestRequestNormalises(t *testing.T) {
	if tr, err := CheckTestRequest(nil); tr != nil || err != nil {
		t.Fatalf("nil: %v, %v", tr, err)
	}
	in := &TestRequest{Method: " get ", Path: "/v1/balance"}
	tr, err := CheckTestRequest(in)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Method != "GET" || tr.Path != "/v1/balance" || tr.ExpectStatus != 200 {
		t.Fatalf("got %+v", tr)
	}
	if in.Method != " get " || in.ExpectStatus != 0 {
		t.Fatalf("the input was changed: %+v", in)
	}
	for _, tt := range []TestRequest{
		{Method: "", Path: "/", ExpectStatus: 204},
		{Method: "head", Path: "/ping", ExpectStatus: 100},
		{Method: "POST", Path: "/auth.test", ExpectStatus: 599},
		{Method: "Put", Path: "/a/b"},
		{Method: "patch", Path: "/a"},
		{Method: "delete", Path: "/a"},
		{Method: "OPTIONS", Path: "/a"},
		{Method: "GET", Path: "/maps/api/geocode/json?address=x&region=uk"},
		{Method: "GET", Path: "/search?q=a..b&next=https://x.example"},
		{Method: "GET", Path: "/v1/file..txt/.well-known/x%20y"},
		{Method: "GET", Path: "/" + strings.Repeat("a", 511)},
		{Method: "GET", Path: "/v1/models", Headers: map[string]string{"anthropic-version": "2023-06-01", "Accept": "application/json"}},
	} {
		got, err := CheckTestRequest(&tt)
		if err != nil {
			t.Errorf("%+v: %v", tt, err)
			continue
		}
		if got.Method != strings.ToUpper(strings.TrimSpace(got.Method)) || got.Method == "" || got.ExpectStatus == 0 {
			t.Errorf("%+v: not normalised: %+v", tt, got)
		}
		if len(tt.Headers) > 0 {
			if !reflect.DeepEqual(got.Headers, tt.Headers) {
				t.Errorf("headers: got %v, want %v", got.Headers, tt.Headers)
			}
			got.Headers["x"] = "y"
			if _, ok := tt.Headers["x"]; ok {
				t.Error("the returned headers share the input's map")
			}
		}
	}
}

func TestCheckTestRequestRefuses(t *testing.T) {
	long := "/" + strings.Repeat("a", 512)
	tests := []struct {
		tr    TestRequest
		field string
		want  string
	}{
		{TestRequest{Method: "TRACE", Path: "/"}, "test_request.method", "GET HEAD POST PUT PATCH DELETE OPTIONS"},
		{TestRequest{Method: "CONNECT", Path: "/"}, "test_request.method", "one of"},
		{TestRequest{Method: "GE\r\nT", Path: "/"}, "test_request.method", "one of"},
		{TestRequest{Method: "G ET", Path: "/"}, "test_request.method", "one of"},
		{TestRequest{Path: ""}, "test_request.path", "required"},
		{TestRequest{Path: "v1/balance"}, "test_request.path", "start with"},
		{TestRequest{Path: "?x=1"}, "test_request.path", "start with"},
		{TestRequest{Path: "https://evil.example/x"}, "test_request.path", "start with"},
		{TestRequest{Path: "//evil.example/x"}, "test_request.path", "scheme or host"},
		{TestRequest{Path: "/x/https://evil.example"}, "test_request.path", "scheme or host"},
		{TestRequest{Path: "/../admin"}, "test_request.path", ".."},
		{TestRequest{Path: "/v1/../admin"}, "test_request.path", ".."},
		{TestRequest{Path: "/v1/.."}, "test_request.path", ".."},
		{TestRequest{Path: "/v1/%2e%2e/admin"}, "test_request.path", ".."},
		{TestRequest{Path: "/v1/%2E./admin"}, "test_request.path", ".."},
		{TestRequest{Path: "/v1/.%2e?x=1"}, "test_request.path", ".."},
		{TestRequest{Path: "/v1\\..\\admin"}, "test_request.path", "backslash"},
		{TestRequest{Path: "/v1/x\r\nHost: evil"}, "test_request.path", "CR/LF"},
		{TestRequest{Path: "/v1/x\n"}, "test_request.path", "CR/LF"},
		{TestRequest{Path: "/v1/x\x00"}, "test_request.path", "control"},
		{TestRequest{Path: "/v1/x\t"}, "test_request.path", "control"},
		{TestRequest{Path: "/v1/a b"}, "test_request.path", "spaces"},
		{TestRequest{Path: "/v1/é"}, "test_request.path", "ASCII"},
		{TestRequest{Path: "/v1#frag"}, "test_request.path", "fragment"},
		{TestRequest{Path: long}, "test_request.path", "512"},
		{TestRequest{Path: "/", ExpectStatus: 99}, "test_request.expect_status", "100 to 599"},
		{TestRequest{Path: "/", ExpectStatus: 600}, "test_request.expect_status", "100 to 599"},
		{TestRequest{Path: "/", ExpectStatus: -1}, "test_request.expect_status", "100 to 599"},
		{TestRequest{Path: "/", Headers: map[string]string{"Host": "evil"}}, "test_request.headers", "reserved header Host"},
		{TestRequest{Path: "/", Headers: map[string]string{"content-length": "0"}}, "test_request.headers", "reserved header Content-Length"},
		{TestRequest{Path: "/", Headers: map[string]string{"X-Credvault-Target": "x"}}, "test_request.headers", "X-Credvault-"},
		{TestRequest{Path: "/", Headers: map[string]string{"authorization": "Bearer x"}}, "test_request.headers", "Authorization"},
		{TestRequest{Path: "/", Headers: map[string]string{"X-A\r\nB": "x"}}, "test_request.headers", "not a valid header name"},
		{TestRequest{Path: "/", Headers: map[string]string{"": "x"}}, "test_request.headers", "1 to 64"},
		{TestRequest{Path: "/", Headers: map[string]string{"X-A": "x\r\nHost: evil"}}, "test_request.headers", "printable ASCII"},
		{TestRequest{Path: "/", Headers: map[string]string{"X-A": strings.Repeat("v", 257)}}, "test_request.headers", "256"},
		{TestRequest{Path: "/", Headers: map[string]string{"A": "", "B": "", "C": "", "D": "", "E": "", "F": "", "G": "", "H": "", "I": "", "J": "", "K": ""}}, "test_request.headers", "at most 10"},
	}
	for _, tt := range tests {
		t.Run(tt.field+"/"+tt.tr.Method+tt.tr.Path, func(t *testing.T) {
			tr, err := CheckTestRequest(&tt.tr)
			if tr != nil {
				t.Errorf("returned %+v along with the error", tr)
			}
			checkInvalid(t, err, tt.field, tt.want)
		})
	}
}
