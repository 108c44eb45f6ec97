package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jmoiron/sqlx"

	"credvault/internal/credvault"
	"credvault/internal/postgres"
	"credvault/internal/postgres/pgtest"
	"credvault/migrations"
)

func openEmpty(t *testing.T) *sqlx.DB {
	t.Helper()
	url := pgtest.NewEmpty(t)
	db, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrateConcurrentStartsApplyOnce(t *testing.T) {
	pdb := openEmpty(t)
	files, err := postgres.LoadMigrations(migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	const instances = 6
	var wg sync.WaitGroup
	applied := make([]int, instances)
	errs := make([]error, instances)
	for i := range instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done, err := postgres.Migrate(context.Background(), pdb, migrations.FS)
			applied[i], errs[i] = len(done), err
		}()
	}
	wg.Wait()
	total := 0
	for i := range instances {
		if errs[i] != nil {
			t.Fatalf("instance %d: %v", i, errs[i])
		}
		total += applied[i]
	}
	if total != len(files) {
		t.Fatalf("migrations applied in total = %d, want %d (each exactly once)", total, len(files))
	}
	var rows int
	if err := pdb.Get(&rows, `SELECT count(*) FROM schema_migrations`); err != nil {
		t.Fatal(err)
	}
	if rows != len(files) {
		t.Fatalf("schema_migrations rows = %d, want %d", rows, len(files))
	}
	// A second run is a no-op.
	done, err := postgres.Migrate(context.Background(), pdb, migrations.FS)
	if err != nil || len(done) != 0 {
		t.Fatalf("re-run: applied %d, err %v; want 0, nil", len(done), err)
	}
	status, err := postgres.MigrationStatus(context.Background(), pdb, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range status {
		if m.AppliedAt == nil {
			t.Errorf("status: %s is pending after migrate", m)
		}
	}
}

func TestMigrateFailureRollsBackThatMigrationOnly(t *testing.T) {
	pdb := openEmpty(t)
	fsys := fstest.MapFS{
		"0001_ok.sql":     {Data: []byte(`CREATE TABLE a (id int);`)},
		"0002_broken.sql": {Data: []byte(`CREATE TABLE b (id int); SELECT no_such_function();`)},
	}
	done, err := postgres.Migrate(context.Background(), pdb, fsys)
	if credvault.ErrorCode(err) != credvault.EINTERNAL || !strings.Contains(err.Error(), "0002_broken") {
		t.Fatalf("err = %v, want EINTERNAL naming 0002_broken", err)
	}
	if len(done) != 1 {
		t.Fatalf("applied %d, want 1", len(done))
	}
	var b *string
	if err := pdb.Get(&b, `SELECT to_regclass('b')::text`); err != nil || b != nil {
		t.Fatalf("table b exists after a failed migration (got %v, err %v)", b, err)
	}
	var n int
	_ = pdb.Get(&n, `SELECT count(*) FROM schema_migrations`)
	if n != 1 {
		t.Fatalf("schema_migrations rows = %d, want 1", n)
	}
}

func TestMigrateRefusesEditedMigration(t *testing.T) {
	pdb := openEmpty(t)
	fsys := fstest.MapFS{"0001_a.sql": {Data: []byte(`CREATE TABLE a (id int);`)}}
	if _, err := postgres.Migrate(context.Background(), pdb, fsys); err != nil {
		t.Fatal(err)
	}
	fsys["0001_a.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE a (id bigint);`)}
	_, err := postgres.Migrate(context.Background(), pdb, fsys)
	if credvault.ErrorCode(err) != credvault.ECONFLICT {
		t.Fatalf("err = %v, want ECONFLICT", err)
	}
}

func TestLoadMigrationsRejectsBadNames(t *testing.T) {
	for _, name := range []string{"1_a.sql", "0001-a.sql", "0001_A.sql"} {
		_, err := postgres.LoadMigrations(fstest.MapFS{name: {Data: []byte("SELECT 1")}})
		if credvault.ErrorCode(err) != credvault.EINVALID {
			t.Errorf("%s: err = %v, want EINVALID", name, err)
		}
	}
	_, err := postgres.LoadMigrations(fstest.MapFS{
		"0001_a.sql": {Data: []byte("SELECT 1")}, "0001_b.sql": {Data: []byte("SELECT 1")},
	})
	if credvault.ErrorCode(err) != credvault.EINVALID {
		t.Errorf("duplicate version: err = %v, want EINVALID", err)
	}
}

func TestAuditEventsAreAppendOnly(t *testing.T) {
	db, _ := pgtest.New(t)
	if _, err := db.Exec(`INSERT INTO audit_events (actor_type, action) VALUES ('system', 'test.event')`); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`UPDATE audit_events SET action = 'x'`,
		`DELETE FROM audit_events`,
		`TRUNCATE audit_events`,
	} {
		if _, err := db.Exec(stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want append-only refusal", stmt, err)
		}
	}
	var n int
	_ = db.Get(&n, `SELECT count(*) FROM audit_events`)
	if n != 1 {
		t.Fatalf("audit rows = %d, want 1", n)
	}
}
