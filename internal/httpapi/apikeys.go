package httpapi

import (
	"bytes"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

type createAPIKeyRequest struct {
	Name        string               `json:"name" validate:"required,max=200,printable_name"`
	Scopes      []string             `json:"scopes" validate:"required"`
	ExpiresIn   string               `json:"expires_in" validate:"omitempty,oneof=7d 30d 90d never"`
	ExpiresAt   *time.Time           `json:"expires_at"`
	Mode        string               `json:"mode" validate:"omitempty,oneof=live test"`
	Environment string               `json:"environment"`
	Tags        map[string]string    `json:"tags" validate:"omitempty,dive,keys,printable_name,endkeys,printable_name"`
	RateLimit   *credvault.RateLimit `json:"rate_limit"`
	Kind        string               `json:"kind" validate:"omitempty,oneof=user service"`
	UserID      string               `json:"user_id" validate:"omitempty,uuid"`
	Format      string               `json:"format" validate:"omitempty,oneof=opaque jwt"`
	Agent       *string              `json:"agent" validate:"omitempty,max=200,printable_name"`
	// IntegrationID puts the key in an integration of the caller's org.
	IntegrationID string `json:"integration_id"`
}

// updateAPIKeyRequest is PATCH /v1/api-keys/{id}; an absent field is
// left as it is.
type updateAPIKeyRequest struct {
	Name        *string                        `json:"name" validate:"omitempty,printable_name"`
	Environment *string                        `json:"environment"`
	Tags        optional[map[string]string]    `json:"tags" validate:"omitempty,dive,keys,printable_name,endkeys,printable_name"`
	Scopes      optional[[]string]             `json:"scopes"`
	RateLimit   optional[*credvault.RateLimit] `json:"rate_limit"`
	ExpiresAt   optional[*time.Time]           `json:"expires_at"`
	ExpiresIn   string                         `json:"expires_in" validate:"omitempty,oneof=7d 30d 90d never"`
	// IntegrationID moves the key; null takes it out of its integration.
	IntegrationID optional[string] `json:"integration_id"`
}

type rollAPIKeyRequest struct {
	GraceSeconds int `json:"grace_seconds"`
}

type verifyRequest struct {
	Key            string   `json:"key"`
	RequiredScopes []string `json:"required_scopes"`
	Endpoint       string   `json:"endpoint" validate:"max=200"`
}

// apiKeyResponse is a key's metadata; Key is set only in the answer that
// creates it (create, roll): the one time it is shown.
type apiKeyResponse struct {
	*credvault.APIKey
	Status string `json:"status"`
	Key    string `json:"key,omitempty"`
}

func keyResponse(k *credvault.APIKey, secret credvault.Secret) apiKeyResponse {
	return apiKeyResponse{APIKey: k, Status: k.Status(time.Now()), Key: secret.Reveal()}
}

func (s *Server) handleAPIKeyCreate(c *fiber.Ctx) error {
	var in createAPIKeyRequest
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	k, secret, err := s.cfg.Services.Keys.CreateAPIKey(c.UserContext(), credvault.CreateAPIKeyInput{
		Name: in.Name, Scopes: in.Scopes, ExpiresIn: in.ExpiresIn, ExpiresAt: in.ExpiresAt,
		Mode: in.Mode, Environment: in.Environment, Tags: in.Tags, RateLimit: in.RateLimit, Kind: in.Kind, UserID: in.UserID,
		Format: in.Format, Agent: in.Agent, IntegrationID: in.IntegrationID,
	})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusCreated).JSON(keyResponse(k, secret))
}

// handleAPIKeyList is GET /v1/api-keys: newest first, filtered by
// user_id, status, environment, tag, created_by, q, expires_within,
// integration_id and enabled.
func (s *Server) handleAPIKeyList(c *fiber.Ctx) error {
	p, err := pageParams(c, "user_id", "status", "environment", "tag", "created_by", "q", "expires_within", "integration_id", "enabled")
	if err != nil {
		return err
	}
	q := credvault.APIKeyQuery{
		UserID: strings.Clone(c.Query("user_id")), Status: strings.Clone(c.Query("status")),
		Environment: strings.Clone(c.Query("environment")), Tag: strings.Clone(c.Query("tag")),
		CreatedBy: strings.Clone(c.Query("created_by")), Query: strings.Clone(c.Query("q")),
		IntegrationID: strings.Clone(c.Query("integration_id")), Enabled: strings.Clone(c.Query("enabled")),
	}
	if q.UserID != "" && !looksLikeUUID(q.UserID) {
		return credvault.Errorf(credvault.EINVALID, "query parameter \"user_id\" must be a user id")
	}
	if q.CreatedBy != "" && q.CreatedBy != credvault.CreatedByLegacy && !looksLikeUUID(q.CreatedBy) {
		return credvault.Errorf(credvault.EINVALID, "query parameter \"created_by\" must be a user id or \"legacy\"")
	}
	if v := c.Query("expires_within"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return credvault.Errorf(credvault.EINVALID, "query parameter \"expires_within\" must be a number of days")
		}
		q.ExpiresWithinDays = &n
	}
	keys, err := s.cfg.Services.Keys.FindAPIKeys(c.UserContext(), q, p)
	if err != nil {
		return err
	}
	out := make([]apiKeyResponse, len(keys))
	for i, k := range keys {
		out[i] = keyResponse(k, credvault.Secret{})
	}
	return c.JSON(page(out, p.Limit, func(r apiKeyResponse) string { return keysetOf(r.CreatedAt, r.ID) }))
}

// handleAPIKeyUpdate is PATCH /v1/api-keys/{id}: rename, relabel, retag,
// and narrow (scopes, rate limit, expiry).
func (s *Server) handleAPIKeyUpdate(c *fiber.Ctx) error {
	var in updateAPIKeyRequest
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	upd := credvault.UpdateAPIKeyInput{
		Name: in.Name, Environment: in.Environment, Tags: in.Tags.V, Scopes: in.Scopes.V,
		RateLimit: in.RateLimit.V, ClearRateLimit: in.RateLimit.Null,
		ExpiresAt: in.ExpiresAt.V, ExpiresIn: in.ExpiresIn, ClearExpiry: in.ExpiresAt.Null,
		ClearIntegration: in.IntegrationID.Null,
	}
	if in.IntegrationID.Set && !in.IntegrationID.Null {
		upd.IntegrationID = &in.IntegrationID.V
	}
	if in.Tags.Set && upd.Tags == nil {
		upd.Tags = map[string]string{} // "tags": null or {} clears them
	}
	if in.Scopes.Set && upd.Scopes == nil {
		upd.Scopes = []string{} // refused: a key needs a scope
	}
	k, err := s.cfg.Services.Keys.UpdateAPIKey(c.UserContext(), pathID(c), upd)
	if err != nil {
		return err
	}
	return c.JSON(keyResponse(k, credvault.Secret{}))
}

func (s *Server) handleAPIKeyGet(c *fiber.Ctx) error {
	k, err := s.cfg.Services.Keys.FindAPIKey(c.UserContext(), pathID(c))
	if err != nil {
		return err
	}
	return c.JSON(keyResponse(k, credvault.Secret{}))
}

func (s *Server) handleAPIKeyRoll(c *fiber.Ctx) error {
	var in rollAPIKeyRequest
	if len(c.Body()) > 0 {
		if err := decodeBody(c, &in); err != nil {
			return err
		}
	}
	k, secret, err := s.cfg.Services.Keys.RollAPIKey(c.UserContext(), pathID(c), in.GraceSeconds)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusCreated).JSON(keyResponse(k, secret))
}

func (s *Server) handleAPIKeyRevoke(c *fiber.Ctx) error {
	k, err := s.cfg.Services.Keys.RevokeAPIKey(c.UserContext(), pathID(c))
	if err != nil {
		return err
	}
	return c.JSON(keyResponse(k, credvault.Secret{}))
}

// verifyResponse is POST /v1/api-keys/verify's answer: always 200, with the
// outcome in valid and code.
type verifyResponse struct {
	Valid     bool                `json:"valid"`
	Code      string              `json:"code"`
	KeyID     *string             `json:"key_id"`
	OrgID     *string             `json:"org_id"`
	UserID    *string             `json:"user_id"`
	Scopes    []string            `json:"scopes"`
	ExpiresAt *time.Time          `json:"expires_at"`
	RateLimit *verifyRateResponse `json:"ratelimit"`
}

type verifyRateResponse struct {
	Limit        int `json:"limit"`
	Remaining    int `json:"remaining"`
	ResetSeconds int `json:"reset_seconds"`
}

// handleAPIKeyVerify lets a gateway with scope keys:verify check a client's
// key. The one case that needs no credvault key of its own is a public
// ("none") endpoint named by id.
func (s *Server) handleAPIKeyVerify(c *fiber.Ctx) error {
	var in verifyRequest
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	input := credvault.VerifyInput{Key: credvault.NewSecret(in.Key), RequiredScopes: in.RequiredScopes, Endpoint: in.Endpoint}
	var (
		res credvault.VerifyResult
		err error
	)
	key, malformed, kerr := s.presentedKey(c)
	if kerr != nil {
		return kerr
	}
	if key == "" && !malformed && in.Endpoint != "" {
		res, err = s.cfg.Services.Verify.Check(c.UserContext(), credvault.VerifyInput{Endpoint: in.Endpoint})
		if err == nil && res.Code != credvault.VerifyPublicEndpoint {
			// Not public: the caller must authenticate after all.
			s.cfg.Telemetry.Verification(credvault.VerifyMissing)
			return s.refusal(credvault.Verification{Code: credvault.VerifyMissing})
		}
	} else {
		v, verr := s.verifyPresented(c)
		if verr != nil {
			return verr
		}
		s.cfg.Telemetry.Verification(v.Code)
		if err := s.refusal(v); err != nil {
			s.noteRefusedKey(c, v, key)
			return err
		}
		s.setPrincipal(c, v.Key)
		// The gateway's own RateLimit headers must not be mistaken for the
		// client key's, which are in the body.
		for _, h := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
			c.Response().Header.Del(h)
		}
		res, err = s.cfg.Services.Verify.Verify(c.UserContext(), input)
	}
	if err != nil {
		return err
	}
	s.cfg.Telemetry.Verification(res.Code)
	if !res.Valid && res.Code != credvault.VerifyPublicEndpoint && s.refusals.counter != nil {
		org := res.OrgID
		if p := credvault.PrincipalFrom(c.UserContext()); org == "" && p != nil {
			org = p.OrgID // an unknown key, told by one of the org's services
		}
		s.refusals.counter(org, res.KeyID, res.Code == credvault.VerifyRateLimited)
	}
	out := verifyResponse{Valid: res.Valid, Code: res.Code, Scopes: res.Scopes, ExpiresAt: res.ExpiresAt,
		KeyID: nullable(res.KeyID), OrgID: nullable(res.OrgID), UserID: nullable(res.UserID)}
	if out.Scopes == nil {
		out.Scopes = []string{}
	}
	if res.Rate.Limited {
		out.RateLimit = &verifyRateResponse{Limit: res.Rate.Limit, Remaining: res.Rate.Remaining, ResetSeconds: ceilSeconds(res.Rate.Reset)}
	}
	return c.JSON(out)
}

// handleAuthCheck is forward-auth for nginx auth_request, Traefik
// forwardAuth and Envoy ext_authz: the client's key comes in the
// configured headers; 200 with identity headers, or 401/403/429.
func (s *Server) handleAuthCheck(c *fiber.Ctx) error {
	var scopes []string
	for k, v := range c.Context().QueryArgs().All() {
		if string(k) == "scope" {
			scopes = appendScopes(scopes, v)
		}
	}
	endpoint := strings.Clone(c.Query("endpoint"))
	if s.keyInQuery(c, true) {
		return s.authErrs.inQuery
	}
	key, malformed, err := s.presentedKey(c)
	if err != nil {
		return err
	}
	in := credvault.VerifyInput{Key: credvault.NewSecret(key), RequiredScopes: scopes, Endpoint: endpoint}
	if malformed {
		s.cfg.Telemetry.Verification(credvault.VerifyMalformed)
		return s.refusal(credvault.Verification{Code: credvault.VerifyMalformed})
	}
	res, err := s.cfg.Services.Verify.Check(c.UserContext(), in)
	if err != nil {
		return err
	}
	s.cfg.Telemetry.Verification(res.Code)
	setRateHeaders(c, res.Rate)
	if err := s.refusal(credvault.Verification{Code: res.Code, Rate: res.Rate}); err != nil {
		rk := &refusedKey{id: res.KeyID, orgID: res.OrgID}
		if res.KeyID == "" && res.Code == credvault.VerifyNotFound {
			rk.display = displayOf(key)
		}
		c.Locals(refusedKeyLocal, rk)
		return err
	}
	h := &c.Response().Header
	h.SetContentTypeBytes(mimeJSON)
	if res.Code == credvault.VerifyPublicEndpoint {
		return c.Send(publicEndpointBody)
	}
	// Names already canonical: c.Set would normalize each name again on
	// every check (a fifth of the handler's time; issue 24).
	h.SetCanonical(headerOrgID, bytesOf(res.OrgID))
	h.SetCanonical(headerUserID, bytesOf(res.UserID))
	h.SetCanonical(headerKeyID, bytesOf(res.KeyID))
	h.SetCanonical(headerScopes, bytesOf(res.ScopeHeader))
	return c.Send(validBody)
}

// The identity headers of a successful check, in canonical form.
var (
	mimeJSON     = []byte(fiber.MIMEApplicationJSON)
	headerOrgID  = []byte("X-Credvault-Org-Id")
	headerUserID = []byte("X-Credvault-User-Id")
	headerKeyID  = []byte("X-Credvault-Key-Id")
	headerScopes = []byte("X-Credvault-Scopes")
)

// bytesOf views s as bytes without copying, for fasthttp setters that copy
// the value they are given (SetCanonical does) and never write to it.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// knownScopes maps each scope name to itself, so that a required scope
// named in a check's query is taken without copying it.
var knownScopes = func() map[string]string {
	m := make(map[string]string, len(credvault.AllScopes))
	for _, sc := range credvault.AllScopes {
		m[sc] = sc
	}
	return m
}()

// appendScopes appends the comma-separated scope names in v (blanks
// trimmed, empty ones skipped) to scopes. A gateway sends the parameter on
// every check, often empty ("scope=", any valid key): that costs nothing,
// and known names are not copied.
func appendScopes(scopes []string, v []byte) []string {
	for len(v) > 0 {
		part := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			part, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		part = bytes.TrimSpace(part)
		if len(part) == 0 {
			continue
		}
		sc, ok := knownScopes[string(part)]
		if !ok {
			sc = string(part)
		}
		scopes = append(scopes, sc)
	}
	return scopes
}

// Forward-auth answers on every platform call: fixed bodies, no encoding.
var (
	validBody          = []byte(`{"valid":true,"code":"VALID"}`)
	publicEndpointBody = []byte(`{"valid":true,"code":"PUBLIC_ENDPOINT"}`)
)
