package injector

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"credvault/internal/credvault"
)

const testValue = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"

// plainSend sends req over a plain transport (no egress policy), to check
// what Apply alone puts on the wire.
func plainSend(t *testing.T, req *http.Request) {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp.Body)
}

func TestApplyPlacementsArriveExactly(t *testing.T) {
	up := newUpstream(t, nil)
	client := testClient(t, ClientOptions{})
	tests := []struct {
		name      string
		cred      *credvault.Credential
		url       string
		header    http.Header
		wantName  string
		wantValue string
		wantQuery string
	}{
		{
			name:      "header with prefix, caller header in other case and many values",
			cred:      credential("header", "X-Api-Key", "Token ", up.host()),
			url:       up.url() + "/v1/charges?limit=3",
			header:    http.Header{"x-api-key": {"mine", "mine2"}, "X-API-KEY": {"other"}, "X-Api-Key": {"third"}},
			wantName:  "X-Api-Key",
			wantValue: "Token " + testValue,
			wantQuery: "limit=3",
		},
		{
			name:      "bearer replaces the caller's Authorization",
			cred:      credential("bearer", "", "", up.host()),
			url:       up.url() + "/v1/models",
			header:    http.Header{"authorization": {"Basic dXNlcjpwYXNz"}, "Authorization": {"Bearer caller"}},
			wantName:  "Authorization",
			wantValue: "Bearer " + testValue,
		},
		{
			name:      "query keeps the other parameters in order and drops the caller's",
			cred:      credential("query", "api_key", "", up.host()),
			url:       up.url() + "/search?b=2&api_key=caller&a=1&API_KEY=x&api%5Fkey=y&c=3%2B4",
			wantQuery: "b=2&a=1&c=3%2B4&api_key=" + url.QueryEscape(testValue),
		},
	}
	for _, tc := range tests {
		for _, via := range []string{"Apply", "Client.Do"} {
			t.Run(tc.name+"/"+via, func(t *testing.T) {
				req := newRequest(t, http.MethodGet, tc.url, nil)
				for k, vs := range tc.header {
					req.Header[k] = append([]string(nil), vs...)
				}
				if via == "Apply" {
					if err := Apply(req, tc.cred, credvault.NewSecret(testValue)); err != nil {
						t.Fatal(err)
					}
					plainSend(t, req)
				} else {
					resp, err := client.Do(req, tc.cred, credvault.NewSecret(testValue))
					if err != nil {
						t.Fatal(err)
					}
					body := readAll(t, resp.Body)
					if strings.Contains(body, testValue) {
						t.Fatalf("echoed body holds the value: %s", body)
					}
					// Do works on a copy: the caller's request never holds the value.
					if strings.Contains(req.URL.String(), testValue) || strings.Contains(strings.Join(req.Header.Values(tc.wantName), ","), testValue) {
						t.Fatal("Do changed the caller's request")
					}
				}
				got := up.last(t)
				if tc.wantName != "" {
					if vs := got.Header.Values(tc.wantName); len(vs) != 1 || vs[0] != tc.wantValue {
						t.Fatalf("got %s %q, want exactly [%q]", tc.wantName, vs, tc.wantValue)
					}
				}
				if got.RawQuery != tc.wantQuery {
					t.Fatalf("got query %q, want %q", got.RawQuery, tc.wantQuery)
				}
			})
		}
	}
}

func TestApplyQueryValueRoundTrips(t *testing.T) {
	req := newRequest(t, http.MethodGet, "https://api.example.com/x?q=a+b", nil)
	v := "a b/c+d=e&f"
	if err := Apply(req, credential("query", "key", "", "api.example.com"), credvault.NewSecret(v)); err != nil {
		t.Fatal(err)
	}
	q := req.URL.Query()
	if got := q.Get("key"); got != v {
		t.Fatalf("got %q, want %q", got, v)
	}
	if got := q.Get("q"); got != "a b" {
		t.Fatalf("got q %q, want %q", got, "a b")
	}
}

func TestApplyRefusals(t *testing.T) {
	tests := []struct {
		name   string
		cred   *credvault.Credential
		url    string
		code   string
		reason string
		inMsg  string
	}{
		{"no allowed hosts", credential("header", "X-Api-Key", ""), "https://api.example.com/", credvault.EINVALID, "credential_not_usable", "allowed_hosts"},
		{"nil credential", nil, "https://api.example.com/", credvault.EINVALID, "credential_not_usable", ""},
		{"host not allowed", credential("header", "X-Api-Key", "", "api.example.com"), "https://evil.example.net/", credvault.EFORBIDDEN, "egress_denied", "evil.example.net"},
		{"other port", credential("header", "X-Api-Key", "", "api.example.com"), "https://api.example.com:8443/", credvault.EFORBIDDEN, "egress_denied", "api.example.com:8443"},
		{"sibling of wildcard", credential("bearer", "", "", "*.example.com"), "https://a.b.example.com/", credvault.EFORBIDDEN, "egress_denied", "a.b.example.com"},
		{"http when base_url is https", &credvault.Credential{Placement: "bearer", BaseURL: "https://api.example.com", AllowedHosts: []string{"api.example.com"}}, "http://api.example.com/", credvault.EFORBIDDEN, "egress_denied", "https"},
		{"http when there is no base_url", &credvault.Credential{Placement: "bearer", AllowedHosts: []string{"api.example.com"}}, "http://api.example.com/", credvault.EFORBIDDEN, "egress_denied", "api.example.com"},
		{"other scheme", credential("bearer", "", "", "api.example.com"), "ftp://api.example.com/", credvault.EFORBIDDEN, "egress_denied", "scheme"},
		{"relative URL", credential("bearer", "", "", "api.example.com"), "/v1/x", credvault.EFORBIDDEN, "egress_denied", "no host"},
		{"userinfo trick", credential("bearer", "", "", "api.example.com"), "https://api.example.com@evil.example.net/", credvault.EFORBIDDEN, "egress_denied", "evil.example.net"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := newRequest(t, http.MethodGet, tc.url, nil)
			req.Header.Set("X-Api-Key", "caller")
			err := Apply(req, tc.cred, credvault.NewSecret(testValue))
			ce := wantError(t, err, tc.code, tc.reason, testValue)
			if !strings.Contains(ce.Message, tc.inMsg) {
				t.Fatalf("message %q does not name %q", ce.Message, tc.inMsg)
			}
			if req.URL.String() != tc.url || req.Header.Get("X-Api-Key") != "caller" || req.Header.Get("Authorization") != "" {
				t.Fatal("a refused Apply changed the request")
			}
		})
	}
}

func TestRefusedHostMakesNoConnection(t *testing.T) {
	up := newUpstream(t, nil)
	other := newUpstream(t, nil)
	client := testClient(t, ClientOptions{})
	httpsBase := &credvault.Credential{Placement: "bearer", BaseURL: "https://" + up.host(), AllowedHosts: []string{up.host()}}
	cases := []struct {
		name string
		cred *credvault.Credential
		url  string
	}{
		{"host outside allowed_hosts", credential("query", "key", "", other.host()), up.url() + "/x"},
		{"http with an https base_url", httpsBase, up.url() + "/x"},
		{"no allowed hosts", credential("query", "key", ""), up.url() + "/x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := client.Do(newRequest(t, http.MethodGet, tc.url, nil), tc.cred, credvault.NewSecret(testValue))
			if err == nil {
				resp.Body.Close()
				t.Fatal("got a response, want a refusal")
			}
			if credvault.ErrorReason(err) != "egress_denied" && credvault.ErrorReason(err) != "credential_not_usable" {
				t.Fatalf("got %v", err)
			}
		})
	}
	if n, c := len(up.requests()), up.conns.Load(); n != 0 || c != 0 {
		t.Fatalf("upstream got %d requests on %d connections, want none", n, c)
	}
}

func TestApplyClearsHostOverride(t *testing.T) {
	req := newRequest(t, http.MethodGet, "https://api.example.com/", nil)
	req.Host = "internal.example.net"
	if err := Apply(req, credential("bearer", "", "", "api.example.com"), credvault.NewSecret(testValue)); err != nil {
		t.Fatal(err)
	}
	if req.Host != "" {
		t.Fatalf("got Host %q, want it cleared so the checked host is sent", req.Host)
	}
}

func TestWithoutParam(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"", ""},
		{"a=1", "a=1"},
		{"key=1", ""},
		{"a=1&key=2&b=3", "a=1&b=3"},
		{"KEY=1&a=1&Key&k%65y=3&key", "a=1"},
		{"a=1&&b=2&", "a=1&b=2"},
		{"keys=1&akey=2", "keys=1&akey=2"},
		{"a=%zz&key=1", "a=%zz"},
	}
	for _, tc := range tests {
		if got := withoutParam(tc.raw, "key"); got != tc.want {
			t.Errorf("withoutParam(%q) got %q, want %q", tc.raw, got, tc.want)
		}
	}
}
