// Package postgres is credvault's PostgreSQL adapter: the connection pool,
// the migration runner and the sqlx stores. It translates database errors
// into *credvault.Error at its edge.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"credvault/internal/credvault"
)

// Pool limits. A credvault instance mostly serves from memory (key cache,
// secret cache); PostgreSQL sees writes, cache misses and batched
// last-used updates, so a modest pool per instance leaves room for several
// instances under PostgreSQL's default max_connections of 100.
const (
	maxOpenConns    = 20
	maxIdleConns    = 10
	connMaxLifetime = 5 * time.Minute // see failover.go; README "High availability"
	connMaxIdleTime = time.Minute
)

// CheckURL reports whether s is a postgres:// (or postgresql://) URL, the
// form DATABASE_URL takes and lib/pq reads. Errors: EINVALID, never naming
// the URL (it may hold a password).
func CheckURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return credvault.Errorf(credvault.EINVALID, "DATABASE_URL is not a valid postgres:// URL")
	}
	return nil
}

// Open connects to PostgreSQL and checks the connection. The URL is never
// put into an error (it may hold a password). Errors: EINVALID for a URL the
// driver cannot parse, EUNAVAILABLE when the server does not answer.
func Open(ctx context.Context, dbURL string) (*sqlx.DB, error) {
	dbURL, err := NormalizeURL(dbURL)
	if err != nil {
		return nil, err
	}
	if err := CheckURL(dbURL); err != nil {
		return nil, err
	}
	conn, err := pq.NewConnector(dbURL)
	if err != nil {
		return nil, credvault.Errorf(credvault.EINVALID, "DATABASE_URL is not a valid postgres:// URL")
	}
	db := sqlx.NewDb(sql.OpenDB(&failoverConnector{Connector: conn}), "postgres")
	db.SetMaxOpenConns(maxOpenConns)
	db.SetMaxIdleConns(maxIdleConns)
	db.SetConnMaxLifetime(connMaxLifetime)
	db.SetConnMaxIdleTime(connMaxIdleTime)
	if err := Ping(ctx, db); err != nil {
		db.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
		return nil, err
	}
	return db, nil
}

// Ping checks that PostgreSQL answers within a few seconds. Errors:
// EUNAVAILABLE.
func Ping(ctx context.Context, db *sqlx.DB) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		return credvault.Wrap(credvault.EUNAVAILABLE, err, "postgres is not answering")
	}
	return nil
}

// PingWritable is the readiness check of PostgreSQL: nil when it answers
// within a few seconds and takes writes. A server that answers but no
// longer takes writes (a demoted primary, a standby, one set read-only)
// is EUNAVAILABLE, and the pool drops the connections it made before, so
// that the next ones go to the host that does (target_session_attrs).
func PingWritable(ctx context.Context, db *sqlx.DB) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := db.ExecContext(ctx, `DO $$ BEGIN
		IF pg_is_in_recovery() OR current_setting('default_transaction_read_only')::boolean THEN
			RAISE EXCEPTION USING ERRCODE = '25006', MESSAGE = 'server does not take writes';
		END IF; END $$`)
	if err != nil {
		if isDemoted(err) {
			return credvault.Wrap(credvault.EUNAVAILABLE, err, "postgres does not take writes here (read-only or standby)")
		}
		return credvault.Wrap(credvault.EUNAVAILABLE, err, "postgres is not answering")
	}
	return nil
}

// translate maps a database error to a *credvault.Error: no rows ->
// ENOTFOUND, unique violation -> ECONFLICT, foreign-key or check violation
// -> EINVALID, connection failures and a server that no longer takes
// writes (25006, 57P0x: failover) -> EUNAVAILABLE, the rest EINTERNAL.
// what names the thing for the message, e.g. "user".
func translate(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return credvault.Errorf(credvault.ENOTFOUND, "%s not found", what)
	}
	var pqe *pq.Error
	if errors.As(err, &pqe) {
		switch pqe.Code {
		case "23505":
			return credvault.Wrap(credvault.ECONFLICT, err, "%s already exists", what)
		case "23503", "23514", "22P02", "22021", "22P05":
			return credvault.Wrap(credvault.EINVALID, err, "%s: invalid reference or value", what)
		case "0A000":
			if isDemoted(err) {
				return credvault.Wrap(credvault.EUNAVAILABLE, err, "postgres does not take writes here (failover under way); retry")
			}
		case "25006":
			return credvault.Wrap(credvault.EUNAVAILABLE, err, "postgres does not take writes here (failover under way); retry")
		case "57P01", "57P02", "57P03", "53300":
			return credvault.Wrap(credvault.EUNAVAILABLE, err, "postgres is unavailable")
		}
		if pqe.Code.Class() == "08" {
			return credvault.Wrap(credvault.EUNAVAILABLE, err, "postgres is unavailable")
		}
		return credvault.Wrap(credvault.EINTERNAL, err, "database error on %s", what)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return credvault.Wrap(credvault.EUNAVAILABLE, err, "postgres did not answer in time")
	}
	return credvault.Wrap(credvault.EUNAVAILABLE, err, "postgres is unavailable")
}
