package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

// handler is a console page handler: it gets the request and the view
// prepared with the signed-in person and the form token.
type handler func(ctx *fiber.Ctx, v *view) error

// page wraps a handler that needs a signed-in person: security headers,
// the session (else a redirect to /sign-in), and for state-changing
// requests the Origin and CSRF checks before anything is written.
func (c *Console) page(h handler, mutates bool) fiber.Handler {
	return func(ctx *fiber.Ctx) error {
		securityHeaders(ctx)
		token := ctx.Cookies(c.cookie)
		p, sess, err := c.cfg.Services.Sessions.Authenticate(ctx.UserContext(), token)
		if err != nil {
			if credvault.ErrorCode(err) == credvault.EUNAUTHORIZED {
				c.clearCookie(ctx, c.cookie)
				if mutates {
					return c.fail(ctx, &view{}, forbidden("your session has ended; sign in again"))
				}
				return ctx.Redirect("/sign-in", fiber.StatusSeeOther)
			}
			return c.fail(ctx, &view{}, err)
		}
		v := &view{CSRF: csrfToken(token), Me: &me{UserID: sess.UserID, Email: sess.Email, Role: sess.Role,
			Manager: p.Manager(), ViaKey: sess.Method == credvault.SignInAPIKey}}
		if mutates {
			if err := c.checkPost(ctx, token); err != nil {
				c.log.Warn("console: refused a cross-site or tokenless form post", "request_id", c.cfg.RequestID(ctx))
				return c.fail(ctx, v, err)
			}
		}
		ctx.SetUserContext(credvault.WithCaller(ctx.UserContext(), p, c.cfg.RequestID(ctx)))
		return h(ctx, v)
	}
}

// public wraps the sign-in pages: security headers, a pre-session cookie
// whose derived token the sign-in forms carry (so that nobody can sign a
// victim into the attacker's account: login CSRF), and on POST the Origin
// and CSRF checks.
func (c *Console) public(h handler) fiber.Handler {
	return func(ctx *fiber.Ctx) error {
		securityHeaders(ctx)
		pre := ctx.Cookies(c.preCookie)
		if ctx.Method() == fiber.MethodPost {
			if err := c.checkPost(ctx, pre); err != nil {
				return c.fail(ctx, &view{}, err)
			}
		} else if !validToken(pre) {
			tok, _, err := credvault.NewSessionToken()
			if err != nil {
				return c.fail(ctx, &view{}, err)
			}
			pre = tok.Reveal()
			c.setCookie(ctx, c.preCookie, pre, time.Hour)
		}
		return h(ctx, &view{CSRF: csrfToken(pre), NoIndex: true})
	}
}

// validToken reports whether s looks like a token credvault made (43
// base64url characters), so that a planted cookie of another shape is
// replaced.
func validToken(s string) bool {
	if len(s) != 43 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}

// csrfToken derives a form token from the secret cookie value (the
// synchronizer-token pattern without server state: OWASP CSRF Prevention
// Cheat Sheet, "signed double-submit cookie"). A page on another origin can
// neither read the cookie nor compute the token.
func csrfToken(secret string) string {
	if secret == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("credvault console csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

var (
	errCrossOrigin = forbidden("this form was sent from another site; open the console at its own address and try again")
	errCSRF        = forbidden("this form is missing its security token or the token does not match; reload the page and try again")
)

func forbidden(msg string) error {
	return &credvault.Error{Code: credvault.EFORBIDDEN, Reason: "csrf", Message: msg}
}

// checkPost refuses a state-changing request from another origin: the
// Origin header must be the console's own, and the form must carry the
// token derived from the cookie. Browsers send "Origin: null" for a form
// posted from a page whose Referrer-Policy is no-referrer (as the console's
// are; Fetch standard, "append a request Origin header"), and may send no
// Origin at all; then Sec-Fetch-Site, which every current browser sends,
// must say same-origin (OWASP CSRF Prevention Cheat Sheet, "Fetch
// Metadata"). A request with neither relies on the token alone.
func (c *Console) checkPost(ctx *fiber.Ctx, secret string) error {
	origin := ctx.Get(fiber.HeaderOrigin)
	site := ctx.Get("Sec-Fetch-Site")
	switch {
	case origin != "" && origin != "null":
		if origin != c.expectedOrigin(ctx) {
			return errCrossOrigin
		}
	case site != "":
		if site != "same-origin" {
			return errCrossOrigin
		}
	case origin == "null":
		return errCrossOrigin
	}
	want := csrfToken(secret)
	got := ctx.FormValue("csrf")
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errCSRF
	}
	return nil
}

// expectedOrigin is PublicURL's origin, or the request's own scheme and
// Host when none is configured.
func (c *Console) expectedOrigin(ctx *fiber.Ctx) string {
	if c.origin != "" {
		return c.origin
	}
	return ctx.Protocol() + "://" + ctx.Hostname()
}

// setCookie sets an HttpOnly, SameSite=Lax cookie on "/" (Secure behind
// https, as the __Host- prefix requires).
func (c *Console) setCookie(ctx *fiber.Ctx, name, value string, maxAge time.Duration) {
	ctx.Cookie(&fiber.Cookie{Name: name, Value: value, Path: "/", HTTPOnly: true, Secure: c.secure,
		SameSite: fiber.CookieSameSiteLaxMode, MaxAge: int(maxAge / time.Second)})
}

func (c *Console) clearCookie(ctx *fiber.Ctx, name string) {
	ctx.Cookie(&fiber.Cookie{Name: name, Value: "", Path: "/", HTTPOnly: true, Secure: c.secure,
		SameSite: fiber.CookieSameSiteLaxMode, MaxAge: -1, Expires: time.Unix(1, 0)})
}

func (c *Console) attempt(ctx *fiber.Ctx) credvault.SignInAttempt {
	return credvault.SignInAttempt{RemoteAddr: ctx.IP(), RequestID: c.cfg.RequestID(ctx)}
}

// limited answers 429 when the client address has used up its sign-in
// attempts.
func (c *Console) limited(ctx *fiber.Ctx, v *view) (bool, error) {
	if c.limiter.allow(strings.Clone(ctx.IP()), time.Now()) {
		return false, nil
	}
	ctx.Set(fiber.HeaderRetryAfter, "60")
	v.Title, v.Error = "Sign in", "Too many sign-in attempts from your address. Wait a minute and try again."
	return true, c.render(ctx, fiber.StatusTooManyRequests, "signin", v)
}

func (c *Console) handleHome(ctx *fiber.Ctx, v *view) error {
	return ctx.Redirect("/credentials", fiber.StatusSeeOther)
}

func (c *Console) handleSignIn(ctx *fiber.Ctx, v *view) error {
	v.Title = "Sign in"
	return c.render(ctx, fiber.StatusOK, "signin", v)
}

// handleSignInKey signs in with a personal API key sent in the form body
// (never in the URL).
func (c *Console) handleSignInKey(ctx *fiber.Ctx, v *view) error {
	if stop, err := c.limited(ctx, v); stop {
		return err
	}
	key, err := formKey(ctx)
	if err != nil {
		v.Title, v.Error = "Sign in", credvault.ErrorMessage(err)
		return c.render(ctx, statusOf(err), "signin", v)
	}
	_, tok, err := c.cfg.Services.Sessions.SignInWithKey(ctx.UserContext(), key, c.attempt(ctx))
	if err != nil {
		v.Title, v.Error, v.Invalid = "Sign in", credvault.ErrorMessage(err), "api_key"
		return c.render(ctx, statusOf(err), "signin", v)
	}
	return c.signedIn(ctx, tok)
}

// formKey reads the sign-in form's api_key from every place FormValue
// looks (query string, form body, multipart form): a sign-in is with
// exactly one key, so two different values are a 400 ambiguous_api_key
// (identical copies are one key).
func formKey(ctx *fiber.Ctx) (string, error) {
	var vals [][]byte
	vals = append(vals, ctx.Context().QueryArgs().PeekMulti("api_key")...)
	vals = append(vals, ctx.Context().PostArgs().PeekMulti("api_key")...)
	if mf, err := ctx.MultipartForm(); err == nil {
		for _, v := range mf.Value["api_key"] {
			vals = append(vals, []byte(v))
		}
	}
	key := ""
	for _, v := range vals {
		v := strings.TrimSpace(string(v))
		switch {
		case v == "":
		case key == "":
			key = v
		case v != key:
			return "", &credvault.Error{Code: credvault.EINVALID, Reason: "ambiguous_api_key",
				Message: "the form carries different API keys in field \"api_key\"; sign in with exactly one key"}
		}
	}
	return key, nil
}

// handleSignInLinkPage shows a button that redeems the link: a GET never
// uses it up, so link scanners and previews cannot burn it.
func (c *Console) handleSignInLinkPage(ctx *fiber.Ctx, v *view) error {
	v.Title = "Sign in"
	v.Data = ctx.Params("token")
	return c.render(ctx, fiber.StatusOK, "signin_link", v)
}

func (c *Console) handleSignInLink(ctx *fiber.Ctx, v *view) error {
	if stop, err := c.limited(ctx, v); stop {
		return err
	}
	_, tok, err := c.cfg.Services.Sessions.SignInWithLink(ctx.UserContext(), ctx.FormValue("token"), c.attempt(ctx))
	if err != nil {
		v.Title, v.Error = "Sign in", credvault.ErrorMessage(err)
		return c.render(ctx, statusOf(err), "signin", v)
	}
	return c.signedIn(ctx, tok)
}

// signedIn sets the session cookie (a new value: no session fixation) and
// drops the pre-session one.
func (c *Console) signedIn(ctx *fiber.Ctx, tok credvault.Secret) error {
	c.setCookie(ctx, c.cookie, tok.Reveal(), credvault.SessionMaxLifetime)
	c.clearCookie(ctx, c.preCookie)
	return ctx.Redirect("/credentials", fiber.StatusSeeOther)
}

func (c *Console) handleSignOut(ctx *fiber.Ctx, v *view) error {
	if err := c.cfg.Services.Sessions.SignOut(ctx.UserContext(), ctx.Cookies(c.cookie)); err != nil {
		return c.fail(ctx, v, err)
	}
	c.clearCookie(ctx, c.cookie)
	return ctx.Redirect("/sign-in", fiber.StatusSeeOther)
}
