package postgres_test

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"credvault/internal/postgres"
	"credvault/migrations"
)

// TestMigrationKeyCreators: 0004 backfills user keys' creators, marks the
// service keys no current owner or admin stands behind as legacy, and
// takes credentials:resolve off user keys.
func TestMigrationKeyCreators(t *testing.T) {
	db := openEmpty(t)
	ctx := context.Background()
	before := fstest.MapFS{}
	err := fs.WalkDir(migrations.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p >= "0004" {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, p)
		before[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Migrate(ctx, db, before); err != nil {
		t.Fatal(err)
	}
	var org, owner, admin, member string
	must := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Get(&org, `INSERT INTO orgs (name) VALUES ('acme') RETURNING id`); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct {
		dst  *string
		role string
	}{{&owner, "owner"}, {&admin, "admin"}, {&member, "member"}} {
		if err := db.Get(u.dst, `INSERT INTO users (org_id, email, role) VALUES ($1, $2, $2) RETURNING id`, org, u.role); err != nil {
			t.Fatal(err)
		}
	}
	key := func(name, kind string, user, createdBy any, scopes string) {
		t.Helper()
		must(`INSERT INTO api_keys (org_id, user_id, kind, name, environment, key_hash, prefix, last4, scopes, created_by)
			VALUES ($1, $2, $3, $4, 'live', decode(md5(random()::text) || md5(random()::text), 'hex'), 'cv_live', 'abcd', $5, $6)`,
			org, user, kind, name, scopes, createdBy)
	}
	key("user-no-creator", "user", member, nil, "{credentials:use}")
	key("user-by-admin", "user", member, admin, "{keys:read}")
	key("user-resolve", "user", member, member, "{credentials:use,credentials:resolve}")
	key("svc-no-creator", "service", nil, nil, "{admin}")
	key("svc-deleted-creator", "service", nil, "00000000-0000-4000-8000-000000000001", "{admin}")
	key("svc-by-member", "service", nil, member, "{keys:read}")
	key("svc-by-admin", "service", nil, admin, "{admin}")
	key("svc-runner", "service", nil, owner, "{credentials:resolve}")

	if _, err := postgres.Migrate(ctx, db, migrations.FS); err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Name      string  `db:"name"`
		CreatedBy *string `db:"created_by"`
		Legacy    bool    `db:"legacy"`
		Scopes    string  `db:"scopes"`
	}
	if err := db.Select(&rows, `SELECT name, created_by::text, legacy, scopes::text FROM api_keys ORDER BY name`); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		createdBy string
		legacy    bool
		scopes    string
	}{
		"user-no-creator":     {member, false, "{credentials:use}"},
		"user-by-admin":       {admin, false, "{keys:read}"},
		"user-resolve":        {member, false, "{credentials:use}"},
		"svc-no-creator":      {"", true, "{admin}"},
		"svc-deleted-creator": {"00000000-0000-4000-8000-000000000001", true, "{admin}"},
		"svc-by-member":       {member, true, "{keys:read}"},
		"svc-by-admin":        {admin, false, "{admin}"},
		"svc-runner":          {owner, false, "{credentials:resolve}"},
	}
	for _, r := range rows {
		w := want[r.Name]
		got := ""
		if r.CreatedBy != nil {
			got = *r.CreatedBy
		}
		if got != w.createdBy || r.Legacy != w.legacy || !strings.EqualFold(r.Scopes, w.scopes) {
			t.Errorf("%s: created_by %q legacy %v scopes %s, want %q %v %s", r.Name, got, r.Legacy, r.Scopes, w.createdBy, w.legacy, w.scopes)
		}
	}
	if len(rows) != len(want) {
		t.Fatalf("%d keys, want %d", len(rows), len(want))
	}
}
