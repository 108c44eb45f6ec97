package httpapi

import (
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

type sharingRequest struct {
	Mode    string            `json:"mode" validate:"required,oneof=personal team members"`
	Members []credvault.Share `json:"members" validate:"dive"`
}

type createCredentialRequest struct {
	Name         string                 `json:"name" validate:"required,max=200,printable_name"`
	Service      string                 `json:"service" validate:"max=64"`
	Placement    string                 `json:"placement" validate:"omitempty,oneof=header query bearer basic"`
	ParamName    string                 `json:"param_name" validate:"max=64"`
	ValuePrefix  string                 `json:"value_prefix" validate:"max=64"`
	Username     string                 `json:"username" validate:"max=256"`
	Value        string                 `json:"value" validate:"required_unless=Kind oauth2"`
	BaseURL      string                 `json:"base_url" validate:"max=2048"`
	AllowedHosts []string               `json:"allowed_hosts"`
	Sharing      *sharingRequest        `json:"sharing"`
	TestRequest  *credvault.TestRequest `json:"test_request"`
	// kind "oauth2": credvault obtains the token through the app.
	Kind       string   `json:"kind" validate:"omitempty,oneof=static oauth2"`
	OAuthAppID string   `json:"oauth_app_id" validate:"required_if=Kind oauth2,excluded_unless=Kind oauth2"`
	Grant      string   `json:"grant" validate:"required_if=Kind oauth2,excluded_unless=Kind oauth2,omitempty,oneof=authorization_code client_credentials"`
	Scopes     []string `json:"scopes" validate:"excluded_unless=Kind oauth2"`
}

type updateCredentialRequest struct {
	Name         *string                `json:"name" validate:"omitempty,max=200,printable_name"`
	Placement    *string                `json:"placement" validate:"omitempty,oneof=header query bearer basic"`
	ParamName    *string                `json:"param_name" validate:"omitempty,max=64"`
	ValuePrefix  *string                `json:"value_prefix" validate:"omitempty,max=64"`
	Username     *string                `json:"username" validate:"omitempty,max=256"`
	Value        *string                `json:"value"`
	BaseURL      *string                `json:"base_url" validate:"omitempty,max=2048"`
	AllowedHosts *[]string              `json:"allowed_hosts"`
	TestRequest  *credvault.TestRequest `json:"test_request"`
}

// credentialResponse is a credential's metadata: never its value or
// ciphertext, only the hint (•••• and the last 4 characters).
type credentialResponse struct {
	ID           string                 `json:"id"`
	OrgID        string                 `json:"org_id"`
	OwnerID      *string                `json:"owner_id"`
	Name         string                 `json:"name"`
	Service      string                 `json:"service"`
	Placement    string                 `json:"placement"`
	ParamName    string                 `json:"param_name"`
	ValuePrefix  string                 `json:"value_prefix"`
	Username     string                 `json:"username"` // placement basic; not a secret
	BaseURL      string                 `json:"base_url"`
	AllowedHosts []string               `json:"allowed_hosts"`
	Hint         string                 `json:"hint"`
	KeyVersion   int                    `json:"key_version"`
	Sharing      credvault.Sharing      `json:"sharing"`
	TestRequest  *credvault.TestRequest `json:"test_request"`
	Permission   string                 `json:"permission"` // the caller's: use or manage
	CreatedAt    time.Time              `json:"created_at"`
	UpdatedAt    time.Time              `json:"updated_at"`
	RotatedAt    time.Time              `json:"rotated_at"`
	LastUsedAt   *time.Time             `json:"last_used_at"` // last workflow use; tests do not count
	Kind         string                 `json:"kind"`
	OAuth        *oauthStatus           `json:"oauth,omitempty"`
	// AuthorizeURL is where the person authorizes, in the answer that
	// starts an authorization (create, reconnect) only.
	AuthorizeURL string `json:"authorize_url,omitempty"`
}

func credentialJSON(c *fiber.Ctx, cr *credvault.Credential) credentialResponse {
	return credentialResponse{
		ID: cr.ID, OrgID: cr.OrgID, OwnerID: cr.OwnerID, Name: cr.Name, Service: cr.Service, Placement: cr.Placement,
		ParamName: cr.ParamName, ValuePrefix: cr.ValuePrefix, BaseURL: cr.BaseURL, AllowedHosts: cr.AllowedHosts,
		Hint: cr.Hint, KeyVersion: cr.KeyVersion, Sharing: cr.Sharing, TestRequest: cr.TestRequest,
		Permission: cr.PermissionOf(credvault.PrincipalFrom(c.UserContext())),
		CreatedAt:  cr.CreatedAt, UpdatedAt: cr.UpdatedAt, RotatedAt: cr.RotatedAt,
		Username: cr.Username, LastUsedAt: cr.LastUsedAt, Kind: cr.Kind, OAuth: oauthJSON(cr.OAuth),
	}
}

func (s *Server) handleServiceList(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"data": credvault.ServicePresets()})
}

func (s *Server) handleCredentialCreate(c *fiber.Ctx) error {
	var in createCredentialRequest
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	if in.Kind == credvault.KindOAuth2 {
		return s.createOAuthCredential(c, &in)
	}
	input := credvault.CreateCredentialInput{
		Name: in.Name, Service: in.Service, Placement: in.Placement, ParamName: in.ParamName,
		ValuePrefix: in.ValuePrefix, Username: in.Username, Value: credvault.NewSecret(in.Value), BaseURL: in.BaseURL,
		AllowedHosts: in.AllowedHosts, TestRequest: in.TestRequest,
	}
	if in.Sharing != nil {
		input.Sharing = &credvault.Sharing{Mode: in.Sharing.Mode, Members: in.Sharing.Members}
	}
	cr, err := s.cfg.Services.Credentials.CreateCredential(c.UserContext(), input)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(credentialJSON(c, cr))
}

func (s *Server) handleCredentialList(c *fiber.Ctx) error {
	p, err := pageParams(c, "service", "scope")
	if err != nil {
		return err
	}
	list, err := s.cfg.Services.Credentials.FindCredentials(c.UserContext(), strings.Clone(c.Query("service")), strings.Clone(c.Query("scope")), p)
	if err != nil {
		return err
	}
	out := make([]credentialResponse, len(list))
	for i, cr := range list {
		out[i] = credentialJSON(c, cr)
	}
	return c.JSON(page(out, p.Limit, func(r credentialResponse) string { return keysetOf(r.CreatedAt, r.ID) }))
}

func (s *Server) handleCredentialGet(c *fiber.Ctx) error {
	cr, _, err := s.cfg.Services.Credentials.FindCredential(c.UserContext(), pathID(c))
	if err != nil {
		return err
	}
	return c.JSON(credentialJSON(c, cr))
}

func (s *Server) handleCredentialUpdate(c *fiber.Ctx) error {
	var in updateCredentialRequest
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	upd := credvault.CredentialUpdate{
		Name: in.Name, Placement: in.Placement, ParamName: in.ParamName, ValuePrefix: in.ValuePrefix, Username: in.Username,
		BaseURL: in.BaseURL, AllowedHosts: in.AllowedHosts, TestRequest: in.TestRequest,
	}
	if in.Value != nil {
		v := credvault.NewSecret(*in.Value)
		upd.Value = &v
	}
	cr, err := s.cfg.Services.Credentials.UpdateCredential(c.UserContext(), pathID(c), upd)
	if err != nil {
		return err
	}
	return c.JSON(credentialJSON(c, cr))
}

func (s *Server) handleCredentialSharing(c *fiber.Ctx) error {
	var in sharingRequest
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	cr, err := s.cfg.Services.Credentials.SetSharing(c.UserContext(), pathID(c), credvault.Sharing{Mode: in.Mode, Members: in.Members})
	if err != nil {
		return err
	}
	return c.JSON(credentialJSON(c, cr))
}

func (s *Server) handleCredentialDelete(c *fiber.Ctx) error {
	force := false
	if v := c.Query("force"); v != "" {
		var err error
		if force, err = strconv.ParseBool(v); err != nil {
			return credvault.Errorf(credvault.EINVALID, "query parameter \"force\" must be true or false")
		}
	}
	if err := s.cfg.Services.Credentials.DeleteCredential(c.UserContext(), pathID(c), force); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) handleCredentialUsage(c *fiber.Ctx) error {
	f, err := int64Page(c)
	if err != nil {
		return err
	}
	uses, err := s.cfg.Services.Credentials.FindUsage(c.UserContext(), pathID(c), credvault.UsageFilter{Cursor: f.cursor, Limit: f.limit})
	if err != nil {
		return err
	}
	return c.JSON(page(uses, f.limit, func(u *credvault.Usage) string { return strconv.FormatInt(u.ID, 10) }))
}

func (s *Server) handleAuditList(c *fiber.Ctx) error {
	f, err := int64Page(c, "resource_type", "resource_id", "actor_id", "action")
	if err != nil {
		return err
	}
	events, err := s.cfg.Services.Audit.FindAuditEvents(c.UserContext(), credvault.AuditFilter{
		ResourceType: strings.Clone(c.Query("resource_type")), ResourceID: strings.Clone(c.Query("resource_id")),
		ActorID: strings.Clone(c.Query("actor_id")), Action: strings.Clone(c.Query("action")),
		Cursor: f.cursor, Limit: f.limit,
	})
	if err != nil {
		return err
	}
	return c.JSON(page(events, f.limit, func(e *credvault.AuditEvent) string { return strconv.FormatInt(e.ID, 10) }))
}

// handleRewrap runs the rewrap job over the caller's org and answers with
// its summary.
func (s *Server) handleRewrap(c *fiber.Ctx) error {
	res, err := s.cfg.Services.Rewrap.RewrapCallerOrg(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"latest_version": res.LatestVersion, "total": res.Total, "rewrapped": res.Rewrapped,
		"failed": res.Failed, "skipped": res.Skipped, "batches": res.Batches, "elapsed_ms": res.Elapsed.Milliseconds()})
}

type int64Cursor struct {
	cursor int64
	limit  int
}

// int64Page reads ?cursor=&limit= where the cursor is a numeric id (audit
// events, usage records: newest first).
func int64Page(c *fiber.Ctx, extra ...string) (int64Cursor, error) {
	out := int64Cursor{limit: 100}
	if err := knownParams(c, extra...); err != nil {
		return out, err
	}
	if v := c.Query("cursor"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return out, credvault.Errorf(credvault.EINVALID, "query parameter \"cursor\" must be the next_cursor of a previous page")
		}
		out.cursor = n
	}
	n, err := limitParam(c)
	out.limit = n
	return out, err
}
