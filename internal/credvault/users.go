package credvault

import (
	"context"
	"regexp"
	"strings"
)

// UserService holds the rules for users: owners and admins manage users,
// only owners manage owners, and an org always keeps at least one owner.
type UserService struct {
	Store UserStore
}

// CreateUserInput is a new user.
type CreateUserInput struct {
	Email string
	Name  string
	Role  Role
}

// CreateUser adds a user to the caller's org. Errors: EFORBIDDEN (scope
// users:write, owner/admin role, only owners create owners), EINVALID (bad
// email or role), ECONFLICT (email taken).
func (s *UserService) CreateUser(ctx context.Context, in CreateUserInput) (*User, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.canWrite(p, in.Role); err != nil {
		return nil, err
	}
	email, err := normalizeEmail(in.Email)
	if err != nil {
		return nil, err
	}
	u := &User{OrgID: p.OrgID, Email: email, Name: strings.TrimSpace(in.Name), Role: in.Role}
	ev := newAuditEvent(ctx, p.OrgID, "user.create", "user", "", map[string]any{"role": string(in.Role)})
	if err := s.Store.CreateUser(ctx, u, ev); err != nil {
		return nil, err
	}
	return u, nil
}

// FindUser returns a user of the caller's org. Errors: EFORBIDDEN (scope
// users:read), ENOTFOUND (no such user in the caller's org).
func (s *UserService) FindUser(ctx context.Context, id string) (*User, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireScope(p, ScopeUsersRead); err != nil {
		return nil, err
	}
	return s.Store.FindUserByID(ctx, p.OrgID, id)
}

// FindUsers lists the caller's org. Errors: EFORBIDDEN (scope users:read).
func (s *UserService) FindUsers(ctx context.Context, page Page) ([]*User, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireScope(p, ScopeUsersRead); err != nil {
		return nil, err
	}
	return s.Store.FindUsers(ctx, p.OrgID, page)
}

// UpdateUser renames a user or changes their role. A demotion revokes, in
// the same transaction, the service keys the user created that the new
// role does not allow (RoleAllowsServiceKey). Errors: EFORBIDDEN
// (scope, role; only owners touch owners), ENOTFOUND, ECONFLICT (the last
// owner cannot be demoted).
func (s *UserService) UpdateUser(ctx context.Context, id string, upd UserUpdate) (*User, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	target, err := s.Store.FindUserByID(ctx, p.OrgID, id)
	if err != nil {
		return nil, err
	}
	newRole := target.Role
	if upd.Role != nil {
		if !upd.Role.Valid() {
			return nil, Errorf(EINVALID, "field \"role\" must be one of: owner admin member")
		}
		newRole = *upd.Role
	}
	if err := s.canWrite(p, target.Role); err != nil {
		return nil, err
	}
	if err := s.canWrite(p, newRole); err != nil {
		return nil, err
	}
	if upd.Name != nil {
		n := strings.TrimSpace(*upd.Name)
		upd.Name = &n
	}
	data := map[string]any{}
	if upd.Role != nil && *upd.Role != target.Role {
		data["role_from"], data["role_to"] = string(target.Role), string(*upd.Role)
	}
	if upd.Name != nil {
		data["name_changed"] = true
	}
	ev := newAuditEvent(ctx, p.OrgID, "user.update", "user", id, data)
	return s.Store.UpdateUser(ctx, p.OrgID, id, upd, ev)
}

// DeleteUser removes a user, their keys and, in the same transaction,
// every service key they created (or one of those created): a key's power
// never outlives its creator's. Errors:
// EFORBIDDEN, ENOTFOUND, ECONFLICT (last owner), EINVALID (yourself).
func (s *UserService) DeleteUser(ctx context.Context, id string) error {
	p, err := caller(ctx)
	if err != nil {
		return err
	}
	target, err := s.Store.FindUserByID(ctx, p.OrgID, id)
	if err != nil {
		return err
	}
	if err := s.canWrite(p, target.Role); err != nil {
		return err
	}
	if target.ID == p.UserID {
		return Errorf(EINVALID, "you cannot delete yourself; ask another owner or admin")
	}
	ev := newAuditEvent(ctx, p.OrgID, "user.delete", "user", id, map[string]any{"role": string(target.Role)})
	return s.Store.DeleteUser(ctx, p.OrgID, id, ev)
}

// canWrite checks that p may create or change a user holding role.
func (s *UserService) canWrite(p *Principal, role Role) error {
	if err := requireScope(p, ScopeUsersWrite); err != nil {
		return err
	}
	if err := requireManager(p, "manage users"); err != nil {
		return err
	}
	if !role.Valid() {
		return Errorf(EINVALID, "field \"role\" must be one of: owner admin member")
	}
	if role == RoleOwner && p.Role != RoleOwner {
		return &Error{Code: EFORBIDDEN, Reason: "forbidden_role", Message: "only owners may create, change or delete owners"}
	}
	return nil
}

// EmailPattern is the rule for a user's email address, the pattern
// api/openapi.yaml gives User.email and UserCreateRequest.email: a local
// part that is an RFC 5322 dot-atom (section 3.2.3) of ASCII characters,
// "@", then one or more host name labels (RFC 1123 section 2.1: letters,
// digits, hyphens inside, at most 63 characters each) separated by dots.
// A single label is a domain, so on-premises addresses such as
// bob@intranet and admin@localhost are accepted; quoted local parts,
// IP-literal domains, comments, a trailing dot and non-ASCII characters
// are refused. RE2 and ECMA-262 read it alike.
const EmailPattern = "^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*" +
	"@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"

// MaxEmailLength is the longest email address accepted, in bytes
// (maxLength in api/openapi.yaml).
const MaxEmailLength = 320

var emailRE = regexp.MustCompile(EmailPattern)

// ValidEmail reports whether s is an address by EmailPattern of at most
// MaxEmailLength bytes (surrounding whitespace is not trimmed).
func ValidEmail(s string) bool { return len(s) <= MaxEmailLength && emailRE.MatchString(s) }

// normalizeEmail returns s without surrounding whitespace, or EINVALID
// naming the field when that is not an address by EmailPattern of at most
// MaxEmailLength bytes.
func normalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !ValidEmail(s) {
		return "", Errorf(EINVALID, "field \"email\" must be an address such as ada@example.com or bob@intranet: dot-separated letters, digits or !#$%%&'*+/=?^_`{|}~- before the @, host name labels after it, at most 320 characters")
	}
	return s, nil
}

// ActAs lets a service key name the user a call is made for (header
// X-Credvault-Acting-User): the returned context carries that user's
// principal, with the service key's id and scopes, so that sharing rules
// apply as for the user. Errors: EFORBIDDEN when the caller is not a
// service key, EINVALID when the user is not in the caller's org.
func (s *UserService) ActAs(ctx context.Context, userID string) (context.Context, error) {
	return actAs(ctx, s.Store, userID)
}

func actAs(ctx context.Context, users UserStore, userID string) (context.Context, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if p.Kind != KeyKindService {
		return nil, &Error{Code: EFORBIDDEN, Reason: "forbidden_acting_user", Message: "only service keys may name an acting user (X-Credvault-Acting-User)"}
	}
	u, err := users.FindUserByID(ctx, p.OrgID, userID)
	if err != nil {
		if ErrorCode(err) == ENOTFOUND {
			return nil, Errorf(EINVALID, "header X-Credvault-Acting-User: no such user in your org")
		}
		return nil, err
	}
	return WithPrincipal(ctx, &Principal{OrgID: p.OrgID, UserID: u.ID, KeyID: p.KeyID, Kind: KeyKindUser, Role: u.Role, Scopes: p.Scopes}), nil
}
