package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// recorder answers every request with its raw request URI.
func recorder(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Method+" "+r.RequestURI+" key="+r.Header.Get("X-API-Key")+" target="+r.Header.Get("X-Credvault-Target"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestProxyPathsUnderABasePath: credvault mounted under a path prefix
// (behind a gateway) still gets the nested path intact, from the
// generated call and from ProxyTransport.
func TestProxyPathsUnderABasePath(t *testing.T) {
	srv := recorder(t)
	id := uuid.MustParse("11111111-2222-4333-8444-555555555555")
	c, err := New(srv.URL+"/credvault/", "k1")
	if err != nil {
		t.Fatal(err)
	}
	for param, want := range map[string]string{
		"v1/charges":             "GET /credvault/v1/proxy/" + id.String() + "/v1/charges key=k1 target=",
		"a/b%2Fc/d":              "GET /credvault/v1/proxy/" + id.String() + "/a/b%2Fc/d key=k1 target=",
		"with space/x":           "GET /credvault/v1/proxy/" + id.String() + "/with%20space/x key=k1 target=",
		"files/r%C3%A9sum%C3%A9": "GET /credvault/v1/proxy/" + id.String() + "/files/r%C3%A9sum%C3%A9 key=k1 target=",
	} {
		r, err := c.ProxyGetWithResponse(context.Background(), id, param)
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Body) != want {
			t.Errorf("ProxyGet(%q): server saw %q, want %q", param, r.Body, want)
		}
	}
	hc := &http.Client{Transport: &ProxyTransport{Credvault: srv.URL + "/credvault", APIKey: "k2", CredentialID: id.String()}}
	resp, err := hc.Get("https://user:pw@api.example.test/v1/a%2Fb/c?x=1&y=%2F")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := "GET /credvault/v1/proxy/" + id.String() + "/v1/a%2Fb/c?x=1&y=%2F key=k2 target=https://api.example.test/v1/a%2Fb/c?x=1&y=%2F"
	if string(b) != want {
		t.Errorf("ProxyTransport: server saw %q, want %q", b, want)
	}
	if _, err := (&ProxyTransport{Credvault: srv.URL, CredentialID: "../x"}).RoundTrip(httptest.NewRequest("GET", "/", nil)); err == nil {
		t.Error("a credential id with a slash was accepted")
	}
}

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		status            int
		body, retry       string
		code, rid         string
		class             error
		retryAfterSeconds int
	}{
		{404, `{"error":{"code":"not_found","message":"no such user"},"request_id":"r-1"}`, "", "not_found", "r-1", ErrNotFound, 0},
		{429, `{"error":{"code":"rate_limited","message":"slow down"},"request_id":"r-2"}`, "7", "rate_limited", "r-2", ErrRateLimited, 7},
		{502, `<html>bad gateway</html>`, "", "", "", ErrUnavailable, 0},
	} {
		resp := &http.Response{StatusCode: c.status, Header: http.Header{"Retry-After": {c.retry}}}
		err := Check(resp, []byte(c.body))
		var e *APIError
		if !errors.As(err, &e) || e.Code != c.code || e.RequestID != c.rid || !errors.Is(err, c.class) || e.RetryAfter != time.Duration(c.retryAfterSeconds)*time.Second {
			t.Errorf("%d %s: got %#v", c.status, c.body, err)
		}
		if c.code != "" && !strings.Contains(err.Error(), c.code) {
			t.Errorf("message %q lacks the code", err.Error())
		}
	}
	if err := Check(&http.Response{StatusCode: 204}, nil); err != nil {
		t.Errorf("204: %v", err)
	}
}
