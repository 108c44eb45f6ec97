// Package httpapi is credvault's HTTP surface on Fiber: routing, the auth
// middleware, request ids, metrics, logging and the one error handler.
// Handlers parse and validate input, call the domain services with the
// request's context, and return errors for the error handler to render.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/textproto"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"credvault/internal/credvault"
	"credvault/internal/telemetry"
)

// DefaultBodyLimit caps request bodies. Credentials and key requests are
// small; 1 MiB leaves room for proxied workflow payloads without letting
// a client pin memory.
const DefaultBodyLimit = 1 << 20

// ReadinessCheck is one thing /readyz reports on, such as "postgres" or
// "vault". Check returns nil when it is usable; its error's caller-safe
// message is shown. A Degradable check that fails leaves /readyz at 200
// with its name in "degraded" (the instance still serves its hot paths
// from caches); any failing check makes /readyz?strict=1 answer 503.
type ReadinessCheck struct {
	Name       string
	Check      func(context.Context) error
	Degradable bool
}

// Services are the domain services the handlers call.
type Services struct {
	Users       *credvault.UserService
	Keys        *credvault.APIKeyService
	Endpoints   *credvault.EndpointService
	Verify      *credvault.VerifyService
	Verifier    credvault.KeyVerifier
	Credentials *credvault.CredentialService
	Audit       *credvault.AuditService
	Rewrap      *credvault.RewrapService
	Proxy       *credvault.ProxyService
	Sessions    *credvault.SessionService
	Webhooks    *credvault.WebhookService
	Monitors    *credvault.MonitorService
	// Integrations groups keys (/v1/integrations).
	Integrations *credvault.IntegrationService
	// OAuth serves OAuth apps, oauth2 credentials and the callback; nil
	// leaves those routes out.
	OAuth *credvault.OAuthService
	// JWKS publishes the JWT signing key's public keys; nil serves none.
	JWKS JWKSource
}

// JWKSource is the JWT signing key's public half (apikey.SigningKeys).
type JWKSource interface {
	JWKS() jose.JSONWebKeySet
}

// RefusalCounter counts refusals in memory on the hot path; it must not
// block. keyID is "" for a key that was not found.
type RefusalCounter interface {
	Refused(orgID, keyID string, rateLimited bool)
}

// Console is the web console, mounted at "/" next to /v1
// (internal/console implements it).
type Console interface {
	Mount(r fiber.Router)
	// SessionCookieName is the cookie a console session lives in.
	SessionCookieName() string
}

// Config holds what the HTTP layer needs from the outside.
type Config struct {
	Services    Services
	AuthHeaders []string // headers a key is read from, in order, as named in messages (CREDVAULT_AUTH_HEADERS)
	KeyPrefix   string   // CREDVAULT_KEY_PREFIX, to spot keys put in URLs

	Logger    *slog.Logger
	Registry  *prometheus.Registry // metrics are registered here; nil = a fresh one
	Telemetry *telemetry.Metrics   // verification outcomes and the rest; nil = not counted
	Readiness []ReadinessCheck
	// Refusals, when set, counts every refused request and every refused
	// key of POST /v1/api-keys/verify in memory, for the refusal-spike
	// and rate-limit events (events.Counter).
	Refusals        RefusalCounter
	BodyLimit       int           // bytes; 0 = DefaultBodyLimit
	ShutdownTimeout time.Duration // how long in-flight requests may take to drain; 0 = 30s

	// Console, when set, serves the web console at "/".
	Console Console
	// PublicURL is CREDVAULT_PUBLIC_URL: sign-in links the API returns
	// start with it ("" = the request's own scheme and host).
	PublicURL string
	// JWTIssuer is the iss of this installation's JWT API keys, published
	// in the JWKS ("issuer") for offline verifiers.
	JWTIssuer string

	// testRoutes lets this package's tests mount extra handlers before
	// the catch-all 404.
	testRoutes func(fiber.Router)
}

// Server is credvault's HTTP API.
type Server struct {
	app      *fiber.App
	log      *slog.Logger
	cfg      Config
	metrics  *metrics
	known    *routeTable // the routes above, for 404 and 405 before authentication
	authErrs authErrors
	refusals *refusalLog
	// authHeaderSet holds the canonical names of cfg.AuthHeaders, which
	// the proxy never forwards.
	authHeaderSet map[string]bool
	// pages are the paths that answer HTML (the console's, the OAuth
	// callback), for the framing guard's refusals.
	pages pagePaths
	// keyPrefixes are the starts of a live and a test key
	// ("cv_live_", "cv_test_"), which keyInQuery looks for.
	keyPrefixes [2]string
}

// NewServer builds the Fiber app with every route of the API.
func NewServer(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = DefaultBodyLimit
	}
	if len(cfg.AuthHeaders) == 0 {
		cfg.AuthHeaders = []string{"X-API-Key", fiber.HeaderAuthorization}
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = "cv"
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: newMetrics(cfg.Registry), authErrs: newAuthErrors(cfg.AuthHeaders),
		keyPrefixes: [2]string{cfg.KeyPrefix + "_live_", cfg.KeyPrefix + "_test_"}}
	s.refusals = newRefusalLog(cfg.Logger, cfg.Telemetry.LogLinesSuppressed)
	if cfg.Refusals != nil {
		s.refusals.counter = cfg.Refusals.Refused
	}
	s.authHeaderSet = map[string]bool{}
	for _, h := range cfg.AuthHeaders {
		s.authHeaderSet[textproto.CanonicalMIMEHeaderKey(h)] = true
	}
	s.app = fiber.New(fiber.Config{
		AppName:               "credvault",
		BodyLimit:             cfg.BodyLimit,
		ReadBufferSize:        readBufferSize,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          60 * time.Second,
		IdleTimeout:           120 * time.Second,
		ErrorHandler:          errorHandler(cfg.Logger, s.refusals),
		DisableStartupMessage: true,
		JSONEncoder:           marshalJSON,
	})
	// The request time is read when observe asks for it, not for every
	// request before the handler as well.
	s.app.Server().LazyRequestTime = true
	s.routes()
	return s
}

// RequestID returns the id credvault gave the request (the X-Request-Id
// response header), for the console's logs and audit events.
func RequestID(c *fiber.Ctx) string { return requestID(c) }

// Handler exposes the Fiber app, for tests that drive it in-process.
func (s *Server) Handler() *fiber.App { return s.app }

// Serve answers requests on ln until ctx ends (each connection's request
// framing checked by framingConn), then stops accepting new
// connections and waits (up to ShutdownTimeout) for in-flight requests to
// finish. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.app.Listener(framingListener{Listener: ln, pages: s.pages}) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("http: shutting down; draining in-flight requests")
	shutErr := s.app.ShutdownWithTimeout(s.cfg.ShutdownTimeout)
	// A cancel that comes before the server has begun accepting finds no
	// listener for the shutdown to close, and the listener served after it
	// would keep Serve waiting for ever: closing it here ends that serving
	// at its first accept (harmless when the shutdown closed it already).
	ln.Close() // #nosec G104 -- already closed by the shutdown, or closed to end a late start; nothing to add
	if shutErr != nil && !errors.Is(shutErr, context.DeadlineExceeded) {
		return shutErr
	}
	if err := <-errc; err != nil {
		return err
	}
	s.log.Info("http: stopped")
	return nil
}

// marshalJSON is encoding/json without HTML escaping: the API speaks JSON
// to programs, and messages such as "Bearer <key>" should read as written.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
