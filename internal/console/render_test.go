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
	rows, services := credentialRows(creds, used, "u-owner", credentialFilter{})
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
	rows, services := credentialRows(creds, used, "u-owner", credentialFilter{Service: "stripe"})
	if len(rows) != 2 || len(services) != 6 {
		t.Fatalf("stripe: %d rows, %d services", len(rows), len(services))
	}
	rows, _ = credentialRows(creds, used, "u-owner", credentialFilter{Query: "CREDENTIAL 1"})
	if len(rows) != 3 { // 1, 10, 11
		t.Fatalf("search: %d rows, want 3", len(rows))
	}
	// The search also matches the service; sharing narrows by mode.
	if rows, _ = credentialRows(creds, used, "u-owner", credentialFilter{Query: "GITHUB"}); len(rows) != 2 {
		t.Fatalf("search by service: %d rows, want 2", len(rows))
	}
	rows, _ = credentialRows(creds, used, "u-owner", credentialFilter{Sharing: "team"})
	if len(rows) != 4 {
		t.Fatalf("sharing team: %d rows, want 4", len(rows))
	}
	for _, r := range rows {
		if r.Sharing != "Team" {
			t.Fatalf("sharing team kept %q", r.Sharing)
		}
	}
}

// TestChartLayout: bars stay inside the plot, the tallest stays under the
// top of a round scale, empty days draw nothing, and refusals are split by
// reason.
func TestChartLayout(t *testing.T) {
	since := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	ch := verificationsChart([]credvault.KeyDayCount{
		{Day: since, Valid: 10, Refused: 5, Revoked: 3, Expired: 2, RateLimited: 5},
		{Day: since.AddDate(0, 0, 13), Valid: 1},
	}, since, "none")
	if len(ch.Bars) != 5 || ch.Top != 20 || ch.Empty {
		t.Fatalf("bars %d, top %d, empty %v", len(ch.Bars), ch.Top, ch.Empty)
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
	if !strings.Contains(ch.Summary, "11 allowed, 3 refused: revoked, 2 refused: expired, 5 rate-limited") {
		t.Errorf("summary %q", ch.Summary)
	}
	if e := callsChart(nil, since, "nothing yet"); !e.Empty || len(e.Bars) != 0 || e.EmptyText != "nothing yet" {
		t.Errorf("empty chart: %+v", e)
	}
}

// TestChartScale: the axis runs from 0 to a round number at or above the
// tallest day, in at most 5 steps of 1, 2 or 5 times a power of ten; never
// from 0 to 0. A single call reads "1 succeeded" on a 0-1 axis.
func TestChartScale(t *testing.T) {
	for _, c := range []struct{ max, top, step int64 }{
		{0, 1, 1}, {1, 1, 1}, {3, 3, 1}, {5, 5, 1}, {6, 6, 2}, {7, 8, 2}, {11, 15, 5}, {20, 20, 5},
		{37, 40, 10}, {99, 100, 20}, {101, 150, 50}, {1234, 1500, 500}, {999_999, 1_000_000, 200_000},
	} {
		top, step := niceTop(c.max)
		if top != c.top || step != c.step {
			t.Errorf("niceTop(%d) = %d, %d; want %d, %d", c.max, top, step, c.top, c.step)
		}
		if top < c.max || top/step > 5 || top%step != 0 {
			t.Errorf("niceTop(%d) = %d step %d: not a round scale over the data", c.max, top, step)
		}
	}
	since := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	ch := callsChart([]credvault.CallDayCount{{Day: since.AddDate(0, 0, 3), OK: 1}}, since, "none")
	if ch.Empty || ch.Top != 1 || len(ch.Ticks) != 2 || ch.Ticks[0].Label != "0" || ch.Ticks[1].Label != "1" {
		t.Fatalf("one call: top %d ticks %+v", ch.Top, ch.Ticks)
	}
	if !strings.HasPrefix(ch.Summary, "Last 14 days: 1 succeeded, 0 refused by the API") {
		t.Errorf("summary %q", ch.Summary)
	}
	if got := compactCount(1500); got != "1.5k" {
		t.Errorf("compactCount(1500) = %q", got)
	}
}

// TestPluralsAndRelativeTimes: "1 member", "2 members"; relative times in
// the largest unit, the exact time in the title.
func TestPluralsAndRelativeTimes(t *testing.T) {
	one := &credvault.Credential{Sharing: credvault.Sharing{Mode: credvault.SharingMembers, Members: []credvault.Share{{UserID: "u1"}}}}
	if got := sharingLabel(one, "u0"); got != "1 member" {
		t.Errorf("one member: %q", got)
	}
	one.Sharing.Members = append(one.Sharing.Members, credvault.Share{UserID: "u2"})
	if got := sharingLabel(one, "u0"); got != "2 members" {
		t.Errorf("two members: %q", got)
	}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		10 * time.Second: "just now", 5 * time.Minute: "5 min ago", 3 * time.Hour: "3 h ago", 30 * time.Hour: "30 h ago",
		72 * time.Hour: "3 d ago", -29 * 24 * time.Hour: "in 29 d", 200 * 24 * time.Hour: "May 21", 400 * 24 * time.Hour: "Nov 2, 2025",
	} {
		if got := relative(now.Add(-d), now); got != want {
			t.Errorf("relative(now-%v) = %q, want %q", d, got, want)
		}
	}
	h := string(agoHTML(time.Now().Add(-3 * time.Hour)))
	if !strings.Contains(h, ">3 h ago</time>") || !strings.Contains(h, `title="20`) || !strings.Contains(h, `datetime="20`) {
		t.Errorf("ago: %s", h)
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
