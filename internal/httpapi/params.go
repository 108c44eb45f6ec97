package httpapi

import (
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

// listResponse is the shape of every listing: a page of items and the
// cursor of the next page (null on the last one).
type listResponse[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// pageParams reads ?cursor=&limit= (limit 1..500, default 100). Errors:
// EINVALID naming the parameter.
func pageParams(c *fiber.Ctx) (credvault.Page, error) {
	p := credvault.Page{Cursor: c.Query("cursor"), Limit: 100}
	if p.Cursor != "" && !looksLikeUUID(p.Cursor) {
		return p, credvault.Errorf(credvault.EINVALID, "query parameter \"cursor\" must be the next_cursor of a previous page")
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return p, credvault.Errorf(credvault.EINVALID, "query parameter \"limit\" must be a number from 1 to 500")
		}
		p.Limit = n
	}
	p.Cursor = strings.Clone(p.Cursor)
	return p, nil
}

// page builds a listResponse; the next cursor is the last item's id when
// the page is full.
func page[T any](items []T, limit int, id func(T) string) listResponse[T] {
	r := listResponse[T]{Data: items}
	if r.Data == nil {
		r.Data = []T{}
	}
	if len(items) == limit && limit > 0 {
		next := id(items[len(items)-1])
		r.NextCursor = &next
	}
	return r
}

// pathID returns the :id path parameter, copied (Fiber reuses its buffers).
func pathID(c *fiber.Ctx) string { return strings.Clone(c.Params("id")) }

func looksLikeUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if r != '-' {
				return false
			}
		} else if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}
