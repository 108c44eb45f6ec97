package console

import (
	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

// people are the org's members by user id, for showing a person by name
// and email wherever an id is stored (audit log, sharing, key owners).
// Empty when the caller may not list members (a key session without
// users:read): pages then show the id.
type people map[string]*credvault.User

// people reads the org's members once per page.
func (c *Console) people(ctx *fiber.Ctx) people {
	out := people{}
	users, err := c.cfg.Services.Users.FindUsers(ctx.UserContext(), credvault.Page{Limit: 500})
	if err != nil {
		return out
	}
	for _, u := range users {
		out[u.ID] = u
	}
	return out
}

// personRef is one person (or key) as the "person" partial shows it: the
// label a person reads (name and email, or email), and the id one click
// away in a disclosure; Href links somewhere useful about it.
type personRef struct {
	Label, Detail, ID, Href, LinkText string
}

// person is the {{person $.People "user" .ActorID}} helper: a user id
// becomes "Name <email>" (or the email), a service key id links to the
// key, "system" is credvault itself.
func person(p people, kind, id string) personRef {
	switch {
	case kind == credvault.KeyKindService:
		return personRef{Label: "service key", ID: id, Href: "/api-keys/" + id, LinkText: "open the key"}
	case id == "" && kind == "system":
		return personRef{Label: "credvault"}
	case id == "":
		return personRef{Label: "—"}
	}
	u, ok := p[id]
	if !ok {
		return personRef{Label: "former member", ID: id, Href: "/audit?actor_id=" + id, LinkText: "their events"}
	}
	r := personRef{Label: u.Email, ID: id, Href: "/audit?actor_id=" + id, LinkText: "their events"}
	if u.Name != "" {
		r.Label, r.Detail = u.Name, u.Email
	}
	return r
}
