// Package pgtest gives tests a real, migrated, throwaway PostgreSQL
// database. The server comes from TEST_DATABASE_URL (default: the local
// server at 127.0.0.1:5432 as user postgres); each call creates a database
// with a random name and drops it when the test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the driver

	"credvault/internal/postgres"
	"credvault/migrations"
)

// DefaultURL is used when TEST_DATABASE_URL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServerURL returns the URL of the server tests use (any database on it).
func ServerURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// NewEmpty creates an empty database and returns its URL. The database is
// dropped (even with open connections) when the test ends.
func NewEmpty(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sqlx.Open("postgres", ServerURL())
	if err != nil {
		t.Fatalf("pgtest: open %s: %v", ServerURL(), err)
	}
	if err := admin.PingContext(ctx); err != nil {
		admin.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
		t.Fatalf("pgtest: PostgreSQL does not answer at TEST_DATABASE_URL (%v); start it or set TEST_DATABASE_URL", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "cvtest_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		admin.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
		admin.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
	})
	u, err := url.Parse(ServerURL())
	if err != nil {
		t.Fatalf("pgtest: TEST_DATABASE_URL must be a postgres:// URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// New creates a migrated database and returns a pool on it and its URL.
func New(t testing.TB) (*sqlx.DB, string) {
	t.Helper()
	dbURL := NewEmpty(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { db.Close() }) // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
	if _, err := postgres.Migrate(ctx, db, migrations.FS); err != nil {
		t.Fatalf("pgtest: migrate: %v", err)
	}
	return db, dbURL
}
