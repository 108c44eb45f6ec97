package devtransit

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// systemMaxTTL is Vault's default (and maximum) lease TTL, 32 days.
const systemMaxTTL = 768 * time.Hour

// appRoleName is the name devtransit gives its single AppRole role.
const appRoleName = "devtransit"

// token is a client token. The root token never expires; AppRole tokens
// expire at expires and can be renewed up to issued+maxTTL.
type token struct {
	id, accessor string
	root         bool
	policies     []string
	meta         map[string]string
	issued       time.Time
	lastRenewal  time.Time
	expires      time.Time
	ttl, maxTTL  time.Duration
}

func equalSecret(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// authenticate resolves the caller's token from X-Vault-Token or, as Vault
// also accepts, "Authorization: Bearer". Expired tokens are forgotten.
func (s *Server) authenticate(r *http.Request) (*token, error) {
	id := r.Header.Get("X-Vault-Token")
	if id == "" {
		if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "Bearer ") {
			id = strings.TrimSpace(a[7:])
		}
	}
	if id == "" {
		return nil, errNoToken
	}
	if equalSecret(id, s.root.id) {
		return s.root, nil
	}
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	t := s.tokens[id]
	if t != nil && !s.now().Before(t.expires) {
		delete(s.tokens, id)
		t = nil
	}
	if t == nil {
		return nil, errBadToken
	}
	return t, nil
}

func (s *Server) authBlock(t *token, lease time.Duration) *authBlock {
	return &authBlock{
		ClientToken: t.id, Accessor: t.accessor, Policies: t.policies, TokenPolicies: t.policies,
		Metadata: t.meta, LeaseDuration: int64(lease / time.Second), Renewable: true,
		TokenType: "service", Orphan: true,
	}
}

// handleLogin serves auth/approle/login for the configured role.
func (s *Server) handleLogin(req *request) (*response, error) {
	if req.op != "update" {
		return nil, errUnsupportedOp
	}
	roleID, _, err := str(req.data, "role_id")
	if err != nil {
		return nil, err
	}
	if roleID = strings.TrimSpace(roleID); roleID == "" {
		return nil, userError("missing role_id")
	}
	ar := s.approle
	if !equalSecret(roleID, ar.RoleID) {
		return nil, userError("invalid role or secret ID")
	}
	secretID, _, err := str(req.data, "secret_id")
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(secretID) == "" {
		return nil, userError("missing secret_id")
	}
	if !equalSecret(secretID, ar.SecretID) {
		return nil, userError("invalid role or secret ID")
	}
	maxTTL := ar.TokenMaxTTL
	if maxTTL <= 0 || maxTTL > systemMaxTTL {
		maxTTL = systemMaxTTL
	}
	ttl := ar.TokenTTL
	if ttl <= 0 {
		ttl = systemMaxTTL
	}
	ttl = min(ttl, maxTTL)
	now := s.now()
	t := &token{
		id: "hvs." + randomID(24), accessor: randomID(24), policies: []string{"default"},
		meta: map[string]string{"role_name": appRoleName}, issued: now, expires: now.Add(ttl),
		ttl: ttl, maxTTL: maxTTL,
	}
	s.tokMu.Lock()
	s.tokens[t.id] = t
	s.tokMu.Unlock()
	s.log.Info("devtransit: approle login", "accessor", t.accessor, "ttl", ttl)
	return &response{auth: s.authBlock(t, ttl), warnings: unknownParams(req.data, "role_id", "secret_id")}, nil
}

// handleLookupSelf serves auth/token/lookup-self in Vault's shape.
func (s *Server) handleLookupSelf(req *request) (*response, error) {
	if req.op != "read" && req.op != "update" {
		return nil, errUnsupportedOp
	}
	t := req.tok
	if t.root {
		return &response{data: map[string]any{
			"id": t.id, "accessor": t.accessor, "policies": t.policies, "path": "auth/token/root", "meta": nil,
			"display_name": "root", "num_uses": 0, "orphan": true, "creation_time": t.issued.Unix(), "creation_ttl": int64(0),
			"expire_time": nil, "ttl": int64(0), "explicit_max_ttl": int64(0), "entity_id": "", "type": "service",
			"renewable": false, "issue_time": t.issued.Format(time.RFC3339Nano),
		}}, nil
	}
	now := s.now()
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	data := map[string]any{
		"id": t.id, "accessor": t.accessor, "policies": t.policies, "path": "auth/approle/login", "meta": t.meta,
		"display_name": "approle", "num_uses": 0, "orphan": true, "creation_time": t.issued.Unix(),
		"creation_ttl": int64(t.ttl / time.Second), "expire_time": t.expires.Format(time.RFC3339Nano),
		"ttl": int64(t.expires.Sub(now) / time.Second), "explicit_max_ttl": int64(0), "entity_id": "",
		"type": "service", "renewable": true, "issue_time": t.issued.Format(time.RFC3339Nano),
	}
	if !t.lastRenewal.IsZero() {
		data["last_renewal_time"] = t.lastRenewal.Unix()
		data["last_renewal"] = t.lastRenewal.Format(time.RFC3339Nano)
	}
	return &response{data: data}, nil
}

// handleRenewSelf serves auth/token/renew-self: the token's TTL (or the
// requested increment) is granted again, capped at its max TTL.
func (s *Server) handleRenewSelf(req *request) (*response, error) {
	if req.op != "update" {
		return nil, errUnsupportedOp
	}
	increment, _, err := seconds(req.data, "increment")
	if err != nil {
		return nil, err
	}
	t := req.tok
	if t.root {
		return nil, userError("lease is not renewable")
	}
	now := s.now()
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	ttl := t.ttl
	if increment > 0 {
		ttl = increment
	}
	left := t.issued.Add(t.maxTTL).Sub(now)
	if left <= 0 {
		return nil, internalError("past the max TTL, cannot renew")
	}
	resp := &response{warnings: unknownParams(req.data, "token", "increment")}
	if ttl > left {
		resp.warn("TTL of %q exceeded the effective max_ttl of %q; TTL value is capped accordingly", ttl.String(), left.String())
		ttl = left
	}
	t.expires, t.lastRenewal = now.Add(ttl), now
	resp.auth = s.authBlock(t, ttl)
	s.log.Debug("devtransit: token renewed", "accessor", t.accessor, "ttl", ttl)
	return resp, nil
}

// String keeps a token's secret out of logs and error messages.
func (t *token) String() string { return fmt.Sprintf("token(accessor=%s)", t.accessor) }
