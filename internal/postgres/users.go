package postgres

import (
	"context"

	"credvault/internal/credvault"
)

const userColumns = `id, org_id, email, name, role, created_at, updated_at`

// CreateOrgWithOwner creates an org, its owner and the owner's first key
// in one transaction. Errors: ECONFLICT when the org name is taken.
func (s *Store) CreateOrgWithOwner(ctx context.Context, org *credvault.Org, owner *credvault.User, key *credvault.APIKey, ev *credvault.AuditEvent) error {
	return s.inTx(ctx, "org", func(tx *txn) error {
		if err := tx.QueryRowxContext(ctx, `INSERT INTO orgs (name) VALUES ($1) RETURNING id, created_at`, org.Name).
			Scan(&org.ID, &org.CreatedAt); err != nil {
			return translate(err, "org")
		}
		owner.OrgID = org.ID
		if err := insertUser(ctx, tx, owner); err != nil {
			return err
		}
		key.OrgID, key.UserID, key.CreatedBy = org.ID, &owner.ID, &owner.ID
		if err := insertAPIKey(ctx, tx, key); err != nil {
			return err
		}
		ev.OrgID, ev.ResourceID, ev.ActorType, ev.ActorID = org.ID, org.ID, "system", ""
		ev.Data["owner_id"], ev.Data["key_id"] = owner.ID, key.ID
		return insertAudit(ctx, tx, ev)
	})
}

// FindOrgByName returns ENOTFOUND when no org has that name.
func (s *Store) FindOrgByName(ctx context.Context, name string) (*credvault.Org, error) {
	var o credvault.Org
	err := s.db.GetContext(ctx, &o, `SELECT id, name, created_at FROM orgs WHERE lower(name) = lower($1)`, name)
	if err != nil {
		return nil, translate(err, "org")
	}
	return &o, nil
}

// CreateUser returns ECONFLICT when the email is taken in the org.
func (s *Store) CreateUser(ctx context.Context, u *credvault.User, ev *credvault.AuditEvent) error {
	return s.inTx(ctx, "user", func(tx *txn) error {
		if err := insertUser(ctx, tx, u); err != nil {
			return err
		}
		ev.ResourceID = u.ID
		return insertAudit(ctx, tx, ev)
	})
}

func insertUser(ctx context.Context, tx *txn, u *credvault.User) error {
	err := tx.QueryRowxContext(ctx, `
		INSERT INTO users (org_id, email, name, role) VALUES ($1, $2, $3, $4)
		RETURNING id, created_at, updated_at`, u.OrgID, u.Email, u.Name, u.Role,
	).Scan(&u.ID, &u.CreatedAt, &u.UpdatedAt)
	if credvault.ErrorCode(translate(err, "")) == credvault.ECONFLICT {
		return credvault.Errorf(credvault.ECONFLICT, "a user with email %s already exists in this org", u.Email)
	}
	return translate(err, "user")
}

// FindUserByID returns ENOTFOUND for an unknown id or one in another org
// (also for a malformed id, which can name no user).
func (s *Store) FindUserByID(ctx context.Context, orgID, id string) (*credvault.User, error) {
	if !isUUID(id) {
		return nil, credvault.Errorf(credvault.ENOTFOUND, "user not found")
	}
	var u credvault.User
	err := s.db.GetContext(ctx, &u, `SELECT `+userColumns+` FROM users WHERE org_id = $1 AND id = $2`, orgID, id)
	if err != nil {
		return nil, translate(err, "user")
	}
	return &u, nil
}

// FindUsers lists an org's users newest first after page.Cursor.
func (s *Store) FindUsers(ctx context.Context, orgID string, page credvault.Page) ([]*credvault.User, error) {
	users := []*credvault.User{}
	at, id := keyset(page.Cursor)
	err := s.db.SelectContext(ctx, &users, `
		SELECT `+userColumns+` FROM users
		WHERE org_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
		ORDER BY created_at DESC, id DESC LIMIT $4`, orgID, at, id, limit(page.Limit))
	return users, translate(err, "users")
}

// UpdateUser changes a user's name or role. Demoting the last owner is
// ECONFLICT. A role change notifies every instance to drop the user's
// cached keys, whose permissions depend on it.
func (s *Store) UpdateUser(ctx context.Context, orgID, id string, upd credvault.UserUpdate, ev *credvault.AuditEvent) (*credvault.User, error) {
	var u credvault.User
	err := s.inTx(ctx, "user", func(tx *txn) error {
		if err := tx.GetContext(ctx, &u, `SELECT `+userColumns+` FROM users WHERE org_id = $1 AND id = $2 FOR UPDATE`, orgID, id); err != nil {
			return translate(err, "user")
		}
		roleChanged := upd.Role != nil && *upd.Role != u.Role
		if roleChanged && u.Role == credvault.RoleOwner {
			if err := ensureAnotherOwner(ctx, tx, orgID, id); err != nil {
				return err
			}
		}
		if err := tx.GetContext(ctx, &u, `
			UPDATE users SET name = COALESCE($3, name), role = COALESCE($4, role), updated_at = now()
			WHERE org_id = $1 AND id = $2 RETURNING `+userColumns, orgID, id, upd.Name, upd.Role); err != nil {
			return translate(err, "user")
		}
		if roleChanged {
			// A role change ends the user's console sessions at once, on
			// every instance (sessions are read from here per request).
			if err := endSessions(ctx, tx, id); err != nil {
				return err
			}
			tx.logChange(ChangeUserKeys, "user:"+id)
			revoked, err := revokeCreatedKeys(ctx, tx, orgID, id, func(k createdKey) bool {
				if k.Kind == credvault.KeyKindService {
					return credvault.RoleAllowsServiceKey(u.Role, k.Scopes)
				}
				return credvault.RoleAllowsKeyFor(u.Role, credvault.Role(k.Holder.String))
			})
			if err != nil {
				return err
			}
			ev.Data["revoked_keys"] = revoked
			if err := revokedEvents(ctx, tx, ev, revoked, "creator_demoted"); err != nil {
				return err
			}
		}
		return insertAudit(ctx, tx, ev)
	})
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// DeleteUser removes a user; their keys go with them (foreign key
// cascade), every service key they created and every key they made for
// someone else is revoked, and every instance drops all of them from its
// cache at once.
func (s *Store) DeleteUser(ctx context.Context, orgID, id string, ev *credvault.AuditEvent) error {
	return s.inTx(ctx, "user", func(tx *txn) error {
		var role credvault.Role
		if err := tx.GetContext(ctx, &role, `SELECT role FROM users WHERE org_id = $1 AND id = $2 FOR UPDATE`, orgID, id); err != nil {
			return translate(err, "user")
		}
		if role == credvault.RoleOwner {
			if err := ensureAnotherOwner(ctx, tx, orgID, id); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE org_id = $1 AND id = $2`, orgID, id); err != nil {
			return translate(err, "user")
		}
		tx.logChange(ChangeUserKeys, "user:"+id)
		revoked, err := revokeCreatedKeys(ctx, tx, orgID, id, func(createdKey) bool { return false })
		if err != nil {
			return err
		}
		ev.Data["revoked_keys"] = revoked
		if err := revokedEvents(ctx, tx, ev, revoked, "creator_removed"); err != nil {
			return err
		}
		return insertAudit(ctx, tx, ev)
	})
}

// ensureAnotherOwner locks the org's owners and refuses when id is the
// only one, so two concurrent demotions cannot leave the org ownerless.
func ensureAnotherOwner(ctx context.Context, tx *txn, orgID, id string) error {
	var others []string
	if err := tx.SelectContext(ctx, &others, `
		SELECT id FROM users WHERE org_id = $1 AND role = 'owner' AND id <> $2 FOR UPDATE`, orgID, id); err != nil {
		return translate(err, "user")
	}
	if len(others) == 0 {
		return credvault.Errorf(credvault.ECONFLICT, "this is the org's last owner; make another user owner first")
	}
	return nil
}
