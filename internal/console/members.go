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
	Users []*credvault.User // those the search and role filter keep
	Total int
	Query string // the search box: email or name, any case
	Role  string // the role filter, or "" for any
	Link  *linkData
	Form  map[string]string // the add form as typed, after a refusal
}

type linkData struct {
	Email string
	URL   string
	Ends  string
}

// handleMembers lists the org's people; owners and admins also get the
// forms to add, change, remove and hand out sign-in links.
func (c *Console) handleMembers(ctx *fiber.Ctx, v *view) error {
	switch ctx.Query("notice") {
	case "added":
		v.Notice = "Member added. Create a sign-in link for them below."
	case "saved":
		v.Notice = "Role changed. Their console sessions ended; they sign in again with the new role."
	case "removed":
		v.Notice = "Member removed. Their keys and sessions ended at once."
	}
	return c.renderMembers(ctx, v, membersData{Query: strings.TrimSpace(ctx.Query("q")), Role: ctx.Query("role")}, fiber.StatusOK)
}

// renderMembers lists the members d's search and role filter keep, with
// status (a refused form shows its message on this page).
func (c *Console) renderMembers(ctx *fiber.Ctx, v *view, d membersData, status int) error {
	users, err := c.cfg.Services.Users.FindUsers(ctx.UserContext(), credvault.Page{Limit: 500})
	if err != nil {
		return c.fail(ctx, v, err)
	}
	d.Total = len(users)
	q := strings.ToLower(d.Query)
	for _, u := range users {
		if d.Role != "" && string(u.Role) != d.Role {
			continue
		}
		if q != "" && !strings.Contains(strings.ToLower(u.Email), q) && !strings.Contains(strings.ToLower(u.Name), q) {
			continue
		}
		d.Users = append(d.Users, u)
	}
	if d.Form == nil {
		d.Form = map[string]string{"role": string(credvault.RoleMember)}
	}
	v.Title, v.Nav, v.Data = "Members", "members", d
	return c.render(ctx, status, "members", v)
}

// handleMemberCreate adds a member; a refusal (a taken email, a bad role)
// shows the form again with what was typed and the field marked.
func (c *Console) handleMemberCreate(ctx *fiber.Ctx, v *view) error {
	in := credvault.CreateUserInput{
		Email: strings.TrimSpace(ctx.FormValue("email")), Name: strings.TrimSpace(ctx.FormValue("name")), Role: credvault.Role(ctx.FormValue("role")),
	}
	err := credvault.CheckPrintable("name", in.Name)
	if err == nil {
		_, err = c.cfg.Services.Users.CreateUser(ctx.UserContext(), in)
	}
	if err != nil {
		field := ""
		if credvault.ErrorCode(err) == credvault.ECONFLICT {
			field = "email" // the one unique field of a member
		}
		return c.inline(ctx, v, err, field, func(status int) error {
			return c.renderMembers(ctx, v, membersData{Form: map[string]string{"email": in.Email, "name": in.Name, "role": string(in.Role)}}, status)
		})
	}
	return ctx.Redirect("/members?notice=added", fiber.StatusSeeOther)
}

// memberFormError shows a refused change of one member on the Members page.
func (c *Console) memberFormError(ctx *fiber.Ctx, v *view, err error) error {
	return c.inline(ctx, v, err, "", func(status int) error { return c.renderMembers(ctx, v, membersData{}, status) })
}

func (c *Console) handleMemberRole(ctx *fiber.Ctx, v *view) error {
	role := credvault.Role(ctx.FormValue("role"))
	if _, err := c.cfg.Services.Users.UpdateUser(ctx.UserContext(), ctx.Params("id"), credvault.UserUpdate{Role: &role}); err != nil {
		return c.memberFormError(ctx, v, err)
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
		return c.memberFormError(ctx, v, err)
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
		return c.memberFormError(ctx, v, err)
	}
	return c.renderMembers(ctx, v, membersData{Link: &linkData{Email: u.Email, URL: c.LinkURL(ctx, tok), Ends: l.ExpiresAt.Format("15:04 UTC")}}, fiber.StatusOK)
}

// LinkURL is the address of a sign-in link: PublicURL (or the request's
// own origin) + credvault.SignInLinkPath + token.
func (c *Console) LinkURL(ctx *fiber.Ctx, tok credvault.Secret) string {
	return c.expectedOrigin(ctx) + credvault.SignInLinkPath + tok.Reveal()
}

type endpointsData struct {
	Endpoints []*credvault.Endpoint
	Scopes    []string
	Form      map[string]string
}

// handleEndpoints lists the endpoint registry with forms to add, switch
// auth mode and delete (owners and admins; the service decides).
func (c *Console) handleEndpoints(ctx *fiber.Ctx, v *view) error {
	return c.renderEndpoints(ctx, v, nil, fiber.StatusOK)
}

// renderEndpoints renders the registry with status; form is the register
// form as typed after a refusal (nil: empty).
func (c *Console) renderEndpoints(ctx *fiber.Ctx, v *view, form map[string]string, status int) error {
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
	if form == nil {
		form = map[string]string{"auth_mode": "private"}
	}
	v.Title, v.Nav, v.Data = "Endpoints", "endpoints", endpointsData{Endpoints: eps, Scopes: scopes, Form: form}
	return c.render(ctx, status, "endpoints", v)
}

// endpointFormError shows a refused endpoint form on the registry page.
func (c *Console) endpointFormError(ctx *fiber.Ctx, v *view, err error, field string, form map[string]string) error {
	return c.inline(ctx, v, err, field, func(status int) error { return c.renderEndpoints(ctx, v, form, status) })
}

func (c *Console) handleEndpointCreate(ctx *fiber.Ctx, v *view) error {
	in := credvault.CreateEndpointInput{
		Name: strings.TrimSpace(ctx.FormValue("name")), AuthMode: ctx.FormValue("auth_mode"), RequiredScopes: formValues(ctx, "required_scopes"),
	}
	err := credvault.CheckPrintable("name", in.Name)
	if err == nil {
		_, err = c.cfg.Services.Endpoints.CreateEndpoint(ctx.UserContext(), in)
	}
	if err != nil {
		field := ""
		if credvault.ErrorCode(err) == credvault.ECONFLICT {
			field = "name"
		}
		return c.endpointFormError(ctx, v, err, field, map[string]string{"name": in.Name, "auth_mode": in.AuthMode})
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
		return c.endpointFormError(ctx, v, err, "", nil)
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
		return c.endpointFormError(ctx, v, err, "", nil)
	}
	return ctx.Redirect("/endpoints", fiber.StatusSeeOther)
}

type auditData struct {
	Events       []*credvault.AuditEvent
	People       people
	Actor        string // the "who" box as typed: an email or an id
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
	ppl := c.people(ctx)
	actor := f.ActorID
	if strings.Contains(actor, "@") { // a member's email: their id
		f.ActorID = "00000000-0000-0000-0000-000000000000" // nobody, unless found
		for id, u := range ppl {
			if strings.EqualFold(u.Email, actor) {
				f.ActorID = id
			}
		}
	}
	if cur := ctx.Query("cursor"); cur != "" {
		n, err := strconv.ParseInt(cur, 10, 64)
		if err != nil {
			v.Error, v.Invalid = "query parameter \"cursor\" must be an event id; start again from the newest events", "cursor"
		}
		f.Cursor = n
	}
	d := auditData{ResourceType: f.ResourceType, ResourceID: f.ResourceID, ActorID: f.ActorID, Actor: actor, Action: f.Action, People: ppl}
	evs, err := c.cfg.Services.Audit.FindAuditEvents(ctx.UserContext(), f)
	if credvault.ErrorCode(err) == credvault.EINVALID {
		return c.inline(ctx, v, err, "", func(status int) error {
			v.Title, v.Nav, v.Data = "Audit log", "audit", d
			return c.render(ctx, status, "audit", v)
		})
	}
	if err != nil {
		return c.fail(ctx, v, err)
	}
	d.Events = evs
	if len(evs) == f.Limit {
		q := url.Values{}
		for k, val := range map[string]string{"resource_type": f.ResourceType, "resource_id": f.ResourceID, "actor_id": actor, "action": f.Action} {
			if val != "" {
				q.Set(k, val)
			}
		}
		q.Set("cursor", strconv.FormatInt(evs[len(evs)-1].ID, 10))
		d.Next = "/audit?" + q.Encode()
	}
	v.Title, v.Nav, v.Data = "Audit log", "audit", d
	status := fiber.StatusOK
	if v.Error != "" {
		status = fiber.StatusBadRequest
	}
	return c.render(ctx, status, "audit", v)
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
