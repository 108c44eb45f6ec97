package httpapi

import (
	"strconv"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

// jwksMaxAge is how long a client may cache the JWKS (seconds). A new
// signing key version is used at once, so an offline verifier that meets
// an unknown kid should fetch the set again rather than wait.
const jwksMaxAge = 300

// jwksBody is the JWK Set with one member of credvault's beside "keys"
// (RFC 7517 section 5 lets a set carry members a reader ignores): the iss
// every key it verifies carries.
type jwksBody struct {
	Keys   []jose.JSONWebKey `json:"keys"`
	Issuer string            `json:"issuer,omitempty"`
}

// handleJWKS is GET /.well-known/jwks.json: the public keys of every
// signing key version still allowed to verify, and the issuer, without
// authentication.
func (s *Server) handleJWKS(c *fiber.Ctx) error {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	if s.cfg.Services.JWKS != nil {
		set = s.cfg.Services.JWKS.JWKS()
	}
	body, err := marshalJSON(jwksBody{Keys: set.Keys, Issuer: s.cfg.JWTIssuer})
	if err != nil {
		return credvault.Wrap(credvault.EINTERNAL, err, "encode JWKS")
	}
	c.Set(fiber.HeaderCacheControl, "public, max-age="+strconv.Itoa(jwksMaxAge))
	c.Set(fiber.HeaderContentType, "application/jwk-set+json")
	return c.Send(body)
}

// revocationsResponse is a page of the revocation feed; next_cursor is
// the since of the next poll (the last entry's cursor, or since itself
// when there is nothing new).
type revocationsResponse struct {
	Data       []*credvault.Revocation `json:"data"`
	NextCursor int64                   `json:"next_cursor"`
	HasMore    bool                    `json:"has_more"`
}

// handleRevocations is GET /v1/api-keys/revocations?since=&limit=: the JWT
// keys of the caller's org that stopped being valid before their exp.
func (s *Server) handleRevocations(c *fiber.Ctx) error {
	var since int64
	var limit int
	var err error
	if v := c.Query("since"); v != "" {
		if since, err = strconv.ParseInt(v, 10, 64); err != nil {
			return credvault.Errorf(credvault.EINVALID, "query parameter \"since\" must be a cursor from an earlier answer (0 or more)")
		}
	}
	if v := c.Query("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil {
			return credvault.Errorf(credvault.EINVALID, "query parameter \"limit\" must be from 1 to 1000")
		}
	}
	revs, err := s.cfg.Services.Keys.FindRevocations(c.UserContext(), since, limit)
	if err != nil {
		return err
	}
	out := revocationsResponse{Data: revs, NextCursor: since}
	if n := len(revs); n > 0 {
		out.NextCursor = revs[n-1].Cursor
		page := limit
		if page == 0 {
			page = 100
		}
		out.HasMore = n == page
	}
	return c.JSON(out)
}
