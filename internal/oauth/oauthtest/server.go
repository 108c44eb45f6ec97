// Package oauthtest runs a real OAuth 2.0 authorization server in-process
// for credvault's tests: ory/fosite composed with its memory store
// (authorization code with PKCE S256, refresh token rotation, client
// credentials, RFC 7009 revocation, introspection), with token lifetimes
// in seconds. It counts the token requests it gets, and serves a small
// resource API that accepts only tokens fosite still considers valid.
package oauthtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/storage"
)

// Client credentials the server knows.
const (
	ClientID     = "credvault-test-client"
	ClientSecret = "test-client-secret-0123456789"
)

// Server is the authorization server and its resource API.
type Server struct {
	URL      string // http://127.0.0.1:port
	provider fosite.OAuth2Provider
	store    *storage.MemoryStore
	srv      *httptest.Server

	// TokenRequests counts every request to the token endpoint, answered
	// or not; Refreshes counts grant_type=refresh_token among them.
	TokenRequests atomic.Int64
	Refreshes     atomic.Int64
	ClientGrants  atomic.Int64
	Revocations   atomic.Int64
	// inFlight and MaxInFlight measure token request concurrency.
	inFlight    atomic.Int64
	MaxInFlight atomic.Int64

	// grants runs the provider's grants (authorize, token, revoke,
	// introspect) one at a time. fosite's MemoryStore (v0.49.0) is not safe
	// for concurrent grants: RevokeRefreshToken writes its RefreshTokens
	// map under the lock of another map, so two refreshes of one token
	// race (seen under go test -race in TestRewrapCoversOAuth). The
	// counters above count requests as they arrive, before this lock.
	grants sync.Mutex

	mu sync.Mutex
	// sentRefresh records every refresh token the client sent, in order.
	sentRefresh []string
	// issued records every access and refresh token handed out.
	issued []string
	// down makes the token endpoint answer 503 (the provider is failing).
	down bool
	// delay is added to every token request.
	delay time.Duration
	// deny makes the authorization endpoint answer access_denied.
	deny bool
	// issAdvertised puts authorization_response_iss_parameter_supported
	// in the metadata; issSent puts iss in authorization responses (RFC
	// 9207).
	issAdvertised, issSent bool
	// rejected are access tokens the resource API refuses although fosite
	// still accepts them (an upstream that revoked a grant on its side).
	rejected map[string]bool
	// refusals are why the resource API answered 401, in order (fosite's
	// error, never the token).
	refusals []string
}

// APIRefusals returns why the resource API refused each token it
// answered 401 to, in order: fosite's introspection error, or "rejected"
// for a token refused by RejectAtAPI.
func (s *Server) APIRefusals() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.refusals...)
}

// Options tune the server.
type Options struct {
	AccessTokenLifespan time.Duration // default 1h
	RedirectURIs        []string
}

// Start runs a server until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.AccessTokenLifespan <= 0 {
		opts.AccessTokenLifespan = time.Hour
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	cfg := &fosite.Config{
		AccessTokenLifespan:   opts.AccessTokenLifespan,
		RefreshTokenLifespan:  24 * time.Hour,
		AuthorizeCodeLifespan: 5 * time.Minute,
		EnforcePKCE:           true,
		GlobalSecret:          secret,
		// Every code exchange gets a refresh token, not only offline scope.
		RefreshTokenScopes: []string{},
		ScopeStrategy:      fosite.ExactScopeStrategy,
		// fosite fills these in lazily on first use, from whichever request
		// comes first: set them here so that concurrent requests do not race.
		AudienceMatchingStrategy: fosite.DefaultAudienceMatchingStrategy,
		JWKSFetcherStrategy:      fosite.NewDefaultJWKSFetcherStrategy(),
	}
	// bcrypt (even at its lowest cost) was half of the CPU of a
	// thousand-connection refresh run, all of it the test provider's;
	// a SHA-256 comparison keeps the provider cheap next to credvault.
	cfg.ClientSecretsHasher = sha256Hasher{}
	hashed, err := cfg.ClientSecretsHasher.Hash(context.Background(), []byte(ClientSecret))
	if err != nil {
		t.Fatal(err)
	}
	store := storage.NewMemoryStore()
	store.Clients[ClientID] = &fosite.DefaultClient{
		ID: ClientID, Secret: hashed, RedirectURIs: opts.RedirectURIs,
		GrantTypes:    []string{"authorization_code", "refresh_token", "client_credentials"},
		ResponseTypes: []string{"code"}, Scopes: []string{"read", "write", "offline_access"},
	}
	strategy := &compose.CommonStrategy{CoreStrategy: compose.NewOAuth2HMACStrategy(cfg)}
	s := &Server{store: store, provider: compose.Compose(cfg, store, strategy,
		compose.OAuth2AuthorizeExplicitFactory, compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2ClientCredentialsGrantFactory, compose.OAuth2PKCEFactory,
		compose.OAuth2TokenRevocationFactory, compose.OAuth2TokenIntrospectionFactory)}
	mux := http.NewServeMux()
	mux.HandleFunc("/authorize", s.authorize)
	mux.HandleFunc("/token", s.token)
	mux.HandleFunc("/revoke", s.revoke)
	mux.HandleFunc("/api/", s.api)
	mux.HandleFunc("/.well-known/oauth-authorization-server", s.metadata)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// SetRedirectURIs replaces the registered redirect URIs (credvault's
// callback is known only once it listens).
func (s *Server) SetRedirectURIs(uris ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.store.Clients[ClientID].(*fosite.DefaultClient).RedirectURIs = uris
}

// SetDown makes the token endpoint fail with 503 (true) or work again.
func (s *Server) SetDown(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

// SetDelay slows every token request down.
func (s *Server) SetDelay(d time.Duration) { s.mu.Lock(); s.delay = d; s.mu.Unlock() }

// SetIssuerIdentification sets what the server does of RFC 9207: advertise
// authorization_response_iss_parameter_supported in its metadata, and send
// iss (its URL) in authorization responses. Set it before an app discovers
// the metadata.
func (s *Server) SetIssuerIdentification(advertise, send bool) {
	s.mu.Lock()
	s.issAdvertised, s.issSent = advertise, send
	s.mu.Unlock()
}

// metadata is the RFC 8414 authorization server metadata, the issuer being
// the server's URL.
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	advertised := s.issAdvertised
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"issuer": s.URL, "authorization_endpoint": s.URL + "/authorize", "token_endpoint": s.URL + "/token",
		"revocation_endpoint": s.URL + "/revoke", "response_types_supported": []string{"code"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token", "client_credentials"},
		"token_endpoint_auth_methods_supported":          []string{"client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":               []string{"S256"},
		"authorization_response_iss_parameter_supported": advertised,
	})
}

// SetDeny makes the person refuse at the authorization endpoint.
func (s *Server) SetDeny(deny bool) { s.mu.Lock(); s.deny = deny; s.mu.Unlock() }

// RejectAtAPI makes the resource API answer 401 to tok.
func (s *Server) RejectAtAPI(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rejected == nil {
		s.rejected = map[string]bool{}
	}
	s.rejected[tok] = true
}

// SentRefreshTokens returns every refresh token credvault sent, in order.
func (s *Server) SentRefreshTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sentRefresh...)
}

// IssuedTokens returns every access and refresh token the server issued.
func (s *Server) IssuedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

// authorize is the authorization endpoint; the resource owner consents at
// once (or refuses when SetDeny), granting every requested scope.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s.mu.Lock()
	deny, sendIss := s.deny, s.issSent
	s.mu.Unlock()
	s.grants.Lock()
	defer s.grants.Unlock()
	ar, err := s.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		s.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	if deny {
		s.provider.WriteAuthorizeError(ctx, w, ar, fosite.ErrAccessDenied.WithDescription("The resource owner denied the request"))
		return
	}
	for _, sc := range ar.GetRequestedScopes() {
		ar.GrantScope(sc)
	}
	resp, err := s.provider.NewAuthorizeResponse(ctx, ar, &fosite.DefaultSession{Subject: "alice"})
	if err != nil {
		s.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	if sendIss {
		resp.AddParameter("iss", s.URL)
	}
	s.provider.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// token is the token endpoint, counted.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.TokenRequests.Add(1)
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.MaxInFlight.Load()
		if n <= m || s.MaxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	s.mu.Lock()
	down, delay := s.down, s.delay
	s.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	_ = r.ParseForm()
	switch r.PostForm.Get("grant_type") {
	case "refresh_token":
		s.Refreshes.Add(1)
		s.mu.Lock()
		s.sentRefresh = append(s.sentRefresh, r.PostForm.Get("refresh_token"))
		s.mu.Unlock()
	case "client_credentials":
		s.ClientGrants.Add(1)
	}
	if down {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"temporarily_unavailable","error_description":"the provider is down for a test"}`))
		return
	}
	ctx := r.Context()
	s.grants.Lock()
	defer s.grants.Unlock()
	ar, err := s.provider.NewAccessRequest(ctx, r, &fosite.DefaultSession{})
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	if ar.GetGrantTypes().ExactOne("client_credentials") {
		for _, sc := range ar.GetRequestedScopes() {
			ar.GrantScope(sc)
		}
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	s.mu.Lock()
	s.issued = append(s.issued, resp.GetAccessToken())
	if rt, ok := resp.GetExtra("refresh_token").(string); ok && rt != "" {
		s.issued = append(s.issued, rt)
	}
	s.mu.Unlock()
	s.provider.WriteAccessResponse(ctx, w, ar, resp)
}

// revoke is the RFC 7009 revocation endpoint.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	s.Revocations.Add(1)
	s.grants.Lock()
	defer s.grants.Unlock()
	err := s.provider.NewRevocationRequest(r.Context(), r)
	s.provider.WriteRevocationResponse(r.Context(), w, err)
}

// api is the resource server: 200 with the subject for a token fosite
// still accepts, 401 otherwise (expired, revoked, unknown).
func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer`)
		http.Error(w, `{"error":"no token"}`, http.StatusUnauthorized)
		return
	}
	_, _, err := s.provider.IntrospectToken(r.Context(), tok, fosite.AccessToken, &fosite.DefaultSession{})
	s.mu.Lock()
	refused := s.rejected[tok]
	s.mu.Unlock()
	if err != nil || refused {
		why := "rejected"
		if err != nil {
			why = fosite.ErrorToRFC6749Error(err).WithExposeDebug(true).GetDescription()
		}
		s.mu.Lock()
		which := "a token never issued"
		for i, t := range s.issued {
			if t == tok {
				which = fmt.Sprintf("token %d issued", i)
			}
		}
		s.refusals = append(s.refusals, time.Now().Format("15:04:05.000")+" "+which+": "+why)
		s.mu.Unlock()
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	// The token is echoed so that tests see credvault scrub it.
	_, _ = w.Write([]byte(`{"ok":true,"path":"` + url.PathEscape(r.URL.Path) + `","echo":"` + tok + `"}`))
}

// RefreshDirectly sends a refresh token to the token endpoint as a client
// would, outside credvault, and returns the HTTP status and error code:
// how a test shows that the provider refuses a reused refresh token.
func (s *Server) RefreshDirectly(refreshToken string) (int, string) {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(ClientID, ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var body struct {
		Error string `json:"error"`
	}
	_ = jsonDecode(resp, &body)
	return resp.StatusCode, body.Error
}

func jsonDecode(resp *http.Response, v any) error {
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}

// sha256Hasher is fosite's client secret hasher for tests: SHA-256,
// compared in constant time.
type sha256Hasher struct{}

func (sha256Hasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	h := sha256.Sum256(data)
	return h[:], nil
}

func (sha256Hasher) Compare(_ context.Context, hash, data []byte) error {
	h := sha256.Sum256(data)
	if subtle.ConstantTimeCompare(hash, h[:]) != 1 {
		return fosite.ErrInvalidClient
	}
	return nil
}
