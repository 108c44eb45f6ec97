package credvault

import (
	"context"
	"strings"
	"time"
)

// Integration groups API keys: an API integration of the platform, often
// connected to an AI agent. Disabling it makes every key of it answer 403
// integration_disabled on every instance, through the same invalidation
// as a revocation; enabling it restores them. Nothing is revoked and no
// rate-limit or usage state is lost.
type Integration struct {
	ID          string            `json:"id"`
	OrgID       string            `json:"org_id"`
	Name        string            `json:"name"`
	Agent       *string           `json:"agent"`       // the AI agent it serves, if any
	Environment string            `json:"environment"` // a free label, as on keys
	Tags        map[string]string `json:"tags"`
	Enabled     bool              `json:"enabled"`
	CreatedBy   *string           `json:"created_by"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
}

// IntegrationStore persists integrations.
type IntegrationStore interface {
	// CreateIntegration stores i; ECONFLICT when the org has one of that name.
	CreateIntegration(ctx context.Context, i *Integration, ev *AuditEvent) error
	// FindIntegrationByID returns ENOTFOUND for an id outside orgID.
	FindIntegrationByID(ctx context.Context, orgID, id string) (*Integration, error)
	FindIntegrations(ctx context.Context, orgID string, f IntegrationFilter) ([]*Integration, error)
	// UpdateIntegration applies upd; when Enabled changes it tells every
	// instance to drop the integration's keys from its caches
	// ("integration:<id>"), in the transaction of the change.
	UpdateIntegration(ctx context.Context, orgID, id string, upd IntegrationUpdate, ev *AuditEvent) (*Integration, error)
	// DeleteIntegration removes it; ECONFLICT (integration_has_keys) while
	// it has usable keys (neither revoked nor expired).
	DeleteIntegration(ctx context.Context, orgID, id string, ev *AuditEvent) error
	// IntegrationVerificationsPerDay returns its counts for days >= since,
	// oldest first; days without verifications are absent.
	IntegrationVerificationsPerDay(ctx context.Context, id string, since time.Time) ([]KeyDayCount, error)
}

// IntegrationFilter narrows a listing, newest first; zero fields do not
// filter.
type IntegrationFilter struct {
	Enabled     *bool
	Environment string
	Agent       string
	TagKey      string
	TagValue    *string
	Query       string // case-insensitive substring of the name
	Page
}

// IntegrationUpdate holds what PATCH may change; nil leaves a field.
type IntegrationUpdate struct {
	Name        *string
	Agent       *string // with ClearAgent false; "" never reaches the store
	ClearAgent  bool
	Environment *string
	Tags        map[string]string
	Enabled     *bool
}

// IntegrationService holds the rules: anyone with keys:read sees the
// org's integrations (to put a key in one); owners and admins with
// keys:write create, change, switch and delete them.
type IntegrationService struct {
	Store IntegrationStore
	Now   func() time.Time
}

// IntegrationInput is POST /v1/integrations; Enabled nil means true.
type IntegrationInput struct {
	Name        string
	Agent       *string
	Environment string
	Tags        map[string]string
	Enabled     *bool
}

// CreateIntegration stores a new integration. Errors: EFORBIDDEN (scope
// keys:write, role), EINVALID naming the field, ECONFLICT (name taken).
func (s *IntegrationService) CreateIntegration(ctx context.Context, in IntegrationInput) (*Integration, error) {
	p, err := integrationManager(ctx, "create integrations")
	if err != nil {
		return nil, err
	}
	i := &Integration{OrgID: p.OrgID, Enabled: true, Environment: in.Environment}
	if i.Name, err = checkName(in.Name); err != nil {
		return nil, err
	}
	if in.Agent != nil {
		a, err := checkAgent(*in.Agent)
		if err != nil {
			return nil, err
		}
		i.Agent = &a
	}
	if err := CheckEnvironmentLabel("environment", in.Environment); err != nil {
		return nil, err
	}
	if i.Tags, err = checkTags(in.Tags); err != nil {
		return nil, err
	}
	if in.Enabled != nil {
		i.Enabled = *in.Enabled
	}
	if p.UserID != "" {
		id := p.UserID
		i.CreatedBy = &id
	}
	ev := newAuditEvent(ctx, p.OrgID, "integration.create", "integration", "", map[string]any{
		"name": i.Name, "environment": i.Environment, "enabled": i.Enabled,
	})
	if err := s.Store.CreateIntegration(ctx, i, ev); err != nil {
		return nil, err
	}
	return i, nil
}

// FindIntegration returns one integration of the caller's org. Errors:
// EFORBIDDEN (scope keys:read), ENOTFOUND.
func (s *IntegrationService) FindIntegration(ctx context.Context, id string) (*Integration, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireScope(p, ScopeKeysRead); err != nil {
		return nil, err
	}
	return s.Store.FindIntegrationByID(ctx, p.OrgID, id)
}

// IntegrationQuery is what GET /v1/integrations filters by.
type IntegrationQuery struct {
	Enabled     string // "", "true" or "false"
	Environment string
	Agent       string
	Tag         string // "key" or "key=value"
	Query       string
}

// FindIntegrations lists the org's integrations newest first. Errors:
// EFORBIDDEN (scope keys:read), EINVALID naming the query parameter.
func (s *IntegrationService) FindIntegrations(ctx context.Context, q IntegrationQuery, page Page) ([]*Integration, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireScope(p, ScopeKeysRead); err != nil {
		return nil, err
	}
	f := IntegrationFilter{Environment: q.Environment, Agent: strings.TrimSpace(q.Agent), Query: strings.TrimSpace(q.Query), Page: page}
	switch q.Enabled {
	case "":
	case "true", "false":
		b := q.Enabled == "true"
		f.Enabled = &b
	default:
		return nil, Errorf(EINVALID, "query parameter \"enabled\" must be true or false")
	}
	if err := CheckEnvironmentLabel("environment", f.Environment); err != nil {
		return nil, Errorf(EINVALID, "query parameter %s", strings.TrimPrefix(ErrorMessage(err), "field "))
	}
	if f.TagKey, f.TagValue, err = parseTagFilter(q.Tag); err != nil {
		return nil, err
	}
	if len(f.Query) > 200 || len(f.Agent) > maxAgentLen {
		return nil, Errorf(EINVALID, "query parameters \"q\" and \"agent\" are at most 200 characters")
	}
	return s.Store.FindIntegrations(ctx, p.OrgID, f)
}

// UpdateIntegration changes an integration. Switching Enabled reaches
// every instance within a second: its keys answer 403
// integration_disabled, or work again. Errors: EFORBIDDEN, ENOTFOUND,
// EINVALID naming the field (or nothing to change), ECONFLICT (name taken).
func (s *IntegrationService) UpdateIntegration(ctx context.Context, id string, in IntegrationUpdate) (*Integration, error) {
	p, err := integrationManager(ctx, "change integrations")
	if err != nil {
		return nil, err
	}
	cur, err := s.Store.FindIntegrationByID(ctx, p.OrgID, id)
	if err != nil {
		return nil, err
	}
	upd, changed := IntegrationUpdate{Enabled: in.Enabled, ClearAgent: in.ClearAgent}, []string{}
	if in.Name != nil {
		name, err := checkName(*in.Name)
		if err != nil {
			return nil, err
		}
		upd.Name, changed = &name, append(changed, "name")
	}
	if in.Agent != nil {
		a, err := checkAgent(*in.Agent)
		if err != nil {
			return nil, err
		}
		upd.Agent, changed = &a, append(changed, "agent")
	}
	if in.ClearAgent {
		changed = append(changed, "agent")
	}
	if in.Environment != nil {
		if err := CheckEnvironmentLabel("environment", *in.Environment); err != nil {
			return nil, err
		}
		upd.Environment, changed = in.Environment, append(changed, "environment")
	}
	if in.Tags != nil {
		if upd.Tags, err = checkTags(in.Tags); err != nil {
			return nil, err
		}
		changed = append(changed, "tags")
	}
	if in.Enabled != nil {
		changed = append(changed, "enabled")
	}
	if len(changed) == 0 {
		return nil, Errorf(EINVALID, "nothing to change: send name, agent, environment, tags or enabled")
	}
	action := "integration.update"
	if in.Enabled != nil && *in.Enabled != cur.Enabled && len(changed) == 1 {
		action = "integration.disable"
		if *in.Enabled {
			action = "integration.enable"
		}
	}
	ev := newAuditEvent(ctx, p.OrgID, action, "integration", id, map[string]any{"name": cur.Name, "changed": changed})
	if in.Enabled != nil {
		ev.Data["enabled"] = *in.Enabled
	}
	return s.Store.UpdateIntegration(ctx, p.OrgID, id, upd, ev)
}

// DeleteIntegration removes an integration without usable keys (revoked
// and expired ones are detached). Errors: EFORBIDDEN, ENOTFOUND,
// ECONFLICT integration_has_keys (move or revoke them first).
func (s *IntegrationService) DeleteIntegration(ctx context.Context, id string) error {
	p, err := integrationManager(ctx, "delete integrations")
	if err != nil {
		return err
	}
	cur, err := s.Store.FindIntegrationByID(ctx, p.OrgID, id)
	if err != nil {
		return err
	}
	ev := newAuditEvent(ctx, p.OrgID, "integration.delete", "integration", id, map[string]any{"name": cur.Name})
	return s.Store.DeleteIntegration(ctx, p.OrgID, id, ev)
}

// IntegrationUsage returns an integration's verifications per UTC day
// (valid, rate-limited and refused, by reason) for the last days (1-90),
// oldest first, and the first day covered. Errors: EFORBIDDEN (scope
// keys:read), ENOTFOUND, EINVALID (days).
func (s *IntegrationService) IntegrationUsage(ctx context.Context, id string, days int) ([]KeyDayCount, time.Time, error) {
	since, err := statsSince(s.Now, days)
	if err != nil {
		return nil, time.Time{}, err
	}
	i, err := s.FindIntegration(ctx, id)
	if err != nil {
		return nil, time.Time{}, err
	}
	out, err := s.Store.IntegrationVerificationsPerDay(ctx, i.ID, since)
	return out, since, err
}

// integrationManager is the caller when they may change integrations:
// scope keys:write and role owner or admin.
func integrationManager(ctx context.Context, what string) (*Principal, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireScope(p, ScopeKeysWrite); err != nil {
		return nil, err
	}
	return p, requireManager(p, what)
}

func checkName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 {
		return "", Errorf(EINVALID, "field \"name\" must be 1-200 characters")
	}
	return name, nil
}

func checkAgent(agent string) (string, error) {
	a := strings.TrimSpace(agent)
	if a == "" || len(a) > maxAgentLen {
		return "", Errorf(EINVALID, "field \"agent\" must be 1-%d characters (send null to clear it)", maxAgentLen)
	}
	return a, nil
}

// parseTagFilter reads a "key" or "key=value" tag filter. Errors:
// EINVALID naming the query parameter "tag".
func parseTagFilter(tag string) (string, *string, error) {
	if tag == "" {
		return "", nil, nil
	}
	k, v, hasValue := strings.Cut(tag, "=")
	if k == "" || len(k) > maxTagKeyLen || len(v) > maxTagValueLen {
		return "", nil, Errorf(EINVALID, "query parameter \"tag\" must be key or key=value (key 1-%d characters)", maxTagKeyLen)
	}
	if hasValue {
		return k, &v, nil
	}
	return k, nil, nil
}
