package credvault

import "context"

// newAuditEvent starts an event for action on a resource, by the caller of
// ctx (or the system when there is none), with the request's id.
func newAuditEvent(ctx context.Context, orgID, action, resourceType, resourceID string, data map[string]any) *AuditEvent {
	ev := &AuditEvent{
		OrgID: orgID, Action: action, ResourceType: resourceType, ResourceID: resourceID,
		RequestID: RequestIDFrom(ctx), Data: data, ActorType: "system",
	}
	if p := PrincipalFrom(ctx); p != nil {
		ev.ActorType, ev.ActorID = p.Kind, p.UserID
		if p.Kind == KeyKindService {
			ev.ActorID = p.KeyID
		}
		if ev.Data == nil {
			ev.Data = map[string]any{}
		}
		ev.Data["key_id"] = p.KeyID
	}
	if ev.Data == nil {
		ev.Data = map[string]any{}
	}
	return ev
}

// caller returns the principal of ctx, which every service method needs.
// Errors: EUNAUTHORIZED when there is none (a wiring bug or an anonymous
// call that should not reach a service).
func caller(ctx context.Context) (*Principal, error) {
	p := PrincipalFrom(ctx)
	if p == nil {
		return nil, Errorf(EUNAUTHORIZED, "no API key: send one in the X-API-Key header")
	}
	return p, nil
}

// requireScope is the scope check every service method starts with.
// Errors: EFORBIDDEN naming the missing scope.
func requireScope(p *Principal, scope string) error {
	if !HasScope(p.Scopes, scope) {
		return &Error{Code: EFORBIDDEN, Reason: "insufficient_scope", Message: "this API key lacks the scope " + scope}
	}
	return nil
}

// requireManager is the role check for managing users, endpoints and other
// people's keys. Errors: EFORBIDDEN.
func requireManager(p *Principal, what string) error {
	if !p.Manager() {
		return &Error{Code: EFORBIDDEN, Reason: "forbidden_role", Message: "only owners and admins may " + what}
	}
	return nil
}

// AuditService reads the audit trail of the caller's org.
type AuditService struct {
	Store AuditStore
}

// FindAuditEvents lists events newest first. Errors: EFORBIDDEN (scope
// audit:read; owners and admins only).
func (s *AuditService) FindAuditEvents(ctx context.Context, f AuditFilter) ([]*AuditEvent, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireScope(p, ScopeAuditRead); err != nil {
		return nil, err
	}
	if err := requireManager(p, "read the audit trail"); err != nil {
		return nil, err
	}
	return s.Store.FindAuditEvents(ctx, p.OrgID, f)
}
