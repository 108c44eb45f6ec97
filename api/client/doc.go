// Package client is the Go client of credvault's HTTP API.
//
// client.gen.go is generated from api/openapi.yaml by oapi-codegen (see
// generate.go; regenerate with `go generate ./api/client`). The rest is
// written by hand where generation does not fit:
//
//   - New builds a generated client that authenticates with an API key and
//     sends the proxy's nested paths intact (ProxyGet(ctx, id,
//     "v1/charges") calls /v1/proxy/{id}/v1/charges, not v1%2Fcharges).
//   - Check turns any answer that is not 2xx into an *APIError carrying the
//     status, credvault's error code and the request id.
//   - ProxyTransport is an http.RoundTripper that sends ordinary requests
//     through /v1/proxy/{credential_id} with their path and query intact,
//     so that an existing http.Client calls a third-party API with a
//     credential it never sees.
//   - Middleware (net/http) authenticates a service's inbound requests
//     through credvault, with a short local cache; Authenticate is the
//     same check for other frameworks. The Fiber adapter lives in
//     api/client/fibermw, so that this package imports only the standard
//     library and the generated code's runtime, never Fiber or fasthttp.
package client
