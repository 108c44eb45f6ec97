package credvault

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// Lifetimes of the console's sign-in links and sessions (OWASP Session
// Management Cheat Sheet: idle and absolute timeouts; one-time tokens with
// a short life).
const (
	SignInLinkTTL      = 15 * time.Minute
	SessionIdleTimeout = 30 * time.Minute
	SessionMaxLifetime = 12 * time.Hour
	// sessionTouchEvery bounds how often a session's last_seen_at is
	// written: at most once a minute per session, not once per page.
	sessionTouchEvery = time.Minute
)

// SignInLinkPath is where the console redeems a sign-in link: a link is
// the public origin + SignInLinkPath + token.
const SignInLinkPath = "/sign-in/link/"

// Session sign-in methods.
const (
	SignInLink   = "link"
	SignInAPIKey = "api_key"
)

// SignInLinkRecord is a one-time sign-in link as stored: the token itself
// is never stored, only its SHA-256.
type SignInLinkRecord struct {
	ID        string
	OrgID     string
	UserID    string
	TokenHash [32]byte
	CreatedBy string
	ExpiresAt time.Time
	UsedAt    *time.Time
	CreatedAt time.Time
}

// Session is a console session as stored (by the SHA-256 of its cookie
// value), joined with what authorization needs: the user's current role
// and, for a session opened with an API key, that key's scopes and state.
type Session struct {
	ID         string
	TokenHash  [32]byte
	OrgID      string
	UserID     string
	KeyID      *string
	Method     string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time // the absolute end

	Role      Role       // joined from users
	Email     string     // joined from users
	KeyScopes []string   // joined from api_keys (key sessions)
	KeyEnds   *time.Time // the key's expiry, if any
	KeyGone   bool       // the key is revoked
	// KeyOff is the key's refusal while it or its integration is
	// disabled (VerifyDisabled, VerifyIntegrationDisabled), else "": the
	// session is paused, not ended, and works again once enabled.
	KeyOff string
	// KeyFormat and KeySigningVersion: a JWT key's session ends when its
	// signing key version is retired (min_decryption_version raised).
	KeyFormat         string
	KeySigningVersion int
	// KeyRateLimit is the key's limit, spent by every console request of
	// the session as by every API request made with the key.
	KeyRateLimit *RateLimit
}

// SessionStore persists sign-in links and console sessions.
type SessionStore interface {
	CreateSignInLink(ctx context.Context, l *SignInLinkRecord, ev *AuditEvent) error
	// UseSignInLink marks the link with that hash used, if it is unused and
	// unexpired at now, and returns it. Otherwise it returns the link as it
	// is (so the caller can say why) or ENOTFOUND when no link has that hash.
	UseSignInLink(ctx context.Context, hash [32]byte, now time.Time) (l *SignInLinkRecord, accepted bool, err error)
	CreateSession(ctx context.Context, s *Session, ev *AuditEvent) error
	// FindSession returns ENOTFOUND when no session has that hash (never
	// opened, signed out, or its user deleted or demoted).
	FindSession(ctx context.Context, hash [32]byte) (*Session, error)
	TouchSession(ctx context.Context, id string, at time.Time) error
	// DeleteSession removes the session with that hash (idempotent).
	DeleteSession(ctx context.Context, hash [32]byte, ev *AuditEvent) error
	// PurgeSessions deletes sessions idle since before idleBefore or ended
	// by now, and links that expired before linksBefore; it returns how
	// many rows went.
	PurgeSessions(ctx context.Context, idleBefore, now, linksBefore time.Time) (int64, error)
}

// SessionService holds the console's sign-in rules: one-time links that
// owners and admins hand out, sign-in with a personal API key (never a
// service key), and sessions that end on idle, on age, on sign-out, and as
// soon as their user is deleted or demoted. Every attempt is audited.
type SessionService struct {
	Store    SessionStore
	Users    UserStore
	Audit    AuditStore
	Verifier KeyVerifier
	// Keys reads the key a sign-in link's creator authenticated with.
	Keys interface {
		FindAPIKeyByID(ctx context.Context, orgID, id string) (*APIKey, error)
	}
	// SigningMinVersion, when set, is the lowest signing key version JWT
	// keys may carry (apikey.SigningKeys.MinVersion): a session opened with
	// an older JWT key ends, as the key itself is refused.
	SigningMinVersion func() int
	// Limit, when set, spends one request of a key session's rate limit
	// and reports whether it was allowed and, if not, when to retry: a
	// session never does more than the key it was opened with.
	Limit func(ctx context.Context, keyID string, rl RateLimit) (allowed bool, retryAfter time.Duration)
	Now   func() time.Time
}

func (s *SessionService) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// NewSessionToken returns 32 random bytes in unpadded base64url (43
// characters) and their SHA-256, the only form that is stored.
func NewSessionToken() (Secret, [32]byte, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Secret{}, [32]byte{}, Wrap(EINTERNAL, err, "random token")
	}
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	return NewSecret(tok), sha256.Sum256([]byte(tok)), nil
}

// HashToken is the stored form of a sign-in link or session token.
func HashToken(tok string) [32]byte { return sha256.Sum256([]byte(tok)) }

// CreateSignInLink issues a one-time sign-in link token for a user of the
// caller's org, valid for SignInLinkTTL. The caller needs users:write and
// the owner or admin role; only owners issue links for owners (a link acts
// with its user's role); and the caller must hold every scope of
// ConsoleScopes(target's role), which the session will get, through a key
// without rate limit or expiry (sessionWithinKey). Errors: EFORBIDDEN
// (forbidden_role, insufficient_scope, exceeds_creator_key), ENOTFOUND (no
// such user).
func (s *SessionService) CreateSignInLink(ctx context.Context, userID string) (*SignInLinkRecord, Secret, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, Secret{}, err
	}
	if err := requireScope(p, ScopeUsersWrite); err != nil {
		return nil, Secret{}, err
	}
	if err := requireManager(p, "create sign-in links"); err != nil {
		return nil, Secret{}, err
	}
	target, err := s.Users.FindUserByID(ctx, p.OrgID, userID)
	if err != nil {
		return nil, Secret{}, err
	}
	if err := ownersOnly(p, target.Role); err != nil {
		return nil, Secret{}, err
	}
	// The link opens a session with the console scopes of the target's
	// role: a key never hands out more than it holds, so users:write alone
	// cannot turn into keys:write through a session.
	if missing := MissingScopes(p.Scopes, ConsoleScopes(target.Role)); len(missing) > 0 {
		return nil, Secret{}, &Error{Code: EFORBIDDEN, Reason: "insufficient_scope",
			Message: "a sign-in link opens a console session with the scopes of the user's role, and this API key lacks: " + strings.Join(missing, ", ")}
	}
	if err := s.sessionWithinKey(ctx, p); err != nil {
		return nil, Secret{}, err
	}
	creator := p.UserID
	if creator == "" {
		creator = p.KeyID
	}
	return s.issueLink(ctx, target, creator)
}

// sessionWithinKey refuses a sign-in link to a caller whose API key has a
// rate limit or an expiry: the session the link opens has neither (and no
// creating key to cap the keys made in it), so the link would let the key
// mint keys beyond its own limits, the way a roll or a child key may not.
// Callers without a key (console link sessions) are people, not capped.
// Errors: EFORBIDDEN exceeds_creator_key, EUNAUTHORIZED when the key is gone.
func (s *SessionService) sessionWithinKey(ctx context.Context, p *Principal) error {
	if p.KeyID == "" || s.Keys == nil {
		return nil
	}
	k, err := s.Keys.FindAPIKeyByID(ctx, p.OrgID, p.KeyID)
	if ErrorCode(err) == ENOTFOUND {
		return &Error{Code: EUNAUTHORIZED, Reason: "revoked_api_key", Message: "API key was revoked: create a new one"}
	}
	if err != nil {
		return err
	}
	if k.RateLimit != nil || k.ExpiresAt != nil {
		return &Error{Code: EFORBIDDEN, Reason: "exceeds_creator_key",
			Message: "this API key has a rate limit or an expiry, and a sign-in link opens a console session with neither; use a key without them, or the console's Members page"}
	}
	return nil
}

// IssueOwnerSignInLink issues a sign-in link for the first owner of the
// org named orgName, with no caller: `credvault dev` prints one at every
// start. Errors: ENOTFOUND (no such org or no owner).
func (s *SessionService) IssueOwnerSignInLink(ctx context.Context, orgName string) (*SignInLinkRecord, Secret, error) {
	org, err := s.Users.FindOrgByName(ctx, orgName)
	if err != nil {
		return nil, Secret{}, err
	}
	page := Page{Limit: 500}
	for {
		users, err := s.Users.FindUsers(ctx, org.ID, page)
		if err != nil {
			return nil, Secret{}, err
		}
		for _, u := range users {
			if u.Role == RoleOwner {
				return s.issueLink(ctx, u, "credvault dev")
			}
		}
		if len(users) < page.Limit {
			return nil, Secret{}, Errorf(ENOTFOUND, "org %q has no owner", orgName)
		}
		page.Cursor = users[len(users)-1].ID
	}
}

func (s *SessionService) issueLink(ctx context.Context, u *User, createdBy string) (*SignInLinkRecord, Secret, error) {
	tok, hash, err := NewSessionToken()
	if err != nil {
		return nil, Secret{}, err
	}
	l := &SignInLinkRecord{OrgID: u.OrgID, UserID: u.ID, TokenHash: hash, CreatedBy: createdBy, ExpiresAt: s.now().Add(SignInLinkTTL).UTC()}
	ev := newAuditEvent(ctx, u.OrgID, "user.sign_in_link.create", "user", u.ID, map[string]any{"expires_at": l.ExpiresAt})
	if err := s.Store.CreateSignInLink(ctx, l, ev); err != nil {
		return nil, Secret{}, err
	}
	return l, tok, nil
}

// SignInAttempt describes where an attempt came from, for the audit trail.
type SignInAttempt struct {
	RemoteAddr string
	RequestID  string
}

// errSignIn is the one answer to a refused sign-in: it does not tell an
// attacker whether a link existed, was used or expired (the audit trail
// and the signed-in owner's view do).
func errSignIn(msg string) error {
	return &Error{Code: EUNAUTHORIZED, Reason: "sign_in_refused", Message: msg}
}

// SignInWithLink redeems a one-time link token and opens a session,
// returning it and the session token for the cookie. Errors: EUNAUTHORIZED
// (unknown, used or expired link), EUNAVAILABLE.
func (s *SessionService) SignInWithLink(ctx context.Context, token string, at SignInAttempt) (*Session, Secret, error) {
	now := s.now()
	l, ok, err := s.Store.UseSignInLink(ctx, HashToken(token), now)
	if err != nil && ErrorCode(err) != ENOTFOUND {
		return nil, Secret{}, err
	}
	if l == nil || !ok {
		reason, org, user := "unknown_link", "", ""
		if l != nil {
			org, user = l.OrgID, l.UserID
			reason = "expired_link"
			if l.UsedAt != nil {
				reason = "used_link"
			}
		}
		s.refused(ctx, org, user, SignInLink, reason, at)
		return nil, Secret{}, errSignIn("this sign-in link is not valid: it was already used, has expired, or never existed; ask an owner or admin for a new one")
	}
	return s.open(ctx, &Session{OrgID: l.OrgID, UserID: l.UserID, Method: SignInLink}, now, at)
}

// SignInWithKey opens a session for the user of a personal (user) API key;
// the session acts with that key's scopes and ends when the key does.
// Service keys are refused: they have no person behind them. Errors:
// EUNAUTHORIZED (missing, malformed, unknown, expired, revoked or service
// key), ERATELIMITED, EUNAVAILABLE.
func (s *SessionService) SignInWithKey(ctx context.Context, key string, at SignInAttempt) (*Session, Secret, error) {
	v, err := s.Verifier.Verify(ctx, key)
	if err != nil {
		return nil, Secret{}, err
	}
	org, user := "", ""
	if v.Key != nil {
		org, user = v.Key.OrgID, v.Key.UserID
	}
	if v.Code != VerifyValid {
		s.refused(ctx, org, user, SignInAPIKey, lowerCode(v.Code), at)
		switch v.Code {
		case VerifyRateLimited:
			return nil, Secret{}, &Error{Code: ERATELIMITED, Reason: "rate_limited", Message: "this API key's rate limit is exhausted; try again shortly"}
		case VerifyDisabled, VerifyIntegrationDisabled:
			return nil, Secret{}, disabledError(v.Code)
		}
		return nil, Secret{}, errSignIn("this API key cannot sign in: it is unknown, expired or revoked; check it and try again")
	}
	if v.Key.Kind != KeyKindUser || v.Key.UserID == "" {
		s.refused(ctx, org, "", SignInAPIKey, "service_key", at)
		return nil, Secret{}, errSignIn("service keys cannot sign in to the console; use a personal API key or a sign-in link")
	}
	keyID := v.Key.ID
	return s.open(ctx, &Session{OrgID: v.Key.OrgID, UserID: v.Key.UserID, KeyID: &keyID, Method: SignInAPIKey}, s.now(), at)
}

func (s *SessionService) open(ctx context.Context, sess *Session, now time.Time, at SignInAttempt) (*Session, Secret, error) {
	tok, hash, err := NewSessionToken()
	if err != nil {
		return nil, Secret{}, err
	}
	sess.TokenHash = hash
	sess.CreatedAt, sess.LastSeenAt = now.UTC(), now.UTC()
	sess.ExpiresAt = now.Add(SessionMaxLifetime).UTC()
	data := map[string]any{"method": sess.Method, "remote_addr": at.RemoteAddr}
	if sess.KeyID != nil {
		data["key_id"] = *sess.KeyID
	}
	ev := &AuditEvent{OrgID: sess.OrgID, ActorType: KeyKindUser, ActorID: sess.UserID, Action: "session.create",
		ResourceType: "user", ResourceID: sess.UserID, RequestID: at.RequestID, Data: data}
	if err := s.Store.CreateSession(ctx, sess, ev); err != nil {
		return nil, Secret{}, err
	}
	return sess, tok, nil
}

// refused records a refused sign-in attempt. Events about no known org
// carry no org id; they are for the operator, not any tenant.
func (s *SessionService) refused(ctx context.Context, orgID, userID, method, reason string, at SignInAttempt) {
	ev := &AuditEvent{OrgID: orgID, ActorType: "system", Action: "session.refused", ResourceType: "user", ResourceID: userID,
		RequestID: at.RequestID, Data: map[string]any{"method": method, "reason": reason, "remote_addr": at.RemoteAddr}}
	_ = s.Audit.CreateAuditEvent(context.WithoutCancel(ctx), ev)
}

// Authenticate turns a session cookie value into the Principal the domain
// services authorize: the user with their current role and, for a link
// session, ConsoleScopes(role); for a key session, the key's scopes. It
// refreshes the idle timer at most once a minute. A key session spends the
// key's rate limit on every request. Errors: EUNAUTHORIZED (no such
// session, idle too long, too old, or its key ended: revoked, expired, or
// a JWT key whose signing version was retired), ERATELIMITED, EUNAVAILABLE.
func (s *SessionService) Authenticate(ctx context.Context, token string) (*Principal, *Session, error) {
	if token == "" {
		return nil, nil, errSession
	}
	sess, err := s.Store.FindSession(ctx, HashToken(token))
	if err != nil {
		if ErrorCode(err) == ENOTFOUND {
			return nil, nil, errSession
		}
		return nil, nil, err
	}
	now := s.now()
	switch {
	case !now.Before(sess.ExpiresAt), now.Sub(sess.LastSeenAt) >= SessionIdleTimeout:
		_ = s.Store.DeleteSession(ctx, sess.TokenHash, nil)
		return nil, nil, errSession
	case sess.KeyID != nil && (sess.KeyGone || sess.KeyEnds != nil && !now.Before(*sess.KeyEnds)):
		_ = s.Store.DeleteSession(ctx, sess.TokenHash, nil)
		return nil, nil, errSession
	case sess.KeyID != nil && sess.KeyFormat == KeyFormatJWT && s.SigningMinVersion != nil && sess.KeySigningVersion < s.SigningMinVersion():
		_ = s.Store.DeleteSession(ctx, sess.TokenHash, nil)
		return nil, nil, errSession
	}
	if sess.KeyID != nil && sess.KeyOff != "" {
		return nil, nil, disabledError(sess.KeyOff)
	}
	if sess.KeyID != nil && sess.KeyRateLimit != nil && s.Limit != nil {
		if ok, retry := s.Limit(ctx, *sess.KeyID, *sess.KeyRateLimit); !ok {
			return nil, nil, &Error{Code: ERATELIMITED, Reason: "rate_limited",
				Message: fmt.Sprintf("the API key this session was opened with has reached its rate limit; try again in %d seconds", int(retry.Seconds()+0.999))}
		}
	}
	if now.Sub(sess.LastSeenAt) >= sessionTouchEvery {
		if err := s.Store.TouchSession(ctx, sess.ID, now); err != nil {
			return nil, nil, err
		}
		sess.LastSeenAt = now
	}
	p := &Principal{OrgID: sess.OrgID, UserID: sess.UserID, Kind: KeyKindUser, Role: sess.Role, Scopes: ConsoleScopes(sess.Role)}
	if sess.KeyID != nil {
		p.KeyID, p.Scopes = *sess.KeyID, sess.KeyScopes
	}
	return p, sess, nil
}

// Purge deletes ended sessions and long-expired links, so the tables do
// not grow with every sign-in (an ended session is refused anyway). It
// returns how many rows went. Errors: EUNAVAILABLE.
func (s *SessionService) Purge(ctx context.Context) (int64, error) {
	now := s.now()
	return s.Store.PurgeSessions(ctx, now.Add(-SessionIdleTimeout), now, now.Add(-24*time.Hour))
}

var errSession = &Error{Code: EUNAUTHORIZED, Reason: "session_ended", Message: "your session has ended; sign in again"}

// SignOut ends the session with that token (idempotent).
func (s *SessionService) SignOut(ctx context.Context, token string) error {
	p := PrincipalFrom(ctx)
	var ev *AuditEvent
	if p != nil {
		ev = newAuditEvent(ctx, p.OrgID, "session.delete", "user", p.UserID, nil)
	}
	return s.Store.DeleteSession(ctx, HashToken(token), ev)
}

// ConsoleScopes is what a link session may do: what a person of that role
// needs in the console, and no more. Members get their own keys and the
// credentials they may use or manage, and may list the org's people (to
// share with them); owners and admins also manage users and endpoints and
// read the audit trail. It never includes credentials:resolve (which hands
// out values: runners only) or keys:verify (a machine's job). The services
// still check the role for every manager-only action.
func ConsoleScopes(r Role) []string {
	switch {
	case r.Manager():
		return []string{
			ScopeAuditRead, ScopeCredentialsRead, ScopeCredentialsUse, ScopeCredentialsWrite,
			ScopeEndpointsWrite, ScopeKeysRead, ScopeKeysWrite, ScopeUsersRead, ScopeUsersWrite,
		}
	case r == RoleMember:
		return []string{ScopeCredentialsRead, ScopeCredentialsUse, ScopeCredentialsWrite, ScopeKeysRead, ScopeKeysWrite, ScopeUsersRead}
	}
	return nil
}

func lowerCode(code string) string {
	b := []byte(code)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
