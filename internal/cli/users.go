package cli

import (
	"context"
	"flag"
	"strings"

	"github.com/google/uuid"

	"credvault/api/client"
	"credvault/internal/credvault"
)

var userCommands = []subcommand{
	{"list", usersList},
	{"create", usersCreate},
	{"get", usersGet},
	{"update", usersUpdate},
	{"delete", usersDelete},
}

var userHeader = []string{"ID", "EMAIL", "NAME", "ROLE", "CREATED"}

func userRow(u client.User) []string {
	return []string{u.Id.String(), string(u.Email), orDash(u.Name), string(u.Role), timeOrDash(&u.CreatedAt)}
}

func usersList(ctx context.Context, s *session, args []string) error {
	fs, out := newFlags("users list")
	if _, err := parseFlags(fs, args, 0, "[--output table|json]"); err != nil {
		return err
	}
	api, err := s.api(*out)
	if err != nil {
		return err
	}
	r, err := api.UserListWithResponse(ctx, nil)
	if err != nil {
		return err
	}
	if table, err := s.result(*out, r.HTTPResponse, r.Body); !table {
		return err
	}
	return s.table(userHeader, rowsOf(r.JSON200.Data, userRow))
}

func usersCreate(ctx context.Context, s *session, args []string) error {
	fs, out := newFlags("users create")
	email := fs.String("email", "", "the user's email (required)")
	name := fs.String("name", "", "display name")
	role := fs.String("role", "member", "owner, admin or member")
	if _, err := parseFlags(fs, args, 0, "--email EMAIL [--name NAME] [--role member|admin|owner]"); err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	if *email == "" {
		return usageErrorf("users create needs --email")
	}
	body := client.UserCreateRequest{Email: strings.TrimSpace(*email), Role: client.Role(*role)}
	if !credvault.ValidEmail(body.Email) {
		return usageErrorf("--email %q is not an email address such as ada@example.com or bob@intranet", *email)
	}
	setIf(&body.Name, *name)
	api, err := s.client()
	if err != nil {
		return err
	}
	r, err := api.UserCreateWithResponse(ctx, body)
	if err != nil {
		return err
	}
	if table, err := s.result(*out, r.HTTPResponse, r.Body); !table {
		return err
	}
	return s.table(userHeader, [][]string{userRow(*r.JSON201)})
}

func usersGet(ctx context.Context, s *session, args []string) error {
	fs, out := newFlags("users get")
	api, id, err := s.memberArg(ctx, fs, args, out)
	if err != nil {
		return err
	}
	r, err := api.UserGetWithResponse(ctx, id)
	if err != nil {
		return err
	}
	if table, err := s.result(*out, r.HTTPResponse, r.Body); !table {
		return err
	}
	return s.table(userHeader, [][]string{userRow(*r.JSON200)})
}

func usersUpdate(ctx context.Context, s *session, args []string) error {
	fs, out := newFlags("users update")
	name := fs.String("name", "", "new display name")
	role := fs.String("role", "", "new role: owner, admin or member")
	api, id, err := s.memberArg(ctx, fs, args, out)
	if err != nil {
		return err
	}
	body := client.UserUpdateRequest{}
	setIf(&body.Name, *name)
	if *role != "" {
		r := client.Role(*role)
		body.Role = &r
	}
	r, err := api.UserUpdateWithResponse(ctx, id, body)
	if err != nil {
		return err
	}
	if table, err := s.result(*out, r.HTTPResponse, r.Body); !table {
		return err
	}
	return s.table(userHeader, [][]string{userRow(*r.JSON200)})
}

// memberArg parses a command's flags and its one positional argument, a
// member's email or user id, and returns the client and the user id.
func (s *session) memberArg(ctx context.Context, fs *flag.FlagSet, args []string, out *string) (*client.ClientWithResponses, uuid.UUID, error) {
	pos, err := parseFlags(fs, args, 1, "EMAIL|ID")
	if err != nil {
		return nil, uuid.Nil, err
	}
	api, err := s.api(*out)
	if err != nil {
		return nil, uuid.Nil, err
	}
	id, err := (&memberIDs{api: api}).resolve(ctx, fs.Name(), pos[0])
	return api, id, err
}

func usersDelete(ctx context.Context, s *session, args []string) error {
	fs, out := newFlags("users delete")
	api, id, err := s.memberArg(ctx, fs, args, out)
	if err != nil {
		return err
	}
	r, err := api.UserDeleteWithResponse(ctx, id)
	if err != nil {
		return err
	}
	return s.deleted(*out, "user", id.String(), r.HTTPResponse, r.Body)
}
