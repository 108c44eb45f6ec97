package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"credvault/internal/credvault"
	"credvault/internal/postgres"
	"credvault/internal/postgres/pgtest"
)

// TestUsageArraysRoundTripHostileLabels: workflow ids, node ids and hosts
// made of array syntax (quotes, backslashes, braces, commas, NULL, blanks
// at either end, empty, non-ASCII, 100 KB) come back from PostgreSQL's
// unnest of RecordUsage's array literals exactly as given, element for
// element, with NULL only for a missing user; a value PostgreSQL cannot
// store (NUL, invalid UTF-8) fails the same way as with lib/pq's arrays.
func TestUsageArraysRoundTripHostileLabels(t *testing.T) {
	db, _ := pgtest.New(t)
	labels := []string{`"`, `\`, `\"`, `{`, `}`, `{"a","b"}`, `a,b`, `NULL`, `null`, ``, ` lead`, "trail\t", `a"b\c`, `é{ü}`,
		`",NULL,"`, `\\\\`, strings.Repeat(`x"\,{}`, 100<<10/6)}
	user := "3f1c2a9e-0000-4000-8000-00000000000a"
	var uses []credvault.Usage
	at := time.Date(2026, 12, 7, 18, 5, 1, 123456000, time.UTC)
	for i, l := range labels {
		u := credvault.Usage{CredentialID: "6b1c2a9e-0000-4000-8000-000000000001", OrgID: "6b1c2a9e-0000-4000-8000-000000000002",
			WorkflowID: l, NodeID: labels[len(labels)-1-i], DestinationHost: l, Status: i, LatencyMS: -i, CreatedAt: at.Add(time.Duration(i) * time.Second)}
		if i%2 == 0 {
			u.UserID = &user
		}
		uses = append(uses, u)
	}
	a := postgres.UsageArraysForTest(uses)
	rows, err := db.QueryContext(context.Background(), `SELECT wf, node, host, usr::text IS NULL, status, lat, at FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::int[], $6::int[], $7::timestamptz[]) WITH ORDINALITY AS v(wf, node, host, usr, status, lat, at, ord) ORDER BY ord`,
		a[2], a[3], a[5], a[4], a[6], a[7], a[8])
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var wf, node, host string
		var noUser bool
		var status, lat int
		var got time.Time
		if err := rows.Scan(&wf, &node, &host, &noUser, &status, &lat, &got); err != nil {
			t.Fatal(err)
		}
		u := uses[i]
		if wf != u.WorkflowID || node != u.NodeID || host != u.DestinationHost || noUser != (u.UserID == nil) || status != u.Status || lat != u.LatencyMS || !got.Equal(u.CreatedAt) {
			t.Errorf("use %d came back as wf %.40q node %.40q host %.40q no-user %v %d %d %v", i, wf, node, host, noUser, status, lat, got)
		}
		i++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if i != len(uses) {
		t.Fatalf("%d elements came back, want %d", i, len(uses))
	}
	for _, bad := range []string{"a\x00b", "a\xffb"} {
		b := []credvault.Usage{{CredentialID: uses[0].CredentialID, OrgID: uses[0].OrgID, WorkflowID: bad, CreatedAt: at}}
		_, ours := db.ExecContext(context.Background(), `SELECT unnest($1::text[])`, postgres.UsageArraysForTest(b)[2])
		_, theirs := db.ExecContext(context.Background(), `SELECT unnest($1::text[])`, pq.StringArray{bad})
		if (ours == nil) != (theirs == nil) {
			t.Errorf("%q: our array %v, lib/pq's %v", bad, ours, theirs)
		}
	}
}
