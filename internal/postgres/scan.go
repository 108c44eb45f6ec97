package postgres

import (
	"database/sql"
	"time"
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
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// cursor returns c when it is a UUID and "" (the first page) otherwise;
// the HTTP layer refuses malformed cursors before they get here.
func cursor(c string) string {
	if isUUID(c) {
		return c
	}
	return ""
}
