package credvault

import (
	"context"
	"crypto/sha256"
	"strings"
	"time"
)

// CallbackInput is what the provider sent back to GET /oauth/callback
// (RFC 6749 sections 4.1.2 and 4.1.2.1, RFC 9207's iss), and the console
// session's user when the browser has one.
type CallbackInput struct {
	State            string
	Code             string
	Error            string
	ErrorDescription string
	Issuer           string
	// SessionOrgID and SessionUserID are the console session's org and
	// user when the browser has one ("" otherwise).
	SessionOrgID  string
	SessionUserID string
}

// CallbackResult is how an authorization ended, for the page the person
// sees: which credential, where to go, and the provider's error if any.
type CallbackResult struct {
	OrgID        string
	CredentialID string
	ReturnTo     string
	Status       string
	Error        string // the provider's error, "" when connected
}

// Callback completes an authorization: it takes the single-use state
// (refusing an unknown, replayed, expired or foreign one), checks RFC 9207
// iss when the provider sends it, exchanges the code with the PKCE
// verifier and stores the tokens: the credential becomes connected. A
// browser signed in to the console as another user or org than the one
// that started it is refused. A provider error (access_denied) is kept as
// the credential's last_error and returned in the result with nil error.
// Errors: EINVALID with reason oauth_state_invalid, oauth_state_expired,
// oauth_issuer_missing or oauth_issuer_mismatch; EUNAVAILABLE.
func (s *OAuthService) Callback(ctx context.Context, in CallbackInput) (*CallbackResult, error) {
	if in.State == "" || len(in.State) > 200 {
		return nil, &Error{Code: EINVALID, Reason: "oauth_state_invalid", Message: "query parameter \"state\" is missing: start the connection again from credvault"}
	}
	auth, err := s.Store.TakeOAuthAuthorization(ctx, sha256.Sum256([]byte(in.State)))
	if ErrorCode(err) == ENOTFOUND {
		return nil, &Error{Code: EINVALID, Reason: "oauth_state_invalid", Message: "this authorization is unknown or was already used: start the connection again from credvault"}
	}
	if err != nil {
		return nil, err
	}
	if !s.now().Before(auth.ExpiresAt) {
		return nil, &Error{Code: EINVALID, Reason: "oauth_state_expired", Message: "this authorization expired (it is valid for 10 minutes): start the connection again from credvault"}
	}
	// The state is bound to org, user and credential: a browser signed in
	// to the console as someone else (or in another org) does not finish
	// another person's authorization. The state is spent either way.
	if in.SessionOrgID != "" && in.SessionOrgID != auth.OrgID ||
		in.SessionUserID != "" && auth.UserID != nil && *auth.UserID != in.SessionUserID {
		return nil, &Error{Code: EINVALID, Reason: "oauth_state_invalid", Message: "this authorization was started by another user: start the connection again while signed in as yourself"}
	}
	res := &CallbackResult{OrgID: auth.OrgID, CredentialID: auth.CredentialID, ReturnTo: auth.ReturnTo}
	sys := WithCaller(context.WithoutCancel(ctx), nil, RequestIDFrom(ctx))
	if auth.UserID != nil {
		sys = WithCaller(sys, &Principal{OrgID: auth.OrgID, UserID: *auth.UserID, Kind: KeyKindUser}, RequestIDFrom(ctx))
	}
	_, err = s.Store.LockOAuthCredential(sys, auth.OrgID, auth.CredentialID, true, func(c *Credential, mark func() error) (*OAuthWrite, error) {
		if c.OAuth == nil {
			return nil, Errorf(EINVALID, "credential %s is not an OAuth connection", c.ID)
		}
		o := c.OAuth
		from := o.Status
		app, err := s.Store.FindOAuthAppByID(sys, c.OrgID, o.AppID)
		if err != nil {
			return nil, err
		}
		if err := checkIssuer(app, in.Issuer); err != nil {
			return nil, err
		}
		var perr *OAuthProviderError
		switch {
		case in.Error != "":
			perr = &OAuthProviderError{Code: cleanText(in.Error, 100), Description: cleanText(in.ErrorDescription, 300)}
		case in.Code == "":
			perr = &OAuthProviderError{Code: "invalid_request", Description: "the provider sent neither a code nor an error"}
		default:
			secret, err := s.appSecret(sys, app)
			if err != nil {
				return nil, err
			}
			tok, err := s.Provider.Exchange(sys, app, secret, auth.RedirectURI, in.Code, auth.CodeVerifier)
			s.count(err)
			if err != nil && !asProviderError(err, &perr) {
				return nil, err
			}
			if err == nil {
				if err := s.storeToken(sys, c, tok, s.now()); err != nil {
					return nil, err
				}
			}
		}
		if perr != nil {
			o.LastError = providerText(perr)
			res.Status, res.Error = o.Status, o.LastError
			ev := newAuditEvent(sys, c.OrgID, "credential.oauth_connect", "credential", c.ID, map[string]any{
				"grant": o.Grant, "outcome": "provider_error", "provider_error": perr.Code})
			return &OAuthWrite{Events: []*AuditEvent{ev}}, nil
		}
		res.Status = o.Status
		ev := newAuditEvent(sys, c.OrgID, "credential.oauth_connect", "credential", c.ID, map[string]any{
			"grant": o.Grant, "outcome": "ok", "expires_at": o.ExpiresAt, "scopes_granted": o.ScopesGranted})
		// A needs_reauth (or failing) connection reconnected: oauth.recovered.
		return s.withTransition(sys, c, from, &OAuthWrite{TokenChanged: true, Events: []*AuditEvent{ev}}), nil
	})
	if ErrorCode(err) == ENOTFOUND {
		return nil, &Error{Code: EINVALID, Reason: "oauth_state_invalid", Message: "the credential of this authorization was deleted"}
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// checkIssuer applies RFC 9207 section 2.4 to a callback's iss: when the
// app's issuer metadata says the provider sends it, it must be there; when
// there, it must equal the app's issuer. Errors: EINVALID
// oauth_issuer_missing, oauth_issuer_mismatch.
func checkIssuer(app *OAuthApp, iss string) error {
	if iss == "" && app.IssRequired {
		return &Error{Code: EINVALID, Reason: "oauth_issuer_missing", Message: "query parameter \"iss\" is missing: the provider's metadata says it sends one with every authorization response (RFC 9207), so this response may not come from it; start the connection again"}
	}
	if iss != "" && app.Issuer != "" && iss != app.Issuer {
		return &Error{Code: EINVALID, Reason: "oauth_issuer_mismatch", Message: "query parameter \"iss\" names another issuer than the app's (RFC 9207): start the connection again"}
	}
	return nil
}

func asProviderError(err error, target **OAuthProviderError) bool {
	pe, ok := err.(*OAuthProviderError)
	if ok {
		*target = pe
	}
	return ok
}

// cleanText keeps a provider's text printable and short.
func cleanText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "")
	}
	return s
}

// RevokeTokens asks the provider to revoke a deleted credential's tokens
// (RFC 7009: the refresh token, which ends its access tokens too, then the
// access token), when the app has a revocation endpoint. c holds the
// ciphertexts as they were before the delete. It returns the outcome
// ("revoked", "unsupported", "failed", "none") for the audit event; a
// failure never stops the delete.
func (s *OAuthService) RevokeTokens(ctx context.Context, c *Credential) string {
	if c.OAuth == nil || (c.OAuth.RefreshCiphertext == "" && c.Ciphertext == "") {
		return "none"
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	app, err := s.Store.FindOAuthAppByID(ctx, c.OrgID, c.OAuth.AppID)
	if err != nil {
		return "failed"
	}
	if app.RevocationURL == "" {
		return "unsupported"
	}
	secret, err := s.appSecret(ctx, app)
	if err != nil {
		return "failed"
	}
	outcome := "revoked"
	for _, t := range []struct {
		ct, hint string
		ctx      []byte
	}{
		{c.OAuth.RefreshCiphertext, "refresh_token", RefreshTokenContext(c.OrgID, c.ID)},
		{c.Ciphertext, "access_token", CredentialContext(c.OrgID, c.ID)},
	} {
		if t.ct == "" {
			continue
		}
		pt, err := s.Transit.Decrypt(ctx, t.ct, t.ctx)
		if err == nil {
			err = s.Provider.Revoke(ctx, app, secret, NewSecret(string(pt)), t.hint)
		}
		if err != nil {
			outcome = "failed"
		}
	}
	return outcome
}
