package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// exchange is one request through a specRecorder and credvault's answer.
type exchange struct {
	method, target string
	header         http.Header // request
	status         int
	respHeader     http.Header
	body           []byte
}

// specRecorder is a loopback reverse proxy in front of a credvault
// instance that keeps every exchange; when the test ends it validates
// every response against api/openapi.yaml with kin-openapi's
// openapi3filter (status documented, headers, content type, body
// schema), so that the contract and the code cannot drift apart.
type specRecorder struct {
	mu        sync.Mutex
	exchanges []exchange
}

// recordForSpec starts the recorder in front of target and returns its
// URL; use it in place of target's.
func recordForSpec(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rec := &specRecorder{}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		ModifyResponse: func(resp *http.Response) error {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(body))
			if err != nil {
				return err
			}
			req := resp.Request
			rec.mu.Lock()
			rec.exchanges = append(rec.exchanges, exchange{method: req.Method, target: req.URL.RequestURI(), header: req.Header.Clone(),
				status: resp.StatusCode, respHeader: resp.Header.Clone(), body: body})
			rec.mu.Unlock()
			return nil
		},
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(func() {
		srv.Close()
		rec.mu.Lock()
		defer rec.mu.Unlock()
		bad := validateExchanges(t, rec.exchanges)
		t.Logf("kin-openapi: %d responses validated against api/openapi.yaml, %d violations", len(rec.exchanges), bad)
	})
	return srv.URL
}

var (
	specOnce   sync.Once
	specRouter routers.Router
	specErr    error
)

// loadSpecRouter loads api/openapi.yaml once, for any host (servers
// cleared: the recorder listens on a random port).
func loadSpecRouter() (routers.Router, error) {
	specOnce.Do(func() {
		doc, err := openapi3.NewLoader().LoadFromFile("../../api/openapi.yaml")
		if err != nil {
			specErr = err
			return
		}
		doc.Servers = nil
		specRouter, specErr = legacy.NewRouter(doc)
	})
	return specRouter, specErr
}

// validateExchanges reports each response that api/openapi.yaml does not
// describe and returns how many there were.
func validateExchanges(t *testing.T, exs []exchange) int {
	t.Helper()
	router, err := loadSpecRouter()
	if err != nil {
		t.Fatalf("load api/openapi.yaml: %v", err)
	}
	bad := 0
	for _, ex := range exs {
		if err := validateExchange(router, ex); err != nil {
			bad++
			t.Errorf("%s %s -> %d does not match api/openapi.yaml: %v\nbody: %.300s", ex.method, ex.target, ex.status, err, ex.body)
		}
	}
	return bad
}

// routeTarget replaces the upstream path of a proxied call with one
// segment: the document's {path} stands for the rest of the path, slashes
// included, which an OpenAPI 3.0 path parameter cannot express to a
// router (the response does not depend on the value).
func routeTarget(target string) string {
	rest, ok := strings.CutPrefix(target, "/v1/proxy/")
	if !ok {
		return target
	}
	id, upstream, ok := strings.Cut(rest, "/")
	if !ok {
		return target
	}
	_, query, _ := strings.Cut(upstream, "?")
	return "/v1/proxy/" + id + "/upstream-path?" + query
}

func validateExchange(router routers.Router, ex exchange) error {
	req, err := http.NewRequest(ex.method, "http://credvault.invalid"+routeTarget(ex.target), nil)
	if err != nil {
		return err
	}
	req.Header = ex.header
	route, params, err := router.FindRoute(req)
	if err != nil {
		if ex.status == http.StatusNotFound || ex.status == http.StatusMethodNotAllowed {
			return nil // a path or method the document does not list (its description says so)
		}
		return fmt.Errorf("no operation in the document: %w", err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status:  ex.status,
		Header:  ex.respHeader,
		Body:    io.NopCloser(bytes.NewReader(ex.body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	return openapi3filter.ValidateResponse(context.Background(), in)
}
