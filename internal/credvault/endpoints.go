package credvault

import (
	"context"
	"strings"
)

// EndpointService manages the endpoint registry: owners and admins with
// scope endpoints:write register which platform APIs need no key.
type EndpointService struct {
	Store EndpointStore
}

// CreateEndpointInput is POST /v1/endpoints.
type CreateEndpointInput struct {
	Name           string
	AuthMode       string
	RequiredScopes []string
}

// CreateEndpoint registers an endpoint. Errors: EFORBIDDEN, EINVALID,
// ECONFLICT (name taken).
func (s *EndpointService) CreateEndpoint(ctx context.Context, in CreateEndpointInput) (*Endpoint, error) {
	p, err := s.writer(ctx)
	if err != nil {
		return nil, err
	}
	e := &Endpoint{OrgID: p.OrgID, Name: strings.TrimSpace(in.Name), AuthMode: in.AuthMode}
	if err := checkAuthMode(e.AuthMode); err != nil {
		return nil, err
	}
	if e.RequiredScopes, err = NormalizeScopes("required_scopes", in.RequiredScopes); err != nil {
		return nil, err
	}
	ev := newAuditEvent(ctx, p.OrgID, "endpoint.create", "endpoint", "", map[string]any{"name": e.Name, "auth_mode": e.AuthMode})
	if err := s.Store.CreateEndpoint(ctx, e, ev); err != nil {
		return nil, err
	}
	return e, nil
}

// FindEndpoints lists the org's endpoints. Errors: EFORBIDDEN (scope
// endpoints:write or keys:verify).
func (s *EndpointService) FindEndpoints(ctx context.Context, page Page) ([]*Endpoint, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if !HasScope(p.Scopes, ScopeEndpointsWrite) && !HasScope(p.Scopes, ScopeKeysVerify) {
		return nil, requireScope(p, ScopeEndpointsWrite)
	}
	return s.Store.FindEndpoints(ctx, p.OrgID, page)
}

// UpdateEndpoint changes an endpoint. Errors: EFORBIDDEN, EINVALID,
// ENOTFOUND, ECONFLICT.
func (s *EndpointService) UpdateEndpoint(ctx context.Context, id string, upd EndpointUpdate) (*Endpoint, error) {
	p, err := s.writer(ctx)
	if err != nil {
		return nil, err
	}
	if upd.AuthMode != nil {
		if err := checkAuthMode(*upd.AuthMode); err != nil {
			return nil, err
		}
	}
	if upd.Name != nil {
		n := strings.TrimSpace(*upd.Name)
		if n == "" {
			return nil, Errorf(EINVALID, "field \"name\" must not be empty")
		}
		upd.Name = &n
	}
	if upd.RequiredScopes != nil {
		sc, err := NormalizeScopes("required_scopes", *upd.RequiredScopes)
		if err != nil {
			return nil, err
		}
		upd.RequiredScopes = &sc
	}
	ev := newAuditEvent(ctx, p.OrgID, "endpoint.update", "endpoint", id, nil)
	return s.Store.UpdateEndpoint(ctx, p.OrgID, id, upd, ev)
}

// DeleteEndpoint removes an endpoint. Errors: EFORBIDDEN, ENOTFOUND.
func (s *EndpointService) DeleteEndpoint(ctx context.Context, id string) error {
	p, err := s.writer(ctx)
	if err != nil {
		return err
	}
	return s.Store.DeleteEndpoint(ctx, p.OrgID, id, newAuditEvent(ctx, p.OrgID, "endpoint.delete", "endpoint", id, nil))
}

func (s *EndpointService) writer(ctx context.Context) (*Principal, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireScope(p, ScopeEndpointsWrite); err != nil {
		return nil, err
	}
	return p, requireManager(p, "manage endpoints")
}

func checkAuthMode(m string) error {
	if m != AuthModeNone && m != AuthModePrivate {
		return Errorf(EINVALID, "field \"auth_mode\" must be one of: none private")
	}
	return nil
}
