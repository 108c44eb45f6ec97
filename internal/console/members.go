package console

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

type membersData struct {
	Users []*credvault.User
	Link  *linkData
}

type linkData struct {
	Email string
	URL   string
	Ends  string
}

// handleMembers lists the org's people; owners and admins also get the
// forms to add, change, remove and hand out sign-in links.
func (c *Console) handleMembers(ctx *fiber.Ctx, v *view) error {
	users, err := c.cfg.Services.Users.FindUsers(ctx.UserContext(), credvault.Page{Limit: 500})
	if err != nil {
		return c.fail(ctx, v, err)
	}
	switch ctx.Query("notice") {
	case "added":
		v.Notice = "Member added. Create a sign-in link for them below."
	case "saved":
		v.Notice = "Role changed. Their console sessions ended; they sign in again with the new role."
	case "removed":
		v.Notice = "Member removed. Their keys and sessions ended at once."
	}
	v.Title, v.Nav, v.Data = "Members", "members", membersData{Users: users}
	return c.render(ctx, fiber.StatusOK, "members", v)
}

func (c *Console) handleMemberCreate(ctx *fiber.Ctx, v *view) error {
	_, err := c.cfg.Services.Users.CreateUser(ctx.UserContext(), credvault.CreateUserInput{
		Email: strings.TrimSpace(ctx.FormValue("email")), Name: ctx.FormValue("name"), Role: credvault.Role(ctx.FormValue("role")),
	})
	if err != nil {
		return c.fail(ctx, v, err)
	}
	return ctx.Redirect("/members?notice=added", fiber.StatusSeeOther)
}

func (c *Console) handleMemberRole(ctx *fiber.Ctx, v *view) error {
	role := credvault.Role(ctx.FormValue("role"))
	if _, err := c.cfg.Services.Users.UpdateUser(ctx.UserContext(), ctx.Params("id"), credvault.UserUpdate{Role: &role}); err != nil {
		return c.fail(ctx, v, err)
	}
	return ctx.Redirect("/members?notice=saved", fiber.StatusSeeOther)
}

func (c *Console) handleMemberRemoveConfirm(ctx *fiber.Ctx, v *view) error {
	u, err := c.cfg.Services.Users.FindUser(ctx.UserContext(), ctx.Params("id"))
	if err != nil {
		return c.fail(ctx, v, err)
	}
	v.Title, v.Nav = "Remove "+u.Email+"?", "members"
	v.Data = confirmData{Message: u.Email + " loses access at once: their API keys are revoked and their console sessions end on every instance.",
		Action: "/members/" + url.PathEscape(u.ID) + "/remove", Button: "Remove member", Back: "/members", Danger: true}
	return c.render(ctx, fiber.StatusOK, "confirm", v)
}

func (c *Console) handleMemberRemove(ctx *fiber.Ctx, v *view) error {
	if err := c.cfg.Services.Users.DeleteUser(ctx.UserContext(), ctx.Params("id")); err != nil {
		return c.fail(ctx, v, err)
	}
	return ctx.Redirect("/members?notice=removed", fiber.StatusSeeOther)
}

// handleMemberSignInLink creates a one-time sign-in link and shows it once
// (no-store), to be handed to the member.
func (c *Console) handleMemberSignInLink(ctx *fiber.Ctx, v *view) error {
	u, err := c.cfg.Services.Users.FindUser(ctx.UserContext(), ctx.Params("id"))
	if err != nil {
		return c.fail(ctx, v, err)
	}
	l, tok, err := c.cfg.Services.Sessions.CreateSignInLink(ctx.UserContext(), u.ID)
	if err != nil {
		return c.fail(ctx, v, err)
	}
	users, err := c.cfg.Services.Users.FindUsers(ctx.UserContext(), credvault.Page{Limit: 500})
	if err != nil {
		return c.fail(ctx, v, err)
	}
	v.Title, v.Nav = "Members", "members"
	v.Data = membersData{Users: users, Link: &linkData{Email: u.Email, URL: c.LinkURL(ctx, tok), Ends: l.ExpiresAt.Format("15:04 UTC")}}
	return c.render(ctx, fiber.StatusOK, "members", v)
}

// LinkURL is the address of a sign-in link: PublicURL (or the request's
// own origin) + credvault.SignInLinkPath + token.
func (c *Console) LinkURL(ctx *fiber.Ctx, tok credvault.Secret) string {
	return c.expectedOrigin(ctx) + credvault.SignInLinkPath + tok.Reveal()
}

type endpointsData struct {
	Endpoints []*credvault.Endpoint
	Scopes    []string
}

// handleEndpoints lists the endpoint registry with forms to add, switch
// auth mode and delete (owners and admins; the service decides).
func (c *Console) handleEndpoints(ctx *fiber.Ctx, v *view) error {
	eps, err := c.cfg.Services.Endpoints.FindEndpoints(ctx.UserContext(), credvault.Page{Limit: 500})
	if err != nil {
		return c.fail(ctx, v, err)
	}
	scopes := make([]string, 0, len(credvault.AllScopes))
	for _, s := range credvault.AllScopes {
		if s != credvault.ScopeAdmin {
			scopes = append(scopes, s)
		}
	}
	v.Title, v.Nav, v.Data = "Endpoints", "endpoints", endpointsData{Endpoints: eps, Scopes: scopes}
	return c.render(ctx, fiber.StatusOK, "endpoints", v)
}

func (c *Console) handleEndpointCreate(ctx *fiber.Ctx, v *view) error {
	_, err := c.cfg.Services.Endpoints.CreateEndpoint(ctx.UserContext(), credvault.CreateEndpointInput{
		Name: ctx.FormValue("name"), AuthMode: ctx.FormValue("auth_mode"), RequiredScopes: formValues(ctx, "required_scopes"),
	})
	if err != nil {
		return c.fail(ctx, v, err)
	}
	return ctx.Redirect("/endpoints", fiber.StatusSeeOther)
}

func (c *Console) handleEndpointUpdate(ctx *fiber.Ctx, v *view) error {
	mode := ctx.FormValue("auth_mode")
	scopes := formValues(ctx, "required_scopes")
	if scopes == nil {
		scopes = []string{}
	}
	if _, err := c.cfg.Services.Endpoints.UpdateEndpoint(ctx.UserContext(), ctx.Params("id"),
		credvault.EndpointUpdate{AuthMode: &mode, RequiredScopes: &scopes}); err != nil {
		return c.fail(ctx, v, err)
	}
	return ctx.Redirect("/endpoints", fiber.StatusSeeOther)
}

func (c *Console) handleEndpointDeleteConfirm(ctx *fiber.Ctx, v *view) error {
	id := url.PathEscape(ctx.Params("id"))
	v.Title, v.Nav = "Delete endpoint?", "endpoints"
	v.Data = confirmData{Message: "Verification calls naming this endpoint will fail once it is deleted.",
		Action: "/endpoints/" + id + "/delete", Button: "Delete endpoint", Back: "/endpoints", Danger: true}
	return c.render(ctx, fiber.StatusOK, "confirm", v)
}

func (c *Console) handleEndpointDelete(ctx *fiber.Ctx, v *view) error {
	if err := c.cfg.Services.Endpoints.DeleteEndpoint(ctx.UserContext(), ctx.Params("id")); err != nil {
		return c.fail(ctx, v, err)
	}
	return ctx.Redirect("/endpoints", fiber.StatusSeeOther)
}

type auditData struct {
	Events       []*credvault.AuditEvent
	ResourceType string
	ResourceID   string
	ActorID      string
	Action       string
	Next         string
}

// handleAudit is the org's audit log (owners and admins; the service
// decides), filtered by resource, actor and action, paged by event id.
func (c *Console) handleAudit(ctx *fiber.Ctx, v *view) error {
	f := credvault.AuditFilter{ResourceType: strings.TrimSpace(ctx.Query("resource_type")), ResourceID: strings.TrimSpace(ctx.Query("resource_id")),
		ActorID: strings.TrimSpace(ctx.Query("actor_id")), Action: strings.TrimSpace(ctx.Query("action")), Limit: 100}
	if cur := ctx.Query("cursor"); cur != "" {
		n, err := strconv.ParseInt(cur, 10, 64)
		if err != nil {
			return c.fail(ctx, v, credvault.Errorf(credvault.EINVALID, "query parameter \"cursor\" must be an event id"))
		}
		f.Cursor = n
	}
	evs, err := c.cfg.Services.Audit.FindAuditEvents(ctx.UserContext(), f)
	if err != nil {
		return c.fail(ctx, v, err)
	}
	d := auditData{Events: evs, ResourceType: f.ResourceType, ResourceID: f.ResourceID, ActorID: f.ActorID, Action: f.Action}
	if len(evs) == f.Limit {
		q := url.Values{}
		for k, val := range map[string]string{"resource_type": f.ResourceType, "resource_id": f.ResourceID, "actor_id": f.ActorID, "action": f.Action} {
			if val != "" {
				q.Set(k, val)
			}
		}
		q.Set("cursor", strconv.FormatInt(evs[len(evs)-1].ID, 10))
		d.Next = "/audit?" + q.Encode()
	}
	v.Title, v.Nav, v.Data = "Audit log", "audit", d
	return c.render(ctx, fiber.StatusOK, "audit", v)
}

func sortStrings(s []string) { sort.Strings(s) }

// shortValue prints an audit data value compactly (events never hold
// secrets: ids, names, counts).
func shortValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
