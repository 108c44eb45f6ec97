package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

type createEndpointRequest struct {
	Name           string   `json:"name" validate:"required,max=200,printable_name"`
	AuthMode       string   `json:"auth_mode" validate:"required,oneof=none private"`
	RequiredScopes []string `json:"required_scopes"`
}

type updateEndpointRequest struct {
	Name           *string   `json:"name" validate:"omitempty,max=200,printable_name"`
	AuthMode       *string   `json:"auth_mode" validate:"omitempty,oneof=none private"`
	RequiredScopes *[]string `json:"required_scopes"`
}

func (s *Server) handleEndpointCreate(c *fiber.Ctx) error {
	var in createEndpointRequest
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	e, err := s.cfg.Services.Endpoints.CreateEndpoint(c.UserContext(), credvault.CreateEndpointInput{
		Name: in.Name, AuthMode: in.AuthMode, RequiredScopes: in.RequiredScopes,
	})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(e)
}

func (s *Server) handleEndpointList(c *fiber.Ctx) error {
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	eps, err := s.cfg.Services.Endpoints.FindEndpoints(c.UserContext(), p)
	if err != nil {
		return err
	}
	return c.JSON(page(eps, p.Limit, func(e *credvault.Endpoint) string { return keysetOf(e.CreatedAt, e.ID) }))
}

func (s *Server) handleEndpointUpdate(c *fiber.Ctx) error {
	var in updateEndpointRequest
	if err := decodeBody(c, &in); err != nil {
		return err
	}
	if in.Name == nil && in.AuthMode == nil && in.RequiredScopes == nil {
		return credvault.Errorf(credvault.EINVALID, "nothing to change: send \"name\", \"auth_mode\" and/or \"required_scopes\"")
	}
	e, err := s.cfg.Services.Endpoints.UpdateEndpoint(c.UserContext(), pathID(c), credvault.EndpointUpdate{
		Name: in.Name, AuthMode: in.AuthMode, RequiredScopes: in.RequiredScopes,
	})
	if err != nil {
		return err
	}
	return c.JSON(e)
}

func (s *Server) handleEndpointDelete(c *fiber.Ctx) error {
	if err := s.cfg.Services.Endpoints.DeleteEndpoint(c.UserContext(), pathID(c)); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
