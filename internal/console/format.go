package console

import (
	"html/template"
	"strconv"
	"strings"
	"time"
)

// Reusable pieces for every page (other page families adopt them through
// funcs and partials.html):
//   - {{ago .T}}: a relative time ("3 h ago", "in 29 d") in a <time>
//     element whose datetime is RFC 3339 and whose title is the exact UTC
//     time, shown on hover and read by screen readers as the title;
//   - {{plural n "member" "members"}}: "1 member", "2 members";
//   - {{date .T}}: the exact UTC time, for detail pages.

// exactTime is the hover text and detail-page format of a time.
func exactTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// relative says how far t is from now, in the largest unit that fits:
// "just now", "5 min ago", "3 h ago", "12 d ago", then the date ("Mar 4",
// with the year when it is not now's year); the future reads "in 3 h".
func relative(t, now time.Time) string {
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		if future {
			return "in under a minute"
		}
		return "just now"
	case d < time.Hour:
		s = strconv.Itoa(int(d/time.Minute)) + " min"
	case d < 48*time.Hour:
		s = strconv.Itoa(int(d/time.Hour)) + " h"
	case d < 60*24*time.Hour:
		s = strconv.Itoa(int(d/(24*time.Hour))) + " d"
	default:
		if t.Year() == now.Year() {
			return t.UTC().Format("Jan 2")
		}
		return t.UTC().Format("Jan 2, 2006")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// agoHTML is the {{ago}} helper: "—" for a zero or nil time ("never" is
// the page's to say).
func agoHTML(t any) template.HTML {
	var tt time.Time
	switch v := t.(type) {
	case time.Time:
		tt = v
	case *time.Time:
		if v != nil {
			tt = *v
		}
	}
	if tt.IsZero() {
		return "—"
	}
	return template.HTML(`<time datetime="` + tt.UTC().Format(time.RFC3339) + `" title="` + exactTime(tt) + `">` +
		template.HTMLEscapeString(relative(tt, time.Now())) + `</time>`)
}

// plural is "1 member" or "n members".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// funcs are the template helpers.
var funcs = template.FuncMap{
	"date": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return "—"
			}
			return exactTime(v)
		case *time.Time:
			if v == nil || v.IsZero() {
				return "—"
			}
			return exactTime(*v)
		}
		return "—"
	},
	"ago":        agoHTML,
	"invalid":    invalidAttr,
	"fielderror": fieldError,
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
	"plural":    plural,
	"person":    person,
	"day":       func(t time.Time) string { return t.UTC().Format("Jan 2") },
	"join":      strings.Join,
	"list":      func(s ...string) []string { return s },
	"minutes":   func(sec int) int { return sec / 60 },
	"mul":       func(a, b int) int { return a * b },
	"intervals": func() []int { return []int{5, 15, 30, 60, 360, 1440} },
	"isoday":    func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
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
