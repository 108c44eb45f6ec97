package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

// jwksBody is the JWK Set with one member of credvault's beside "keys"
// (RFC 7517 section 5 lets a set carry members a reader ignores): the iss
// every key it verifies carries.
type jwksBody struct {
	Keys   []jose.JSONWebKey `json:"keys"`
	Issuer string            `json:"issuer,omitempty"`
}

// handleJWKS is GET /.well-known/jwks.json: the public keys of every
// signing key version still allowed to verify, and the issuer, without
// authentication. It is cacheable for credvault.JWKSMaxAge and carries a
// strong ETag (a digest of the body); a request whose If-None-Match names
// it gets 304 without a body (RFC 9110 §13.1.2).
func (s *Server) handleJWKS(c *fiber.Ctx) error {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	if s.cfg.Services.JWKS != nil {
		set = s.cfg.Services.JWKS.JWKS()
	}
	body, err := marshalJSON(jwksBody{Keys: set.Keys, Issuer: s.cfg.JWTIssuer})
	if err != nil {
		return credvault.Wrap(credvault.EINTERNAL, err, "encode JWKS")
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	c.Set(fiber.HeaderCacheControl, "public, max-age="+strconv.Itoa(int(credvault.JWKSMaxAge.Seconds())))
	c.Set(fiber.HeaderETag, etag)
	if etagMatches(c.Get(fiber.HeaderIfNoneMatch), etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, "application/jwk-set+json")
	return c.Send(body)
}

// etagMatches reports whether an If-None-Match field value names etag:
// "*", or a comma-separated list compared weakly (a W/ prefix is ignored),
// as RFC 9110 §13.1.2 says.
func etagMatches(field, etag string) bool {
	for _, t := range strings.Split(field, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
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
