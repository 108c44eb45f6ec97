package credvault

import (
	"context"
)

// SetAPIKeyEnabled disables (enabled false) or enables a key by itself.
// A disabled key answers 403 api_key_disabled on every instance within a
// second, through the same invalidation as a revocation; enabling it
// restores it with its rate-limit window and usage as they were. It is an
// action (POST /v1/api-keys/{id}/disable|enable) like revoke and roll, not
// a PATCH field: PATCH only narrows a key, and enabling widens one.
// Whoever may revoke the key may disable it; enabling a key someone else
// disabled takes an owner or admin, so that a member cannot undo a
// manager's switch. Repeating the current state changes nothing.
// Errors: EFORBIDDEN, ENOTFOUND, ECONFLICT (revoked key).
func (s *APIKeyService) SetAPIKeyEnabled(ctx context.Context, id string, enabled bool) (*APIKey, error) {
	verb := "disable"
	if enabled {
		verb = "enable"
	}
	p, k, err := s.load(ctx, id, ScopeKeysWrite, verb+" other users' keys")
	if err != nil {
		return nil, err
	}
	if k.RevokedAt != nil {
		return nil, Errorf(ECONFLICT, "this key is revoked: it cannot be %sd; create a new key", verb)
	}
	if k.Enabled == enabled {
		return k, nil
	}
	if enabled && !p.Manager() && (k.DisabledBy == nil || *k.DisabledBy != p.UserID) {
		return nil, requireManager(p, "enable a key someone else disabled")
	}
	ev := newAuditEvent(ctx, p.OrgID, "api_key."+verb, "api_key", id, map[string]any{"display": k.Display})
	return s.Store.SetAPIKeyDisabled(ctx, p.OrgID, id, !enabled, p.UserID, ev)
}

// checkIntegration resolves the integration_id of a new key: "" for none,
// else an integration of the org. Errors: EINVALID naming the field.
func (s *APIKeyService) checkIntegration(ctx context.Context, orgID, id string) (*string, error) {
	if id == "" {
		return nil, nil
	}
	if _, err := s.findIntegration(ctx, orgID, id); err != nil {
		return nil, err
	}
	return &id, nil
}

func (s *APIKeyService) findIntegration(ctx context.Context, orgID, id string) (*Integration, error) {
	if s.Integrations == nil {
		return nil, Errorf(EINVALID, "field \"integration_id\": integrations are not available on this server")
	}
	if !IsUUID(id) {
		return nil, Errorf(EINVALID, "field \"integration_id\" must be an integration id")
	}
	i, err := s.Integrations.FindIntegrationByID(ctx, orgID, id)
	if ErrorCode(err) == ENOTFOUND {
		return nil, Errorf(EINVALID, "field \"integration_id\": no such integration in your org")
	}
	return i, err
}

// moveIntegration checks a PATCH that moves a key between integrations
// and returns the store's IntegrationID (nil: unchanged, "": none). Taking
// a key out of a disabled integration switches it back on, which takes an
// owner or admin, like enabling the integration. Errors: EINVALID naming
// integration_id, EFORBIDDEN.
func (s *APIKeyService) moveIntegration(ctx context.Context, p *Principal, k *APIKey, in UpdateAPIKeyInput) (*string, error) {
	if in.IntegrationID == nil && !in.ClearIntegration {
		return nil, nil
	}
	next := ""
	if in.IntegrationID != nil {
		if *in.IntegrationID == "" {
			return nil, Errorf(EINVALID, "field \"integration_id\" must be an integration id, or null to take the key out of its integration")
		}
		if _, err := s.findIntegration(ctx, p.OrgID, *in.IntegrationID); err != nil {
			return nil, err
		}
		next = *in.IntegrationID
	}
	if k.IntegrationID != nil && *k.IntegrationID != next && !p.Manager() {
		cur, err := s.findIntegration(ctx, p.OrgID, *k.IntegrationID)
		if err != nil {
			return nil, err
		}
		if !cur.Enabled {
			return nil, requireManager(p, "move a key out of a disabled integration")
		}
	}
	return &next, nil
}

// switchFilters reads the integration_id and enabled filters of a key
// listing. Errors: EINVALID naming the query parameter.
func (q APIKeyQuery) switchFilters() (string, *bool, error) {
	if q.IntegrationID != "" && q.IntegrationID != IntegrationNone && !IsUUID(q.IntegrationID) {
		return "", nil, Errorf(EINVALID, "query parameter \"integration_id\" must be an integration id or %q", IntegrationNone)
	}
	switch q.Enabled {
	case "":
		return q.IntegrationID, nil, nil
	case "true", "false":
		b := q.Enabled == "true"
		return q.IntegrationID, &b, nil
	}
	return "", nil, Errorf(EINVALID, "query parameter \"enabled\" must be true or false")
}

// disabledError is the 403 of a key refused because it, or its
// integration, is switched off.
func disabledError(code string) error {
	if code == VerifyIntegrationDisabled {
		return &Error{Code: EFORBIDDEN, Reason: "integration_disabled",
			Message: "this API key's integration is disabled: an owner or admin can enable it (PATCH /v1/integrations/{id} {\"enabled\": true})"}
	}
	return &Error{Code: EFORBIDDEN, Reason: "api_key_disabled",
		Message: "this API key is disabled: enable it with POST /v1/api-keys/{id}/enable"}
}
