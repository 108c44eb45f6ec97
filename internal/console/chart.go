package console

import (
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
	chartH     = 170
	chartTop   = 12
	chartBase  = 142 // y of the x axis
	chartLeft  = 44
	chartRight = 8
)

// chart is a stacked bar chart rendered server-side as inline SVG (the
// "chart" template of partials.html): bars are rects with classes the
// stylesheet colours (no inline style, so the CSP holds), each with a
// <title> for hover and screen readers; the y axis has gridlines at round
// numbers (1, 2 or 5 times a power of ten) up to at least the tallest day,
// and the outcome totals are listed under it. A chart with nothing to
// show renders its Empty text instead of an axis from 0 to 0.
type chart struct {
	W, H      int
	BaseY     int
	Left      int
	Right     int
	Top       int64 // the value at the top of the scale
	Ticks     []tick
	Bars      []bar
	Labels    []label
	Breakdown []outcome
	Days      []chartDay
	Empty     bool
	EmptyText string
	Summary   string
}

type tick struct {
	Y     int
	Label string
}

type bar struct {
	X, Y, W, H int
	Class      string
	Title      string
}

type label struct {
	X    int
	Text string
	Alt  bool // every other label, left out on a phone (console.css)
}

// outcome is one series and its total over the chart's days.
type outcome struct {
	Class, Text string
	Total       int64
}

// series names one stack of the chart and the CSS class that colours it;
// optional series are left out of the breakdown when their total is 0.
type series struct {
	Name, Class string
	Optional    bool
}

// chartDay is one day's figures, in series order.
type chartDay struct {
	Day    time.Time
	Values []int64
}

// niceTop returns the top of a scale for values up to max and its step:
// the step is 1, 2 or 5 times a power of ten, at most 5 steps reach the
// top, and the top is a whole number of steps at or above max (1 for an
// all-zero chart, which is drawn as an empty state anyway).
func niceTop(max int64) (top, step int64) {
	if max <= 0 {
		return 1, 1
	}
	for mag := int64(1); ; mag *= 10 {
		for _, m := range []int64{1, 2, 5} {
			step = m * mag
			if step*5 >= max {
				return (max + step - 1) / step * step, step
			}
		}
	}
}

// newChart lays out stacked bars for days (oldest first) of the given
// series; empty is the text shown when every value is 0.
func newChart(days []chartDay, ss []series, empty string) *chart {
	ch := &chart{W: chartW, H: chartH, BaseY: chartBase, Left: chartLeft, Right: chartW - chartRight, Days: days, EmptyText: empty}
	var peak int64
	totals := make([]int64, len(ss))
	for _, d := range days {
		var sum int64
		for i, v := range d.Values {
			if i >= len(ss) {
				break // a figure without a series is not drawn or counted
			}
			sum += v
			totals[i] += v
		}
		peak = max(peak, sum)
	}
	ch.Empty = peak == 0
	top, step := niceTop(peak)
	ch.Top = top
	for v := int64(0); v <= top; v += step {
		ch.Ticks = append(ch.Ticks, tick{Y: chartBase - int(int64(chartBase-chartTop)*v/top), Label: compactCount(v)})
	}
	slot := (chartW - chartLeft - chartRight) / max(1, len(days))
	barW := max(2, slot*3/4)
	for i, d := range days {
		x := chartLeft + i*slot + (slot-barW)/2
		y, cum := chartBase, int64(0)
		for s, v := range d.Values {
			if s >= len(ss) {
				break // a figure without a series has no bar to draw
			}
			if v == 0 {
				continue
			}
			// Each stack ends where the running total is on the scale, so
			// rounding never leaves the tallest day short of its value.
			cum += v
			h := max(y-(chartBase-int(int64(chartBase-chartTop)*cum/top)), 1)
			y -= h
			// #nosec G602 -- s < len(ss): checked above
			ch.Bars = append(ch.Bars, bar{X: x, Y: y, W: barW, H: h, Class: ss[s].Class,
				Title: d.Day.Format("Jan 2") + ": " + strconv.FormatInt(v, 10) + " " + ss[s].Name})
		}
		if i%2 == 0 || len(days) <= 7 {
			ch.Labels = append(ch.Labels, label{X: x + barW/2, Text: d.Day.Format("Jan 2"), Alt: len(ch.Labels)%2 == 1})
		}
	}
	parts := make([]string, 0, len(ss))
	for i, s := range ss {
		if s.Optional && totals[i] == 0 {
			continue
		}
		ch.Breakdown = append(ch.Breakdown, outcome{Class: s.Class, Text: s.Name, Total: totals[i]})
		parts = append(parts, strconv.FormatInt(totals[i], 10)+" "+s.Name)
	}
	ch.Summary = "Last " + strconv.Itoa(len(days)) + " days: " + strings.Join(parts, ", ")
	return ch
}

// compactCount prints an axis label: 950, 1.5k, 20k, 3M.
func compactCount(n int64) string {
	switch {
	case n >= 1_000_000:
		return trimZero(float64(n)/1e6) + "M"
	case n >= 1_000:
		return trimZero(float64(n)/1e3) + "k"
	}
	return strconv.FormatInt(n, 10)
}

func trimZero(f float64) string {
	return strings.TrimSuffix(strconv.FormatFloat(f, 'f', 1, 64), ".0")
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

// callSeries are the outcomes of calls through credvault with a
// credential, by the upstream's answer (credvault.CallDayCount).
var callSeries = []series{
	{Name: "succeeded", Class: "s0"},
	{Name: "refused by the API (401/403)", Class: "s1"},
	{Name: "rate-limited by the API (429)", Class: "s2"},
	{Name: "failed (other errors, no answer)", Class: "s3"},
}

// callsChart is a credential's (or the org's) calls per day, by outcome.
func callsChart(rows []credvault.CallDayCount, since time.Time, empty string) *chart {
	by := map[string][]int64{}
	for _, r := range rows {
		by[r.Day.UTC().Format(time.DateOnly)] = []int64{r.OK, r.Rejected, r.RateLimited, r.Failed}
	}
	days := fillDays(since, chartDays, func(d time.Time) []int64 { return valuesOr(by, d, len(callSeries)) })
	return newChart(days, callSeries, empty)
}

// verificationSeries are the outcomes of verifying an API key
// (credvault.KeyDayCount); "refused, reason not recorded" holds refusals
// counted before reasons were (migration 0011).
var verificationSeries = []series{
	{Name: "allowed", Class: "s0"},
	{Name: "refused: revoked", Class: "s1"},
	{Name: "refused: expired", Class: "s3"},
	{Name: "refused: disabled", Class: "s5", Optional: true},
	{Name: "refused, reason not recorded", Class: "s4", Optional: true},
	{Name: "rate-limited", Class: "s2"},
}

// verificationsChart is an API key's (or the org's) verifications per
// day: allowed, refused by reason and rate-limited, stacked.
func verificationsChart(rows []credvault.KeyDayCount, since time.Time, empty string) *chart {
	by := map[string][]int64{}
	for _, r := range rows {
		disabled := r.KeyDisabled + r.IntegrationDisabled
		other := max(r.Refused-r.Revoked-r.Expired-disabled, 0)
		by[r.Day.UTC().Format(time.DateOnly)] = []int64{r.Valid, r.Revoked, r.Expired, disabled, other, r.RateLimited}
	}
	days := fillDays(since, chartDays, func(d time.Time) []int64 { return valuesOr(by, d, len(verificationSeries)) })
	return newChart(days, verificationSeries, empty)
}

// valuesOr is by's values for day d, or n zeros.
func valuesOr(by map[string][]int64, d time.Time, n int) []int64 {
	if v, ok := by[d.Format(time.DateOnly)]; ok {
		return v
	}
	return make([]int64, n)
}
