package postgres

import (
	"database/sql"
	"strings"
	"time"

	"credvault/internal/credvault"
)

func nullString(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	v := s.String
	return &v
}

func nullTime(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	v := t.Time.UTC()
	return &v
}

// isUUID reports whether s has the shape of a UUID, so that a malformed
// id in a URL is "not found" rather than a database type error.
func isUUID(s string) bool { return credvault.IsUUID(s) }

// cursor returns c when it is a UUID and "" (the first page) otherwise;
// the HTTP layer refuses malformed cursors before they get here.
func cursor(c string) string {
	if isUUID(c) {
		return c
	}
	return ""
}

// keyset decodes a newest-first listing's cursor into the created_at and
// id to continue after; both nil (the first page) for "" or a malformed
// cursor, which the HTTP layer refuses before it gets here.
func keyset(c string) (at, id any) {
	k, ok := credvault.ParseKeysetCursor(c)
	if !ok {
		return nil, nil
	}
	return k.CreatedAt, k.ID
}

// escapeLike makes s match itself in a LIKE pattern with ESCAPE '\'.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
