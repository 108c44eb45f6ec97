package console

import (
	"html/template"
	"strconv"
	"strings"
	"time"

	"credvault/internal/credvault"
)

// chartDays is how many days the charts cover.
const chartDays = 14

// Chart geometry, in SVG user units (the SVG scales to its box with
// viewBox, so these are proportions, not pixels).
const (
	chartW     = 560
	chartH     = 160
	chartTop   = 12
	chartBase  = 132 // y of the x axis
	chartLeft  = 36
	chartRight = 8
)

// chart is a small bar chart rendered server-side as inline SVG: bars are
// rects with classes the stylesheet colours (no inline style, so the CSP
// holds), each with a <title> for hover and screen readers, and the
// figures are also in a table next to it.
type chart struct {
	W, H     int
	BaseY    int
	Left     int
	Right    int
	Max      int64
	MaxY     int
	Bars     []bar
	Labels   []label
	Legend   []legend
	Days     []chartDay
	Series   []string
	Empty    bool
	Summary  string
	MaxLabel string
}

type bar struct {
	X, Y, W, H int
	Class      string
	Title      string
}

type label struct {
	X    int
	Text string
}

type legend struct {
	Class, Text string
}

// chartDay is one day's figures, in series order.
type chartDay struct {
	Day    time.Time
	Values []int64
}

// newChart lays out stacked bars for days (oldest first) of the given
// series (names and CSS classes).
func newChart(days []chartDay, series, classes []string) *chart {
	ch := &chart{W: chartW, H: chartH, BaseY: chartBase, Left: chartLeft, Right: chartW - chartRight, Days: days, Series: series}
	var total int64
	for _, d := range days {
		var sum int64
		for _, v := range d.Values {
			sum += v
		}
		total += sum
		ch.Max = max(ch.Max, sum)
	}
	ch.Empty = total == 0
	scale := ch.Max
	if scale == 0 {
		scale = 1
	}
	ch.MaxY = chartTop
	ch.MaxLabel = strconv.FormatInt(ch.Max, 10)
	slot := (chartW - chartLeft - chartRight) / max(1, len(days))
	barW := max(2, slot*3/4)
	for i, d := range days {
		x := chartLeft + i*slot + (slot-barW)/2
		y := chartBase
		for s, v := range d.Values {
			if s >= len(series) || s >= len(classes) {
				break // a figure without a series has no bar to draw
			}
			if v == 0 {
				continue
			}
			h := int(int64(chartBase-chartTop) * v / scale)
			h = max(h, 1)
			y -= h
			// #nosec G602 -- s < len(series) and len(classes): checked above
			ch.Bars = append(ch.Bars, bar{X: x, Y: y, W: barW, H: h, Class: classes[s],
				Title: d.Day.Format("Jan 2") + ": " + strconv.FormatInt(v, 10) + " " + series[s]})
		}
		if i%2 == 0 || len(days) <= 7 {
			ch.Labels = append(ch.Labels, label{X: x + barW/2, Text: d.Day.Format("Jan 2")})
		}
	}
	for s := range min(len(series), len(classes)) {
		ch.Legend = append(ch.Legend, legend{Class: classes[s], Text: series[s]}) // #nosec G602 -- s < both lengths (range bound)
	}
	parts := make([]string, len(series))
	for s := range series {
		var sum int64
		for _, d := range days {
			if s < len(d.Values) {
				sum += d.Values[s]
			}
		}
		parts[s] = strconv.FormatInt(sum, 10) + " " + series[s] // #nosec G602 -- parts has len(series) elements
	}
	ch.Summary = "Last " + strconv.Itoa(len(days)) + " days: " + strings.Join(parts, ", ")
	return ch
}

// fillDays spreads sparse per-day rows over every day from since to today.
func fillDays(since time.Time, n int, at func(day time.Time) []int64) []chartDay {
	out := make([]chartDay, n)
	for i := range n {
		d := since.AddDate(0, 0, i)
		out[i] = chartDay{Day: d, Values: at(d)}
	}
	return out
}

// callsChart is a credential's calls per day.
func callsChart(rows []credvault.DayCount, since time.Time) *chart {
	by := map[string]int64{}
	for _, r := range rows {
		by[r.Day.UTC().Format(time.DateOnly)] = r.Count
	}
	days := fillDays(since, chartDays, func(d time.Time) []int64 { return []int64{by[d.Format(time.DateOnly)]} })
	return newChart(days, []string{"calls"}, []string{"s0"})
}

// verificationsChart is an API key's verifications per day: successful,
// refused and rate-limited, stacked.
func verificationsChart(rows []credvault.KeyDayCount, since time.Time) *chart {
	by := map[string][]int64{}
	for _, r := range rows {
		by[r.Day.UTC().Format(time.DateOnly)] = []int64{r.Valid, r.Refused, r.RateLimited}
	}
	days := fillDays(since, chartDays, func(d time.Time) []int64 {
		if v, ok := by[d.Format(time.DateOnly)]; ok {
			return v
		}
		return []int64{0, 0, 0}
	})
	return newChart(days, []string{"successful", "refused", "rate-limited"}, []string{"s0", "s1", "s2"})
}

// funcs are the template helpers.
var funcs = template.FuncMap{
	"date": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04 UTC")
		case *time.Time:
			if v == nil || v.IsZero() {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04 UTC")
		}
		return "—"
	},
	"day":  func(t time.Time) string { return t.UTC().Format("Jan 2") },
	"join": strings.Join,
	"list": func(s ...string) []string { return s },
	"has": func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	},
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
	"lines": func(s []string) string { return strings.Join(s, "\n") },
	"data": func(m map[string]any) string {
		if len(m) == 0 {
			return ""
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			if k != "key_id" {
				keys = append(keys, k)
			}
		}
		sortStrings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+"="+shortValue(m[k]))
		}
		return strings.Join(parts, " ")
	},
}
