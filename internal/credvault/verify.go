package credvault

import (
	"context"
	"strings"
	"time"
)

// VerifyService answers "is this key good for this call?" for the rest of
// the platform: POST /v1/api-keys/verify (a gateway with scope keys:verify
// asks about a client's key) and GET /v1/auth/check (forward-auth).
type VerifyService struct {
	Verifier  KeyVerifier
	Endpoints EndpointStore
}

// VerifyInput is POST /v1/api-keys/verify.
type VerifyInput struct {
	Key            Secret
	RequiredScopes []string
	Endpoint       string // an endpoint's id or name
}

// VerifyResult is the answer; Valid is true for VALID and PUBLIC_ENDPOINT.
type VerifyResult struct {
	Valid  bool
	Code   string
	KeyID  string
	OrgID  string
	UserID string
	Scopes []string
	// ScopeHeader is Scopes comma-joined, for X-Credvault-Scopes.
	ScopeHeader string
	ExpiresAt   *time.Time
	Rate        RateDecision
	Endpoint    *Endpoint
}

// Verify checks key for a caller holding keys:verify: only keys of the
// caller's org are found. Errors: EFORBIDDEN (scope), EINVALID (unknown
// scope or endpoint), EUNAVAILABLE (PostgreSQL down).
func (s *VerifyService) Verify(ctx context.Context, in VerifyInput) (VerifyResult, error) {
	p, err := caller(ctx)
	if err != nil {
		return VerifyResult{}, err
	}
	if err := requireScope(p, ScopeKeysVerify); err != nil {
		return VerifyResult{}, err
	}
	return s.evaluate(ctx, p.OrgID, in)
}

// Check is forward-auth: the org is the key's own, or the endpoint's when
// in.Endpoint is an endpoint id. Errors as for Verify, without the scope.
func (s *VerifyService) Check(ctx context.Context, in VerifyInput) (VerifyResult, error) {
	return s.evaluate(ctx, "", in)
}

func (s *VerifyService) evaluate(ctx context.Context, orgID string, in VerifyInput) (VerifyResult, error) {
	var required []string
	if len(in.RequiredScopes) > 0 {
		var err error
		if required, err = NormalizeScopes("required_scopes", in.RequiredScopes); err != nil {
			return VerifyResult{}, err
		}
	}
	key := strings.TrimSpace(in.Key.Reveal())
	var v *Verification // the key's check, made at most once (it counts against the key's limit)
	check := func() error {
		if v == nil && key != "" {
			got, err := s.Verifier.Verify(ctx, key)
			if err != nil {
				return err
			}
			v = &got
		}
		return nil
	}
	var res VerifyResult
	if in.Endpoint != "" {
		ep, err := s.Endpoints.FindEndpoint(ctx, orgID, in.Endpoint)
		if ErrorCode(err) == ENOTFOUND && orgID == "" {
			// Forward-auth naming an endpoint by name: its org is the key's,
			// and without a good key the answer is the key's problem (401).
			if err := check(); err != nil {
				return VerifyResult{}, err
			}
			switch {
			case v == nil:
				res.Code = VerifyMissing
				return res, nil
			case v.Key == nil:
				res.Code = v.Code
				return res, nil
			}
			ep, err = s.Endpoints.FindEndpoint(ctx, v.Key.OrgID, in.Endpoint)
		}
		if err != nil {
			if ErrorCode(err) == ENOTFOUND {
				return VerifyResult{}, Errorf(EINVALID, "unknown endpoint %q: register it with POST /v1/endpoints", in.Endpoint)
			}
			return VerifyResult{}, err
		}
		res.Endpoint = ep
		if ep.AuthMode == AuthModeNone {
			res.Valid, res.Code, res.OrgID = true, VerifyPublicEndpoint, ep.OrgID
			return res, nil
		}
		orgID = ep.OrgID
		required = append(required, ep.RequiredScopes...)
	}
	if key == "" {
		res.Code = VerifyMissing
		return res, nil
	}
	if err := check(); err != nil {
		return VerifyResult{}, err
	}
	if v.Key != nil && orgID != "" && v.Key.OrgID != orgID {
		// Another org's key is, for this org, no key at all.
		res.Code = VerifyNotFound
		return res, nil
	}
	res.Code, res.Rate = v.Code, v.Rate
	if v.Key != nil {
		res.KeyID, res.OrgID, res.UserID, res.Scopes, res.ExpiresAt = v.Key.ID, v.Key.OrgID, v.Key.UserID, v.Key.Scopes, v.Key.ExpiresAt
		res.ScopeHeader = v.Key.ScopeHeader
	}
	if res.Code == VerifyValid && len(MissingScopes(v.Key.Scopes, required)) > 0 {
		res.Code = VerifyInsufficientScope
	}
	res.Valid = res.Code == VerifyValid
	return res, nil
}
