package httpapi

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"credvault/internal/credvault"
)

// queryKeyNames are query parameters that announce an API key. A key in a
// URL ends up in access logs, browser history and Referer headers, so
// credvault refuses it instead of reading it.
var queryKeyNames = []string{"api_key", "apikey", "api-key", "x-api-key", "access_token", "key"}

// presentedKey reads the caller's key from every line of the configured
// headers (all of them, not the first: a request authenticates as exactly
// one key). Authorization counts only with the Bearer scheme. It returns
// "" when no header carries a key, malformed when none does but
// Authorization has another scheme, and a 400 ambiguous_api_key error
// naming the headers when two different keys are present (identical
// copies are one key). The key aliases the request's header buffer, as
// Fiber's own c.Get does: copy it to keep it past the handler.
func (s *Server) presentedKey(c *fiber.Ctx) (key string, malformed bool, err error) {
	var (
		found     []byte
		foundIn   string
		hdr       = &c.Request().Header
		bearer    = []byte("Bearer")
		otherAuth bool
	)
	for _, h := range s.cfg.AuthHeaders {
		authz := strings.EqualFold(h, fiber.HeaderAuthorization)
		for _, raw := range hdr.PeekAll(h) {
			v := bytes.TrimSpace(raw)
			if authz && len(v) > 0 {
				scheme, rest, ok := bytes.Cut(v, []byte(" "))
				if !ok || !bytes.EqualFold(scheme, bearer) {
					otherAuth = true
					continue
				}
				v = bytes.TrimSpace(rest)
			}
			switch {
			case len(v) == 0:
			case found == nil:
				found, foundIn = v, h
			case !bytes.Equal(found, v):
				return "", false, ambiguousKey(foundIn, h)
			}
		}
	}
	if found == nil {
		return "", otherAuth, nil
	}
	return utils.UnsafeString(found), false, nil
}

// ambiguousKey is the 400 for a request that carries two different keys,
// in the headers first and second (which may be the same header twice).
func ambiguousKey(first, second string) error {
	where := "two " + first + " header lines"
	if !strings.EqualFold(first, second) {
		where = first + " and " + second
	}
	return &credvault.Error{Code: credvault.EINVALID, Reason: "ambiguous_api_key",
		Message: "the request carries different API keys (" + where + "); a request authenticates as exactly one key: send one"}
}

// keyInQuery reports whether the query string carries something that is,
// or is named like, an API key.
func (s *Server) keyInQuery(c *fiber.Ctx, checkNames bool) bool {
	found := false
	livePrefix, testPrefix := s.keyPrefixes[0], s.keyPrefixes[1]
	for k, v := range c.Context().QueryArgs().All() {
		if found {
			continue
		}
		val := string(v)
		if strings.HasPrefix(val, livePrefix) || strings.HasPrefix(val, testPrefix) {
			found = true
			continue
		}
		if checkNames {
			// A JWT key too; not on proxied paths, whose query belongs to
			// the upstream (which may well use JWTs of its own).
			if credvault.LooksLikeJWS(val) {
				found = true
				continue
			}
			name := strings.ToLower(string(k))
			for _, n := range queryKeyNames {
				if name == n {
					found = true
					continue
				}
			}
			for _, h := range s.cfg.AuthHeaders {
				if strings.EqualFold(name, h) {
					found = true
					continue
				}
			}
		}
	}
	return found
}

// keyHeadersHint says where a key goes, naming the configured headers in
// order: `in the X-API-Key header, as Authorization: Bearer <key> or in the
// nected-api-key header`.
func keyHeadersHint(headers []string) string {
	parts := make([]string, len(headers))
	for i, h := range headers {
		if strings.EqualFold(h, fiber.HeaderAuthorization) {
			parts[i] = "as Authorization: Bearer <key>"
		} else {
			parts[i] = "in the " + h + " header"
		}
	}
	if len(parts) < 2 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " or " + parts[len(parts)-1]
}

// authErrors are the 401s whose message names the configured headers.
type authErrors struct {
	missing, inQuery error
}

func newAuthErrors(headers []string) authErrors {
	hint := keyHeadersHint(headers)
	return authErrors{
		missing: &credvault.Error{Code: credvault.EUNAUTHORIZED, Reason: "missing_api_key", Message: "no API key: send it " + hint},
		inQuery: &credvault.Error{Code: credvault.EUNAUTHORIZED, Reason: "api_key_in_query",
			Message: "API keys are not accepted in the URL query string (URLs end up in logs); send the key " + hint},
	}
}

// refusal is credvault.VerificationError with the missing-key message
// naming this server's headers (CREDVAULT_AUTH_HEADERS).
func (s *Server) refusal(v credvault.Verification) error {
	if v.Code == credvault.VerifyMissing {
		return s.authErrs.missing
	}
	return credvault.VerificationError(v)
}

// verifyPresented checks the key the request carries: the shared first step
// of the auth middleware and of forward-auth. It sets the RateLimit headers.
func (s *Server) verifyPresented(c *fiber.Ctx) (credvault.Verification, error) {
	// A proxied call's query belongs to the upstream, where "key" or
	// "api_key" are ordinary names; a credvault key there is still refused.
	if s.keyInQuery(c, !strings.HasPrefix(c.Path(), proxyPrefix)) {
		return credvault.Verification{}, s.authErrs.inQuery
	}
	key, malformed, err := s.presentedKey(c)
	switch {
	case err != nil:
		return credvault.Verification{}, err
	case malformed:
		return credvault.Verification{Code: credvault.VerifyMalformed}, nil
	case key == "":
		return credvault.Verification{Code: credvault.VerifyMissing}, nil
	}
	v, err := s.cfg.Services.Verifier.Verify(c.UserContext(), key)
	if err != nil {
		return v, err
	}
	setRateHeaders(c, v.Rate)
	return v, nil
}

// authenticate is the middleware in front of every /v1 route that needs a
// key: it verifies the caller's key and puts the Principal in the request
// context, or answers 401/429.
func (s *Server) authenticate(c *fiber.Ctx) error {
	v, err := s.verifyPresented(c)
	if err != nil {
		return err
	}
	s.cfg.Telemetry.Verification(v.Code)
	if err := s.refusal(v); err != nil {
		key, _, _ := s.presentedKey(c)
		s.noteRefusedKey(c, v, key)
		return err
	}
	s.setPrincipal(c, v.Key)
	return c.Next()
}

func (s *Server) setPrincipal(c *fiber.Ctx, k *credvault.AuthKey) {
	p := credvault.Principal{OrgID: k.OrgID, UserID: k.UserID, KeyID: k.ID, Kind: k.Kind, Role: k.Role, Scopes: k.Scopes}
	id := c.Response().Header.Peek(headerRequestID) // copied by WithCallerCopy
	if len(id) == 0 {
		id = []byte(requestID(c))
	}
	c.SetUserContext(credvault.WithCallerCopy(c.UserContext(), p, id))
}

// setRateHeaders writes the RateLimit-* headers (IETF draft) for a key
// with a limit, and Retry-After when it is exhausted.
func setRateHeaders(c *fiber.Ctx, d credvault.RateDecision) {
	if !d.Limited {
		return
	}
	// Canonical names and numbers formatted on the stack: c.Set would
	// normalize each name and strconv.Itoa allocate each value over 99.
	h := &c.Response().Header
	var buf [20]byte
	h.SetCanonical(headerRateLimit, strconv.AppendInt(buf[:0], int64(d.Limit), 10))
	h.SetCanonical(headerRateRemaining, strconv.AppendInt(buf[:0], int64(d.Remaining), 10))
	h.SetCanonical(headerRateReset, strconv.AppendInt(buf[:0], int64(ceilSeconds(d.Reset)), 10))
	if !d.Allowed {
		h.SetCanonical(headerRetryAfter, strconv.AppendInt(buf[:0], int64(max(1, ceilSeconds(d.RetryAfter))), 10))
	}
}

// The RateLimit headers' names in canonical form.
var (
	headerRateLimit     = []byte("Ratelimit-Limit")
	headerRateRemaining = []byte("Ratelimit-Remaining")
	headerRateReset     = []byte("Ratelimit-Reset")
	headerRetryAfter    = []byte(fiber.HeaderRetryAfter)
)

// ceilSeconds rounds d up to whole seconds, as the headers count them.
func ceilSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}

// wwwAuthenticate is the challenge of a 401 (RFC 6750): no error attribute
// when no credentials were sent, invalid_token otherwise.
func wwwAuthenticate(reason, message string) string {
	if reason == "missing_api_key" {
		return `Bearer realm="credvault"`
	}
	return `Bearer realm="credvault", error="invalid_token", error_description="` + strings.ReplaceAll(message, `"`, `'`) + `"`
}
