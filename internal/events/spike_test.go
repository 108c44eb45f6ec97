package events_test

import (
	"context"
	"testing"
	"time"

	"credvault/internal/apikey"
	"credvault/internal/credvault"
	"credvault/internal/events"
	"credvault/internal/postgres"
	"credvault/internal/postgres/pgtest"
)

// TestSpikeRule runs the aggregator on real PostgreSQL against counts
// shaped by hand: a key refused 300 times in 5 minutes with no history
// spikes, as do 500 refusals of unknown keys; a key refused 300 times
// whose own hour before averaged 40 per 5 minutes does not (300 < 10×40),
// nor 60 refusals (below the floor of 100). Each spike is one event
// however often the aggregator runs; after a quiet spell a new burst is a
// new event.
func TestSpikeRule(t *testing.T) {
	ctx := context.Background()
	db, _ := pgtest.New(t)
	st := postgres.NewStore(db)
	res, err := credvault.Bootstrap(ctx, st, apikey.Minter{Prefix: "cv"}, "acme", "owner@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	org := res.OrgID
	now := time.Now().UTC().Truncate(time.Minute).Add(30 * time.Second)
	add := func(at time.Time, subject string, n int) {
		t.Helper()
		if err := st.AddRefusalCounts(ctx, at.Truncate(time.Minute), []credvault.RefusalCount{{OrgID: org, Subject: subject, Refusals: n}}); err != nil {
			t.Fatal(err)
		}
	}
	add(now, "key:aaaaaaaa-0000-4000-8000-000000000001", 300)
	add(now, credvault.SubjectUnknownKeys, 500)
	add(now, "key:aaaaaaaa-0000-4000-8000-000000000002", 300)
	for m := 5; m < 65; m++ { // 8 a minute for the hour before: 40 per 5 minutes
		add(now.Add(-time.Duration(m)*time.Minute), "key:aaaaaaaa-0000-4000-8000-000000000002", 8)
	}
	add(now, "key:aaaaaaaa-0000-4000-8000-000000000003", 60)

	clock := now
	agg := &events.Aggregator{Store: st, Rule: events.DefaultSpikeRule, Now: func() time.Time { return clock }}
	spikes := func() []string {
		var subjects []string
		if err := db.Select(&subjects, `SELECT data->>'subject' FROM events WHERE type = 'api_key.refusals_spike' ORDER BY created_at, data->>'subject'`); err != nil {
			t.Fatal(err)
		}
		return subjects
	}
	for range 3 {
		if err := agg.Run(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got := spikes()
	if len(got) != 2 || !contains(got, "key:aaaaaaaa-0000-4000-8000-000000000001") || !contains(got, credvault.SubjectUnknownKeys) {
		t.Fatalf("spike events %v, want one for key …0001 and one for unknown keys", got)
	}
	// Quiet for 10 minutes, then a new burst of the first key.
	clock = now.Add(10 * time.Minute)
	if err := agg.Run(ctx); err != nil {
		t.Fatal(err)
	}
	add(clock, "key:aaaaaaaa-0000-4000-8000-000000000001", 400)
	if err := agg.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := spikes(); len(got) != 3 {
		t.Fatalf("after a quiet spell and a new burst: %v, want 3 events", got)
	}
	var audited int
	if err := db.Get(&audited, `SELECT count(*) FROM audit_events WHERE action = 'api_key.refusals_spike'`); err != nil || audited != 3 {
		t.Fatalf("%d spike audit records (%v), want 3", audited, err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
