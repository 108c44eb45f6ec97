package console

import (
	"testing"
	"time"
)

// TestChartToleratesFiguresWithoutSeries: a day with more figures than
// there are series (or fewer) draws what has a series and never indexes
// past the series (gosec G602 pointed at the indexes).
func TestChartToleratesFiguresWithoutSeries(t *testing.T) {
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	days := []chartDay{{Day: day, Values: []int64{3, 4, 5}}, {Day: day.AddDate(0, 0, 1), Values: []int64{1}}}
	ch := newChart(days, []series{{Name: "proxied", Class: "a"}, {Name: "injected", Class: "b"}}, "none")
	if len(ch.Bars) != 3 || len(ch.Breakdown) != 2 {
		t.Errorf("bars %d breakdown %d, want 3 and 2", len(ch.Bars), len(ch.Breakdown))
	}
	if ch.Summary != "Last 2 days: 4 proxied, 4 injected" {
		t.Errorf("summary %q", ch.Summary)
	}
}
