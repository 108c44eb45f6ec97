package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

type createUserRequest struct {
	Email string `json:"email" validate:"required,max=320"`
	Name  string `json:"name" validate:"max=200,printable_name"`
	Role  string `json:"role" validate:"required,oneof=owner admin member"`
}

type updateUserRequest struct {
	Name *string `json:"name" validate:"omitempty,max=200,printable_name"`
	Role *string `json:"role" validate:"omitempty,oneof=owner admin member"`
}

func (s *Server) handleUserCreate(c *fiber.Ctx) error {
	var in createUserRequest
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	u, err := s.cfg.Services.Users.CreateUser(c.UserContext(), credvault.CreateUserInput{
		Email: in.Email, Name: in.Name, Role: credvault.Role(in.Role),
	})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(u)
}

func (s *Server) handleUserList(c *fiber.Ctx) error {
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	users, err := s.cfg.Services.Users.FindUsers(c.UserContext(), p)
	if err != nil {
		return err
	}
	return c.JSON(page(users, p.Limit, func(u *credvault.User) string { return keysetOf(u.CreatedAt, u.ID) }))
}

func (s *Server) handleUserGet(c *fiber.Ctx) error {
	u, err := s.cfg.Services.Users.FindUser(c.UserContext(), pathID(c))
	if err != nil {
		return err
	}
	return c.JSON(u)
}

func (s *Server) handleUserUpdate(c *fiber.Ctx) error {
	var in updateUserRequest
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	if in.Name == nil && in.Role == nil {
		return credvault.Errorf(credvault.EINVALID, "nothing to change: send \"name\" and/or \"role\"")
	}
	upd := credvault.UserUpdate{Name: in.Name}
	if in.Role != nil {
		r := credvault.Role(*in.Role)
		upd.Role = &r
	}
	u, err := s.cfg.Services.Users.UpdateUser(c.UserContext(), pathID(c), upd)
	if err != nil {
		return err
	}
	return c.JSON(u)
}

func (s *Server) handleUserDelete(c *fiber.Ctx) error {
	if err := s.cfg.Services.Users.DeleteUser(c.UserContext(), pathID(c)); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// handleWhoami is the connectivity check: who the key belongs to.
func (s *Server) handleWhoami(c *fiber.Ctx) error {
	p := credvault.PrincipalFrom(c.UserContext())
	return c.JSON(fiber.Map{
		"org_id": p.OrgID, "user_id": nullable(p.UserID), "key_id": p.KeyID,
		"kind": p.Kind, "role": nullable(string(p.Role)), "scopes": p.Scopes,
	})
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// handleSignInLinkCreate issues a one-time console sign-in link for a user
// (owners and admins; only owners for owners): 201 with the link, shown
// this once, and when it expires.
func (s *Server) handleSignInLinkCreate(c *fiber.Ctx) error {
	if s.cfg.Services.Sessions == nil {
		return fiber.ErrNotFound
	}
	l, tok, err := s.cfg.Services.Sessions.CreateSignInLink(c.UserContext(), pathID(c))
	if err != nil {
		return err
	}
	base := s.cfg.PublicURL
	if base == "" {
		base = c.Protocol() + "://" + c.Hostname()
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{
		"user_id": l.UserID, "url": base + credvault.SignInLinkPath + tok.Reveal(), "expires_at": l.ExpiresAt,
	})
}
