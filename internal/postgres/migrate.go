package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"

	"credvault/internal/credvault"
)

// migrationLockID is the key of the session-level advisory lock that makes
// concurrent starts of several instances apply each migration exactly once:
// the second instance waits, then finds nothing left to do.
const migrationLockID int64 = 0x63726564_7661756c // "credvaul"

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Migration is one SQL file and, once applied, when.
type Migration struct {
	Version   int
	Name      string
	Checksum  string
	SQL       string
	AppliedAt *time.Time
}

// LoadMigrations reads and orders the migration files of fsys. Errors:
// EINVALID for a badly named file or a repeated version.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, credvault.Wrap(credvault.EINTERNAL, err, "read migrations")
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, credvault.Errorf(credvault.EINVALID, "migration file %q is not named NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if prev, dup := seen[v]; dup {
			return nil, credvault.Errorf(credvault.EINVALID, "migrations %q and %q share version %d", prev, e.Name(), v)
		}
		seen[v] = e.Name()
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, credvault.Wrap(credvault.EINTERNAL, err, "read migration %s", e.Name())
		}
		sum := sha256.Sum256(body)
		out = append(out, Migration{Version: v, Name: m[2], Checksum: hex.EncodeToString(sum[:]), SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

const createMigrationsTable = `
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`

// Migrate applies every pending migration of fsys, each in its own
// transaction together with its row in schema_migrations, under an
// advisory lock. It returns the migrations it applied (none when the
// database was current). A migration already applied whose file has since
// changed stops it with ECONFLICT: migrations are never edited after they
// run. Errors: EUNAVAILABLE when PostgreSQL is down, EINTERNAL when a
// migration fails (that migration is rolled back, earlier ones stay).
func Migrate(ctx context.Context, db *sqlx.DB, fsys fs.FS) ([]Migration, error) {
	files, err := LoadMigrations(fsys)
	if err != nil {
		return nil, err
	}
	conn, err := db.Connx(ctx)
	if err != nil {
		return nil, translate(err, "migrations")
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLockID); err != nil {
		return nil, translate(err, "migration lock")
	}
	defer func() {
		// A fresh context: the unlock must happen even when ctx has ended.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = conn.ExecContext(uctx, `SELECT pg_advisory_unlock($1)`, migrationLockID)
	}()
	if _, err := conn.ExecContext(ctx, createMigrationsTable); err != nil {
		return nil, translate(err, "migrations table")
	}
	applied := map[int]string{}
	rows, err := conn.QueryxContext(ctx, `SELECT version, checksum FROM schema_migrations`)
	if err != nil {
		return nil, translate(err, "migrations")
	}
	for rows.Next() {
		var v int
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			rows.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
			return nil, translate(err, "migrations")
		}
		applied[v] = sum
	}
	rows.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
	if err := rows.Err(); err != nil {
		return nil, translate(err, "migrations")
	}

	var done []Migration
	for _, m := range files {
		if sum, ok := applied[m.Version]; ok {
			if sum != m.Checksum {
				return done, credvault.Errorf(credvault.ECONFLICT,
					"migration %04d_%s was changed after it was applied; add a new migration instead", m.Version, m.Name)
			}
			continue
		}
		if err := applyOne(ctx, conn, m); err != nil {
			return done, err
		}
		now := time.Now()
		m.AppliedAt = &now
		done = append(done, m)
	}
	return done, nil
}

func applyOne(ctx context.Context, conn *sqlx.Conn, m Migration) error {
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return translate(err, "migration")
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return credvault.Wrap(credvault.EINTERNAL, err, "migration %04d_%s failed", m.Version, m.Name)
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`,
		m.Version, m.Name, m.Checksum); err != nil {
		return translate(err, "migration record")
	}
	if err := tx.Commit(); err != nil {
		return translate(err, "migration commit")
	}
	return nil
}

// MigrationStatus lists every migration file with its applied time (nil
// when pending). Errors: EUNAVAILABLE when PostgreSQL is down.
func MigrationStatus(ctx context.Context, db *sqlx.DB, fsys fs.FS) ([]Migration, error) {
	files, err := LoadMigrations(fsys)
	if err != nil {
		return nil, err
	}
	var exists bool
	if err := db.GetContext(ctx, &exists, `SELECT to_regclass('schema_migrations') IS NOT NULL`); err != nil {
		return nil, translate(err, "migrations")
	}
	if !exists {
		return files, nil
	}
	var rows []struct {
		Version   int       `db:"version"`
		Checksum  string    `db:"checksum"`
		AppliedAt time.Time `db:"applied_at"`
	}
	if err := db.SelectContext(ctx, &rows, `SELECT version, checksum, applied_at FROM schema_migrations`); err != nil {
		return nil, translate(err, "migrations")
	}
	byVersion := map[int]int{}
	for i, r := range rows {
		byVersion[r.Version] = i
	}
	for i := range files {
		if j, ok := byVersion[files[i].Version]; ok {
			at := rows[j].AppliedAt
			files[i].AppliedAt = &at
			if rows[j].Checksum != files[i].Checksum {
				files[i].Name += " (CHANGED SINCE APPLIED)"
			}
		}
	}
	return files, nil
}

// String renders a migration for `credvault migrate status`.
func (m Migration) String() string {
	state := "pending"
	if m.AppliedAt != nil {
		state = "applied " + m.AppliedAt.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%04d_%s\t%s", m.Version, m.Name, state)
}
