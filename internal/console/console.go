// Package console is credvault's web console: server-rendered pages
// (html/template, assets embedded with go:embed) for credentials, sharing,
// API keys, endpoints, members and the audit log. Every page works without
// JavaScript; the small embedded script only adds copy buttons and confirm
// dialogs.
//
// The console calls the same internal/credvault services as the HTTP API,
// with the same Principal (built from the session), so both follow one set
// of authorization rules; it has none of its own beyond hiding controls a
// service would refuse anyway.
package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/time/rate"

	"credvault/internal/credvault"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Services are the domain services the pages call.
type Services struct {
	Sessions    *credvault.SessionService
	Users       *credvault.UserService
	Keys        *credvault.APIKeyService
	Endpoints   *credvault.EndpointService
	Credentials *credvault.CredentialService
	Proxy       *credvault.ProxyService
	Audit       *credvault.AuditService
	Stats       *credvault.StatsService
	Webhooks    *credvault.WebhookService
	Monitors    *credvault.MonitorService
	// Integrations and Activity serve the Integrations and Activity pages.
	Integrations *credvault.IntegrationService
	Activity     *credvault.ActivityService
	// OAuth connects OAuth 2.0 services; nil hides Connect and Reconnect.
	OAuth *credvault.OAuthService
}

// Config holds what the console needs from the outside.
type Config struct {
	Services Services
	// PublicURL is CREDVAULT_PUBLIC_URL, the origin browsers use. With an
	// https URL the session cookie is Secure and named with the __Host-
	// prefix. Empty: the request's own scheme and host are trusted as the
	// origin (development on loopback).
	PublicURL string
	Logger    *slog.Logger
	// SignInPerMinute bounds sign-in attempts per client address; 0 = 10.
	SignInPerMinute int
	// RequestID returns the request id the HTTP layer gave the request.
	RequestID func(*fiber.Ctx) string
}

// Console serves the pages.
type Console struct {
	cfg       Config
	log       *slog.Logger
	pages     map[string]*template.Template
	secure    bool
	origin    string // scheme://host[:port] of PublicURL, or ""
	cookie    string // session cookie name
	preCookie string // pre-session (sign-in form) CSRF cookie name
	limiter   *addrLimiter
	static    fs.FS
}

// New parses the templates and returns the console. Errors: a template
// that does not parse, or a PublicURL that is not an http(s) URL.
func New(cfg Config) (*Console, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SignInPerMinute <= 0 {
		cfg.SignInPerMinute = 10
	}
	if cfg.RequestID == nil {
		cfg.RequestID = func(*fiber.Ctx) string { return "" }
	}
	c := &Console{cfg: cfg, log: cfg.Logger, cookie: "cv_session", preCookie: "cv_csrf",
		limiter: newAddrLimiter(rate.Limit(float64(cfg.SignInPerMinute)/60), cfg.SignInPerMinute)}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, credvault.Errorf(credvault.EINVALID, "CREDVAULT_PUBLIC_URL must be an http:// or https:// URL such as https://vault.example.com")
		}
		c.origin = u.Scheme + "://" + u.Host
		if u.Scheme == "https" {
			c.secure = true
			c.cookie, c.preCookie = "__Host-cv_session", "__Host-cv_csrf"
		}
	}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if c.static, err = fs.Sub(staticFS, "static"); err != nil {
		return nil, err
	}
	return c, nil
}

// SessionCookieName is the cookie the session lives in ("__Host-cv_session"
// behind https, "cv_session" otherwise).
func (c *Console) SessionCookieName() string { return c.cookie }

// pageNames are the templates under templates/, each rendered inside
// layout.html.
var pageNames = []string{
	"signin", "signin_link", "error", "confirm", "reveal",
	"credentials", "credential_new", "credential", "credential_delete", "oauth_connect",
	"apikeys", "apikey_new", "apikey",
	"endpoints", "members", "audit",
	"webhooks", "webhook",
	"integrations", "integration", "activity",
}

func parsePages() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

// Mount registers the console's routes on r (credvault's Fiber app, at
// "/", next to /v1).
func (c *Console) Mount(r fiber.Router) {
	r.Get("/static/:file", c.handleStatic)
	r.Get("/favicon.ico", func(ctx *fiber.Ctx) error { return c.serveStatic(ctx, "favicon.ico") })

	r.Get("/", c.page(c.handleHome, false))
	r.Get("/sign-in", c.public(c.handleSignIn))
	r.Post("/sign-in/key", c.public(c.handleSignInKey))
	r.Get("/sign-in/link/:token", c.public(c.handleSignInLinkPage))
	r.Post("/sign-in/link", c.public(c.handleSignInLink))
	r.Post("/sign-out", c.page(c.handleSignOut, true))

	r.Get("/credentials", c.page(c.handleCredentials, false))
	r.Get("/credentials/new", c.page(c.handleCredentialNew, false))
	r.Post("/credentials", c.page(c.handleCredentialCreate, true))
	r.Get("/credentials/:id", c.page(c.handleCredential, false))
	r.Post("/credentials/:id/settings", c.page(c.handleCredentialSettings, true))
	r.Post("/credentials/:id/sharing", c.page(c.handleCredentialSharing, true))
	r.Post("/credentials/:id/test", c.page(c.handleCredentialTest, true))
	r.Post("/credentials/:id/delete", c.page(c.handleCredentialDelete, true))
	r.Post("/credentials/:id/connect", c.page(c.handleOAuthReconnect, true))
	r.Post("/oauth-connections", c.page(c.handleOAuthConnect, true))

	r.Get("/api-keys", c.page(c.handleAPIKeys, false))
	r.Get("/api-keys/new", c.page(c.handleAPIKeyNew, false))
	r.Post("/api-keys", c.page(c.handleAPIKeyCreate, true))
	r.Get("/api-keys/:id", c.page(c.handleAPIKey, false))
	r.Post("/api-keys/:id/roll", c.page(c.handleAPIKeyRoll, true))
	r.Get("/api-keys/:id/revoke", c.page(c.handleAPIKeyRevokeConfirm, false))
	r.Post("/api-keys/:id/revoke", c.page(c.handleAPIKeyRevoke, true))
	r.Post("/api-keys/:id/disable", c.page(c.handleAPIKeySwitch(false), true))
	r.Post("/api-keys/:id/enable", c.page(c.handleAPIKeySwitch(true), true))

	r.Get("/integrations", c.page(c.handleIntegrations, false))
	r.Post("/integrations", c.page(c.handleIntegrationCreate, true))
	r.Get("/integrations/:id", c.page(c.handleIntegration, false))
	r.Post("/integrations/:id/disable", c.page(c.handleIntegrationSwitch(false), true))
	r.Post("/integrations/:id/enable", c.page(c.handleIntegrationSwitch(true), true))

	r.Get("/activity", c.page(c.handleActivity, false))

	r.Get("/endpoints", c.page(c.handleEndpoints, false))
	r.Post("/endpoints", c.page(c.handleEndpointCreate, true))
	r.Post("/endpoints/:id", c.page(c.handleEndpointUpdate, true))
	r.Get("/endpoints/:id/delete", c.page(c.handleEndpointDeleteConfirm, false))
	r.Post("/endpoints/:id/delete", c.page(c.handleEndpointDelete, true))

	r.Get("/members", c.page(c.handleMembers, false))
	r.Post("/members", c.page(c.handleMemberCreate, true))
	r.Post("/members/:id/role", c.page(c.handleMemberRole, true))
	r.Get("/members/:id/remove", c.page(c.handleMemberRemoveConfirm, false))
	r.Post("/members/:id/remove", c.page(c.handleMemberRemove, true))
	r.Post("/members/:id/sign-in-link", c.page(c.handleMemberSignInLink, true))

	r.Get("/audit", c.page(c.handleAudit, false))

	r.Post("/credentials/:id/monitor", c.page(c.handleCredentialMonitor, true))
	r.Get("/webhooks", c.page(c.handleWebhooks, false))
	r.Post("/webhooks", c.page(c.handleWebhookCreate, true))
	r.Get("/webhooks/:id", c.page(c.handleWebhook, false))
	r.Post("/webhooks/:id", c.page(c.handleWebhookUpdate, true))
	r.Post("/webhooks/:id/test", c.page(c.handleWebhookTest, true))
	r.Post("/webhooks/:id/deliveries/:delivery/redeliver", c.page(c.handleWebhookRedeliver, true))
	r.Get("/webhooks/:id/delete", c.page(c.handleWebhookDeleteConfirm, false))
	r.Post("/webhooks/:id/delete", c.page(c.handleWebhookDelete, true))
}

// view is what every page template gets.
type view struct {
	Title  string
	Nav    string // the active section
	Me     *me
	CSRF   string
	Notice string
	Error  string
	// Invalid is the form field Error names (marked aria-invalid by
	// {{invalid $ "name"}}); "" when none.
	Invalid string
	Data    any
	NoIndex bool
}

// me is the signed-in person, for the header and for hiding controls the
// services would refuse.
type me struct {
	UserID  string
	Email   string
	Role    credvault.Role
	Manager bool
	ViaKey  bool
}

// securityHeaders go on every console response (OWASP Secure Headers):
// a CSP with no inline script or style and no framing, no MIME sniffing,
// no Referer (links carry ids and sign-in tokens).
func securityHeaders(c *fiber.Ctx) {
	c.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("X-Frame-Options", "DENY")
	c.Set("Cross-Origin-Opener-Policy", "same-origin")
	c.Set("Cross-Origin-Resource-Policy", "same-origin")
	c.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
}

// render writes a page with status. Pages never go into a shared cache;
// those showing a secret once say no-store (render sets it for all
// signed-in pages, which all show data of one person's org).
func (c *Console) render(ctx *fiber.Ctx, status int, name string, v *view) error {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if err := c.execute(buf, name, v); err != nil {
		c.log.Error("console: rendering a page failed", "page", name, "error", err.Error())
		return ctx.Status(fiber.StatusInternalServerError).SendString("the page could not be rendered")
	}
	ctx.Set(fiber.HeaderCacheControl, "no-store")
	ctx.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return ctx.Status(status).Send(buf.Bytes())
}

// execute renders page name with v into w.
func (c *Console) execute(w io.Writer, name string, v *view) error {
	t, ok := c.pages[name]
	if !ok {
		return fmt.Errorf("no page %q", name)
	}
	return t.Execute(w, v)
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// handleStatic serves the embedded stylesheet, script and icons.
func (c *Console) handleStatic(ctx *fiber.Ctx) error {
	return c.serveStatic(ctx, ctx.Params("file"))
}

// serveStatic serves one embedded file by name; 404 for any other.
func (c *Console) serveStatic(ctx *fiber.Ctx, name string) error {
	securityHeaders(ctx)
	var ctype string
	switch {
	case strings.HasSuffix(name, ".css"):
		ctype = "text/css; charset=utf-8"
	case strings.HasSuffix(name, ".js"):
		ctype = "text/javascript; charset=utf-8"
	case strings.HasSuffix(name, ".svg"):
		ctype = "image/svg+xml"
	case strings.HasSuffix(name, ".ico"):
		ctype = "image/x-icon"
	default:
		return ctx.SendStatus(fiber.StatusNotFound)
	}
	b, err := fs.ReadFile(c.static, name)
	if err != nil {
		return ctx.SendStatus(fiber.StatusNotFound)
	}
	ctx.Set(fiber.HeaderContentType, ctype)
	ctx.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return ctx.Send(b)
}

// addrLimiter is a token bucket per client address for sign-in attempts
// (OWASP Authentication Cheat Sheet: throttle guessing). It forgets every
// address when it holds too many, which errs on the side of letting
// attempts through rather than growing without bound.
type addrLimiter struct {
	mu    sync.Mutex
	every rate.Limit
	burst int
	m     map[string]*rate.Limiter
}

func newAddrLimiter(every rate.Limit, burst int) *addrLimiter {
	return &addrLimiter{every: every, burst: burst, m: map[string]*rate.Limiter{}}
}

func (l *addrLimiter) allow(addr string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.m[addr]
	if !ok {
		if len(l.m) >= 100_000 {
			clear(l.m)
		}
		lim = rate.NewLimiter(l.every, l.burst)
		l.m[addr] = lim
	}
	return lim.AllowN(now, 1)
}
