package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"credvault/api/client"
)

// errNoSuchMember is a member reference (an email) that matches nobody in
// the caller's org: exit code ExitNotFound, as a 404 from credvault.
type errNoSuchMember struct{ ref string }

func (e errNoSuchMember) Error() string {
	return fmt.Sprintf("no member %s in your org (see `credvault users list`)", e.ref)
}

// memberIDs resolves member references, each an email (matched without
// regard to case) or a user id, to user ids. Emails cost one listing of
// the org's members (users:read), read page by page; ids pass as they are.
type memberIDs struct {
	api     *client.ClientWithResponses
	byEmail map[string]uuid.UUID
	emails  map[uuid.UUID]string
}

// resolve returns the user id ref names. Errors: a usage error for a ref
// that is neither an id nor an email; errNoSuchMember; the listing's
// error (401, 403 without users:read, unreachable).
func (m *memberIDs) resolve(ctx context.Context, flagName, ref string) (uuid.UUID, error) {
	if id, err := uuid.Parse(ref); err == nil {
		return id, nil
	}
	if !strings.Contains(ref, "@") {
		return uuid.Nil, usageErrorf("%s %q: give a member's email or user id", flagName, ref)
	}
	if err := m.load(ctx); err != nil {
		return uuid.Nil, err
	}
	id, ok := m.byEmail[strings.ToLower(ref)]
	if !ok {
		return uuid.Nil, errNoSuchMember{ref: ref}
	}
	return id, nil
}

// email is the email of user id, or "" when the members could not be
// listed (the caller lacks users:read) or id is not among them.
func (m *memberIDs) email(ctx context.Context, id uuid.UUID) string {
	if m.load(ctx) != nil {
		return ""
	}
	return m.emails[id]
}

func (m *memberIDs) load(ctx context.Context) error {
	if m.byEmail != nil {
		return nil
	}
	byEmail, emails := map[string]uuid.UUID{}, map[uuid.UUID]string{}
	limit := client.Limit(200)
	params := &client.UserListParams{Limit: &limit}
	for range 100 { // at most 20,000 members
		r, err := m.api.UserListWithResponse(ctx, params)
		if err == nil {
			err = client.Check(r.HTTPResponse, r.Body)
		}
		if err != nil {
			return err
		}
		for _, u := range r.JSON200.Data {
			byEmail[strings.ToLower(string(u.Email))] = u.Id
			emails[u.Id] = string(u.Email)
		}
		if r.JSON200.NextCursor == nil || *r.JSON200.NextCursor == "" {
			break
		}
		cur := client.Cursor(*r.JSON200.NextCursor)
		params.Cursor = &cur
	}
	m.byEmail, m.emails = byEmail, emails
	return nil
}
