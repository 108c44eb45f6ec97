package console

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"credvault/internal/credvault"
)

// listOf makes n credentials the way the store returns them, each with a
// planted ciphertext that must never reach a page.
func listOf(n int) ([]*credvault.Credential, map[string]time.Time) {
	owner := "u-owner"
	creds := make([]*credvault.Credential, n)
	used := map[string]time.Time{}
	services := []string{"stripe", "openai", "github", "slack", "sendgrid", "acme-crm"}
	for i := range creds {
		id := fmt.Sprintf("00000000-0000-0000-0000-%012d", i)
		creds[i] = &credvault.Credential{
			ID: id, OrgID: "o1", OwnerID: &owner, Name: fmt.Sprintf("<b>credential %d</b>", i),
			Service: services[i%len(services)], Placement: credvault.PlacementBearer,
			Ciphertext: "vault:v1:PLANTEDciphertext", Hint: "••••" + fmt.Sprintf("%04d", i),
			Sharing: credvault.Sharing{Mode: []string{"personal", "team", "members"}[i%3]},
		}
		if i%2 == 0 {
			used[id] = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
		}
	}
	return creds, used
}

func newTestConsole(t testing.TB) *Console {
	t.Helper()
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func renderList(c *Console, buf *bytes.Buffer, creds []*credvault.Credential, used map[string]time.Time) error {
	d := credentialsData{Total: len(creds)}
	rows, services := credentialRows(creds, used, "u-owner", "", "")
	d.Rows, d.Count, d.Services = credentialRowsHTML(rows), len(rows), services
	v := &view{Title: "Credentials", Nav: "credentials", CSRF: "token", Data: d,
		Me: &me{UserID: "u-owner", Email: "ada@example.com", Role: credvault.RoleOwner, Manager: true}}
	return c.execute(buf, "credentials", v)
}

// TestCredentialListRender: every row is there, names are escaped, the
// ciphertext is not.
func TestCredentialListRender(t *testing.T) {
	c := newTestConsole(t)
	creds, used := listOf(1000)
	creds[7].ID = `x"><script>alert(1)</script>`
	creds[8].Hint = `"onmouseover="alert(1)`
	var buf bytes.Buffer
	if err := renderList(c, &buf, creds, used); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "<script>alert") || strings.Contains(buf.String(), `"onmouseover=`) {
		t.Fatal("a hostile id or hint was not escaped")
	}
	html := buf.String()
	if got := strings.Count(html, "<tr>"); got != 1001 { // header + rows
		t.Fatalf("rows = %d, want 1001", got-1)
	}
	if strings.Contains(html, "<b>credential") || !strings.Contains(html, "&lt;b&gt;credential 999&lt;/b&gt;") {
		t.Fatal("credential names are not escaped")
	}
	if strings.Contains(html, "PLANTED") {
		t.Fatal("a ciphertext reached the page")
	}
}

// TestCredentialRowsFilter: service filter is exact, search is a
// case-insensitive substring of the name.
func TestCredentialRowsFilter(t *testing.T) {
	creds, used := listOf(12)
	rows, services := credentialRows(creds, used, "u-owner", "stripe", "")
	if len(rows) != 2 || len(services) != 6 {
		t.Fatalf("stripe: %d rows, %d services", len(rows), len(services))
	}
	rows, _ = credentialRows(creds, used, "u-owner", "", "CREDENTIAL 1")
	if len(rows) != 3 { // 1, 10, 11
		t.Fatalf("search: %d rows, want 3", len(rows))
	}
}

// TestChartLayout: bars stay inside the plot, the tallest reaches the top,
// empty days draw nothing.
func TestChartLayout(t *testing.T) {
	since := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	ch := verificationsChart([]credvault.KeyDayCount{
		{Day: since, Valid: 10, Refused: 5, RateLimited: 5},
		{Day: since.AddDate(0, 0, 13), Valid: 1},
	}, since)
	if len(ch.Bars) != 4 || ch.Max != 20 || ch.Empty {
		t.Fatalf("bars %d, max %d, empty %v", len(ch.Bars), ch.Max, ch.Empty)
	}
	top := chartBase
	for _, b := range ch.Bars {
		if b.X < chartLeft || b.X+b.W > chartW-chartRight || b.Y < chartTop || b.Y+b.H > chartBase {
			t.Errorf("bar %+v outside the plot", b)
		}
		top = min(top, b.Y)
	}
	if top != chartTop {
		t.Errorf("tallest bar tops at %d, want %d", top, chartTop)
	}
	if !strings.Contains(ch.Summary, "11 successful, 5 refused, 5 rate-limited") {
		t.Errorf("summary %q", ch.Summary)
	}
	if e := callsChart(nil, since); !e.Empty || len(e.Bars) != 0 {
		t.Errorf("empty chart: %+v", e)
	}
}

// BenchmarkCredentialListRender renders the credentials list with 1,000
// credentials (filtering, shaping and the template), as one page view.
func BenchmarkCredentialListRender(b *testing.B) {
	c := newTestConsole(b)
	creds, used := listOf(1000)
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := renderList(c, &buf, creds, used); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "bytes/page")
}
