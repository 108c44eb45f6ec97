package credvault

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// RefreshPolicy tunes token refresh. Zero fields take the defaults.
type RefreshPolicy struct {
	// Concurrency bounds the token requests the proactive job has in
	// flight at once, per replica (CREDVAULT_OAUTH_REFRESH_CONCURRENCY,
	// default 8).
	Concurrency int
	// BackoffBase and BackoffCap shape the exponential backoff after a
	// transient failure: base * 2^(failures-1), at most the cap, with
	// jitter down to half of it (defaults 5s and 10 minutes).
	BackoffBase time.Duration
	BackoffCap  time.Duration
	// Now is the clock (tests move it); nil is time.Now.
	Now func() time.Time
}

func (s *OAuthService) now() time.Time {
	if s.Refresh.Now != nil {
		return s.Refresh.Now().UTC()
	}
	return time.Now().UTC()
}

// RefreshMargin is how long before expiry a token is refreshed: about 10%
// of its lifetime, at least 30 seconds, but never more than half of it.
func RefreshMargin(lifetime time.Duration) time.Duration {
	m := max(lifetime/10, 30*time.Second)
	return min(m, lifetime/2)
}

// Triggers of a refresh, as audit events name them.
const (
	triggerProactive = "proactive"
	triggerExpired   = "on_demand"
	triggerRejected  = "after_401"
	triggerReconnect = "reconnect"
)

// flightGroup collapses concurrent refreshes of one credential in this
// process into one; the row lock does the same across replicas.
type flightGroup struct {
	once sync.Once
	g    *singleflight.Group
	// provider bounds this replica's token requests in flight to
	// RefreshPolicy.Concurrency, whatever asks for them.
	provider chan struct{}
}

func (s *OAuthService) group() *singleflight.Group {
	s.flight.once.Do(func() {
		s.flight.g = &singleflight.Group{}
		s.flight.provider = make(chan struct{}, s.concurrency())
	})
	return s.flight.g
}

func (s *OAuthService) concurrency() int {
	if s.Refresh.Concurrency > 0 {
		return s.Refresh.Concurrency
	}
	return 8
}

// providerSlot waits for a free token request slot; release gives it back.
func (s *OAuthService) providerSlot(ctx context.Context) (release func(), err error) {
	s.group()
	select {
	case s.flight.provider <- struct{}{}:
		return func() { <-s.flight.provider }, nil
	case <-ctx.Done():
		return nil, Wrap(EUNAVAILABLE, ctx.Err(), "no token request slot in time")
	}
}

type refreshed struct {
	cred  *Credential
	token Secret
}

// Token returns a usable access token for an oauth2 credential the caller
// already loaded: after a refresh when c's token expired, or (rejected >
// 0) when the upstream refused token version rejected and nobody replaced
// it yet. Callers in this process share one refresh, replicas one token
// request (the row lock). Errors: ECONFLICT oauth_not_connected /
// oauth_needs_reauth; EUNAVAILABLE oauth_refresh_unavailable with
// RetryAfter while the provider fails; EUNAVAILABLE (Vault, PostgreSQL).
func (s *OAuthService) Token(ctx context.Context, c *Credential, rejected int64) (*Credential, Secret, error) {
	trigger := triggerExpired
	if rejected > 0 {
		trigger = triggerRejected
	}
	key := c.ID + "|" + strconv.FormatInt(rejected, 10)
	v, err, _ := s.group().Do(key, func() (any, error) {
		// The shared refresh must not end because the first caller left.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
		defer cancel()
		cred, tok, err := s.refresh(rctx, c.OrgID, c.ID, trigger, rejected, nil)
		return refreshed{cred, tok}, err
	})
	if err != nil {
		return nil, Secret{}, err
	}
	r := v.(refreshed)
	return r.cred, r.token, nil
}

// refresh runs one refresh decision under the credential's cluster-wide
// lock: it re-reads the credential, requests a token only if still needed,
// and stores the outcome. It returns the credential as stored and its
// usable access token (zero for a proactive run that skipped).
func (s *OAuthService) refresh(ctx context.Context, orgID, id, trigger string, rejected int64, apps *appCache) (*Credential, Secret, error) {
	var (
		out   *Credential
		token Secret
		from  string // the connection's status when the lock was taken
	)
	locked, err := s.Store.LockOAuthCredential(ctx, orgID, id, trigger != triggerProactive, func(c *Credential, mark func() error) (*OAuthWrite, error) {
		out = c
		o, now := c.OAuth, s.now()
		if o == nil {
			return nil, Errorf(EINVALID, "credential %s is not an OAuth connection", c.ID)
		}
		from = o.Status
		switch o.Status {
		case OAuthPending:
			if trigger != triggerReconnect {
				return nil, notConnected(c)
			}
		case OAuthNeedsReauth:
			if trigger != triggerReconnect {
				return nil, needsReauth(c)
			}
		}
		var need bool
		switch trigger {
		case triggerProactive:
			need = o.RefreshAt != nil && !now.Before(*o.RefreshAt)
		case triggerExpired:
			need = !o.usable(now)
		case triggerRejected:
			need = o.TokenVersion == rejected
		case triggerReconnect:
			need = true
		}
		if !need {
			return nil, nil
		}
		if trigger != triggerReconnect && o.NextAttemptAt != nil && now.Before(*o.NextAttemptAt) {
			if trigger == triggerProactive {
				return nil, nil
			}
			return nil, refreshUnavailable(c, o.NextAttemptAt.Sub(now))
		}
		if err := mark(); err != nil {
			return nil, err
		}
		tok, err := s.requestToken(ctx, c, apps)
		s.count(err)
		if err != nil {
			w, err := s.failed(ctx, c, err, trigger, now)
			return s.withTransition(ctx, c, from, w), err
		}
		if err := s.storeToken(ctx, c, tok, now); err != nil {
			return nil, err
		}
		token = tok.AccessToken
		return s.withTransition(ctx, c, from, &OAuthWrite{TokenChanged: true, Events: []*AuditEvent{refreshedEvent(ctx, c, trigger, tok)}}), nil
	})
	if err != nil || !locked || trigger == triggerProactive {
		return out, token, err
	}
	if token.IsZero() {
		// Another caller or replica refreshed while this one waited.
		if !out.OAuth.usable(s.now()) {
			return nil, Secret{}, refreshUnavailable(out, time.Second)
		}
		pt, err := s.Transit.Decrypt(ctx, out.Ciphertext, CredentialContext(out.OrgID, out.ID))
		if err != nil {
			return nil, Secret{}, err
		}
		token = NewSecret(string(pt))
	}
	return out, token, nil
}

// refreshedEvent is the audit record of a successful refresh of c (tok
// already applied).
func refreshedEvent(ctx context.Context, c *Credential, trigger string, tok *OAuthToken) *AuditEvent {
	return newAuditEvent(ctx, c.OrgID, "credential.oauth_refresh", "credential", c.ID, map[string]any{
		"trigger": trigger, "outcome": "ok", "expires_at": c.OAuth.ExpiresAt, "token_version": c.OAuth.TokenVersion,
		"refresh_token_rotated": !tok.RefreshToken.IsZero(),
	})
}

// appCache keeps the apps (and their decrypted client secrets) one
// proactive run needs, so that a run over many connections of one app
// reads and decrypts the app once. It lives for one run only.
type appCache struct {
	mu   sync.Mutex
	apps map[string]*cachedApp
}

type cachedApp struct {
	once   sync.Once
	app    *OAuthApp
	secret Secret
	err    error
}

// app returns the app with its secret, from the cache when apps is not nil.
func (s *OAuthService) app(ctx context.Context, apps *appCache, orgID, id string) (*OAuthApp, Secret, error) {
	load := func() (*OAuthApp, Secret, error) {
		app, err := s.Store.FindOAuthAppByID(ctx, orgID, id)
		if err != nil {
			return nil, Secret{}, err
		}
		secret, err := s.appSecret(ctx, app)
		return app, secret, err
	}
	if apps == nil {
		return load()
	}
	apps.mu.Lock()
	e := apps.apps[id]
	if e == nil {
		e = &cachedApp{}
		apps.apps[id] = e
	}
	apps.mu.Unlock()
	e.once.Do(func() { e.app, e.secret, e.err = load() })
	return e.app, e.secret, e.err
}

// requestToken asks the provider for a new access token: the refresh
// token grant, or the client credentials grant again.
func (s *OAuthService) requestToken(ctx context.Context, c *Credential, apps *appCache) (*OAuthToken, error) {
	app, secret, err := s.app(ctx, apps, c.OrgID, c.OAuth.AppID)
	if err != nil {
		return nil, err
	}
	var rt []byte
	if c.OAuth.Grant != GrantClientCredentials {
		if c.OAuth.RefreshCiphertext == "" {
			return nil, &OAuthProviderError{Code: "invalid_grant", Description: "the provider gave no refresh token; reconnect to get a new access token"}
		}
		if rt, err = s.Transit.Decrypt(ctx, c.OAuth.RefreshCiphertext, RefreshTokenContext(c.OrgID, c.ID)); err != nil {
			return nil, err
		}
	}
	return s.askProvider(ctx, c, app, secret, rt)
}

// askProvider sends one token request for c, in one of this replica's
// provider slots: the refresh token grant with rt (plaintext), or the
// client credentials grant again.
func (s *OAuthService) askProvider(ctx context.Context, c *Credential, app *OAuthApp, secret Secret, rt []byte) (*OAuthToken, error) {
	release, err := s.providerSlot(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if c.OAuth.Grant == GrantClientCredentials {
		return s.Provider.ClientCredentials(ctx, app, secret, c.OAuth.Scopes)
	}
	return s.Provider.Refresh(ctx, app, secret, NewSecret(string(rt)))
}

// storeToken encrypts a new token pair into c: the refresh token (a
// rotated one replaces the old, which is never sent again; none keeps the
// old) and the access token, with its expiry, refresh time and granted
// scopes; c becomes connected.
func (s *OAuthService) storeToken(ctx context.Context, c *Credential, tok *OAuthToken, now time.Time) error {
	if err := checkAccessToken(tok); err != nil {
		return err
	}
	refreshCT := ""
	if !tok.RefreshToken.IsZero() {
		ct, _, err := seal(ctx, s.Transit, tok.RefreshToken, RefreshTokenContext(c.OrgID, c.ID))
		if err != nil {
			return err
		}
		refreshCT = ct
	}
	ct, v, err := seal(ctx, s.Transit, tok.AccessToken, CredentialContext(c.OrgID, c.ID))
	if err != nil {
		return err
	}
	applyToken(c, tok, ct, v, refreshCT, now)
	return nil
}

// checkAccessToken refuses an access token credvault could not send as a
// header value. Errors: EUNAVAILABLE oauth_refresh_unavailable.
func checkAccessToken(tok *OAuthToken) error {
	if err := CheckSecretValue(tok.AccessToken.Reveal()); err != nil {
		return &Error{Code: EUNAVAILABLE, Reason: "oauth_refresh_unavailable", Message: "the OAuth provider answered an access token credvault cannot use"}
	}
	return nil
}

// applyToken puts a new token pair, already encrypted (accessCT at key
// version v; refreshCT "" when the provider rotated none), into c.
func applyToken(c *Credential, tok *OAuthToken, accessCT string, v int, refreshCT string, now time.Time) {
	o := c.OAuth
	if refreshCT != "" {
		o.RefreshCiphertext = refreshCT
	}
	c.Ciphertext, c.KeyVersion, c.RotatedAt = accessCT, v, now
	o.Status, o.LastError, o.Failures, o.NextAttemptAt, o.TokenVersion = OAuthConnected, "", 0, nil, o.TokenVersion+1
	o.LastRefreshedAt = &now
	o.ExpiresAt, o.RefreshAt = nil, nil
	if !tok.ExpiresAt.IsZero() {
		exp := tok.ExpiresAt.UTC()
		at := exp.Add(-RefreshMargin(exp.Sub(now)))
		o.ExpiresAt, o.RefreshAt = &exp, &at
	}
	if len(tok.Scopes) > 0 {
		o.ScopesGranted = tok.Scopes
	} else if len(o.ScopesGranted) == 0 {
		o.ScopesGranted = append([]string{}, o.Scopes...)
	}
}

// failed records a failed token request: a refusal makes the connection
// needs_reauth (nothing retries it until a reconnect); a transient failure
// backs off exponentially with jitter while a still-valid token keeps
// being used.
func (s *OAuthService) failed(ctx context.Context, c *Credential, err error, trigger string, now time.Time) (*OAuthWrite, error) {
	var pe *OAuthProviderError
	if !errors.As(err, &pe) {
		return nil, err // Vault or PostgreSQL: nothing was asked of the provider
	}
	o := c.OAuth
	o.LastError = providerText(pe)
	if !pe.Transient {
		o.Status, o.RefreshAt, o.NextAttemptAt = OAuthNeedsReauth, nil, nil
		evs := []*AuditEvent{
			newAuditEvent(ctx, c.OrgID, "credential.oauth_refresh", "credential", c.ID, map[string]any{
				"trigger": trigger, "outcome": "needs_reauth", "provider_error": pe.Code}),
			newAuditEvent(ctx, c.OrgID, "credential.oauth_reauth_needed", "credential", c.ID, map[string]any{
				"provider_error": pe.Code, "last_error": o.LastError}),
		}
		return &OAuthWrite{Events: evs}, needsReauth(c)
	}
	o.Failures++
	delay := s.backoff(o.Failures)
	next := now.Add(delay)
	o.Status, o.NextAttemptAt = OAuthRefreshFailing, &next
	ev := newAuditEvent(ctx, c.OrgID, "credential.oauth_refresh", "credential", c.ID, map[string]any{
		"trigger": trigger, "outcome": "failed", "provider_error": pe.Code, "failures": o.Failures, "next_attempt_at": next})
	if o.usable(now) && trigger != triggerReconnect {
		return &OAuthWrite{Events: []*AuditEvent{ev}}, nil
	}
	return &OAuthWrite{Events: []*AuditEvent{ev}}, refreshUnavailable(c, delay)
}

// backoff is the wait after the n-th transient failure in a row.
func (s *OAuthService) backoff(n int) time.Duration {
	base, cap := s.Refresh.BackoffBase, s.Refresh.BackoffCap
	if base <= 0 {
		base = 5 * time.Second
	}
	if cap <= 0 {
		cap = 10 * time.Minute
	}
	d := base
	for i := 1; i < n && d < cap; i++ {
		d *= 2
	}
	d = min(d, cap)
	return d/2 + rand.N(d/2+1)
}

func (s *OAuthService) count(err error) {
	if s.OnRefresh == nil {
		return
	}
	var pe *OAuthProviderError
	switch {
	case err == nil:
		s.OnRefresh("ok")
	case errors.As(err, &pe) && !pe.Transient:
		s.OnRefresh("refused")
	case errors.As(err, &pe):
		s.OnRefresh("failed")
	}
}

func notConnected(c *Credential) error {
	return &Error{Code: ECONFLICT, Reason: "oauth_not_connected", Message: "credential " + c.ID +
		" is not connected yet: open its authorize_url, or start again with POST /v1/credentials/" + c.ID + "/reconnect"}
}

func needsReauth(c *Credential) error {
	return &Error{Code: ECONFLICT, Reason: "oauth_needs_reauth", Message: "the OAuth provider refused credential " + c.ID +
		"'s grant; someone who manages it must reconnect it with POST /v1/credentials/" + c.ID + "/reconnect"}
}

func refreshUnavailable(c *Credential, wait time.Duration) error {
	wait = max(wait, time.Second)
	return &Error{Code: EUNAVAILABLE, Reason: "oauth_refresh_unavailable", RetryAfter: wait,
		Message: "the access token of credential " + c.ID + " expired and the OAuth provider is failing; retry after " +
			strconv.Itoa(int((wait+time.Second-1)/time.Second)) + " seconds"}
}

// withTransition adds to w (when not nil) the event that tells the org's
// webhooks of c's status change since from (oauth.needs_reauth,
// oauth.refresh_failing, oauth.recovered), once per change: a refresh that
// fails again while already failing tells nothing new. The store writes
// it with the status change in one transaction (the outbox): both or
// neither. Without Events set, nothing is added.
func (s *OAuthService) withTransition(ctx context.Context, c *Credential, from string, w *OAuthWrite) *OAuthWrite {
	if w == nil || s.Events == nil || from == c.OAuth.Status {
		return w
	}
	ev := OAuthEvent(newAuditEvent(ctx, c.OrgID, "", "credential", c.ID, nil), c.ID, c.Name, from, c.OAuth.Status, c.OAuth.LastError, c.OAuth.Failures)
	if ev.Emit == nil {
		return w
	}
	ev.Action, ev.Data = ev.Emit.Type, copyData(ev.Emit.Data)
	w.Events = append(w.Events, ev)
	return w
}
