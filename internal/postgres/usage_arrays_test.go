package postgres

import (
	"database/sql"
	"database/sql/driver"
	"testing"
	"time"

	"github.com/lib/pq"

	"credvault/internal/credvault"
)

// TestUsageArraysMatchLibPQ: the array literals RecordUsage sends are the
// text lib/pq's StringArray, Array and Int64Array make of the same values.
func TestUsageArraysMatchLibPQ(t *testing.T) {
	user := "3f1c2a9e-0000-4000-8000-00000000000a"
	zone := time.FixedZone("odd", -(5*3600 + 30*60 + 7))
	uses := []credvault.Usage{
		{CredentialID: "6b1c2a9e-0000-4000-8000-000000000001", OrgID: "6b1c2a9e-0000-4000-8000-000000000002",
			WorkflowID: `wf "quoted" \ back`, NodeID: "", UserID: &user, DestinationHost: "api.example.com:8443",
			Status: 200, LatencyMS: 12, CreatedAt: time.Date(2026, 12, 7, 18, 5, 1, 123456789, time.UTC)},
		{CredentialID: "6b1c2a9e-0000-4000-8000-000000000003", OrgID: "6b1c2a9e-0000-4000-8000-000000000002",
			WorkflowID: "NULL", NodeID: "n,{}é", DestinationHost: "?", Status: 0, LatencyMS: -1,
			CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, zone)},
		{CredentialID: "6b1c2a9e-0000-4000-8000-000000000004", OrgID: "6b1c2a9e-0000-4000-8000-000000000005",
			Status: 599, CreatedAt: time.Date(0, 3, 1, 0, 0, 0, 1000, time.UTC)},
	}
	n := len(uses)
	cred, org, wf, node, usr, host := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]sql.NullString, n), make([]string, n)
	status, lat, at := make([]int64, n), make([]int64, n), make([]time.Time, n)
	for i, u := range uses {
		cred[i], org[i], wf[i], node[i], host[i] = u.CredentialID, u.OrgID, u.WorkflowID, u.NodeID, u.DestinationHost
		if u.UserID != nil {
			usr[i] = sql.NullString{String: *u.UserID, Valid: true}
		}
		status[i], lat[i], at[i] = int64(u.Status), int64(u.LatencyMS), u.CreatedAt
	}
	want := []driver.Valuer{pq.StringArray(cred), pq.StringArray(org), pq.StringArray(wf), pq.StringArray(node), pq.Array(usr),
		pq.StringArray(host), pq.Array(status), pq.Array(lat), pq.Array(at)}
	a := newUsageArrays(uses)
	got := []string{a.cred, a.org, a.wf, a.node, a.user, a.host, a.status, a.lat, a.at}
	for i, w := range want {
		v, err := w.Value()
		if err != nil {
			t.Fatal(err)
		}
		s, ok := v.(string)
		if !ok {
			s = string(v.([]byte))
		}
		if got[i] != s {
			t.Errorf("array %d: %q, lib/pq sends %q", i+1, got[i], s)
		}
	}
}
