package injector

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"credvault/internal/credvault"
)

// sleeper waits d (or until the test server closes) before answering.
func sleeper(d time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
	}
}

// The value is query-placed, so that a full URL in an error would show it.
func queryCred(host string) *credvault.Credential { return credential("query", "api_key", "", host) }

func TestResponseHeaderTimeout(t *testing.T) {
	up := newUpstream(t, sleeper(3*time.Second))
	client := testClient(t, ClientOptions{ResponseHeaderTimeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/slow", nil), queryCred(up.host()), credvault.NewSecret(testValue))
	ce := wantError(t, err, credvault.EUNAVAILABLE, "upstream_timeout", testValue)
	if !strings.Contains(ce.Message, up.host()) {
		t.Fatalf("message %q does not name the host", ce.Message)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v, want about 200ms", d)
	}
}

func TestWholeCallTimeoutCoversBody(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first part ")
		w.(http.Flusher).Flush()
		sleeper(3*time.Second)(w, r)
	})
	client := testClient(t, ClientOptions{Timeout: 300 * time.Millisecond})
	resp, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/stall", nil), queryCred(up.host()), credvault.NewSecret(testValue))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	wantError(t, err, credvault.EUNAVAILABLE, "upstream_timeout", testValue)
}

func TestUnreachableUpstream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	ln.Close() // nothing listens there now
	client := testClient(t, ClientOptions{})
	_, err = client.Do(newRequest(t, http.MethodGet, "http://"+host+"/x?a=1", nil), queryCred(host), credvault.NewSecret(testValue))
	ce := wantError(t, err, credvault.EUNAVAILABLE, "upstream_unreachable", testValue)
	if !strings.Contains(ce.Message, host) {
		t.Fatalf("message %q does not name the host", ce.Message)
	}
}

func TestUpstreamResetIsUnreachable(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	client := testClient(t, ClientOptions{})
	_, err := client.Do(newRequest(t, http.MethodGet, up.url()+"/reset", nil), queryCred(up.host()), credvault.NewSecret(testValue))
	wantError(t, err, credvault.EUNAVAILABLE, "upstream_unreachable", testValue)
}

func TestCanceledContext(t *testing.T) {
	up := newUpstream(t, sleeper(3*time.Second))
	client := testClient(t, ClientOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	req := newRequest(t, http.MethodGet, up.url()+"/slow", nil).WithContext(ctx)
	_, err := client.Do(req, queryCred(up.host()), credvault.NewSecret(testValue))
	wantError(t, err, credvault.EUNAVAILABLE, "upstream_unreachable", testValue)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want errors.Is context.Canceled", err)
	}

	dctx, dcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer dcancel()
	_, err = client.Do(newRequest(t, http.MethodGet, up.url()+"/slow", nil).WithContext(dctx), queryCred(up.host()), credvault.NewSecret(testValue))
	wantError(t, err, credvault.EUNAVAILABLE, "upstream_timeout", testValue)
}

// TestErrorsNeverHoldTheValue collects every error the client produces for
// a value placed in the query and checks none of them shows it.
func TestErrorsNeverHoldTheValue(t *testing.T) {
	const planted = "planted-SECRET-3f9a1c"
	up := newUpstream(t, sleeper(3*time.Second))
	refusing := NewClient(ClientOptions{})
	defer refusing.CloseIdleConnections()
	slow := testClient(t, ClientOptions{ResponseHeaderTimeout: 100 * time.Millisecond})
	cases := []struct {
		client *Client
		url    string
		cred   *credvault.Credential
	}{
		{refusing, up.url() + "/a?x=" + planted, queryCred(up.host())},
		{slow, up.url() + "/b", queryCred(up.host())},
		{slow, "http://evil.example.net/", queryCred(up.host())},
		{slow, up.url(), credential("query", "api_key", "")},
	}
	for _, tc := range cases {
		_, err := tc.client.Do(newRequest(t, http.MethodGet, tc.url, nil), tc.cred, credvault.NewSecret(planted))
		if err == nil {
			t.Fatal("want an error")
		}
		if strings.Contains(err.Error(), planted) || strings.Contains(credvault.ErrorMessage(err), planted) {
			t.Fatalf("error shows the value: %v", err)
		}
	}
}
