package postgres

import (
	"strconv"
	"time"

	"credvault/internal/credvault"
)

// usageArrays are RecordUsage's nine array parameters as PostgreSQL array
// literals, the text lib/pq's StringArray, Array and Int64Array send for
// the same values ('{"a","b"}', NULL for a missing user, '{1,2}',
// timestamps as lib/pq formats them, unquoted), built in one buffer per
// batch: lib/pq's own encoding made several allocations per use (a
// formatted timestamp, a quoted copy of each string, reflection over the
// generic arrays), about a tenth of the proxy's allocations (issue 24).
type usageArrays struct {
	cred, org, wf, node, user, host, status, lat, at string
}

// tsLayout is lib/pq's timestamp layout (years after 0 AD; a use's time is
// now).
const tsLayout = "2006-01-02 15:04:05.999999999Z07:00"

func newUsageArrays(uses []credvault.Usage) usageArrays {
	size := 0
	for _, u := range uses {
		size += len(u.CredentialID) + len(u.OrgID) + len(u.WorkflowID) + len(u.NodeID) + len(u.DestinationHost) + 36 + 80
	}
	buf := make([]byte, 0, size+32)
	col := func(elem func(b []byte, u *credvault.Usage) []byte) string {
		start := len(buf)
		buf = append(buf, '{')
		for i := range uses {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = elem(buf, &uses[i])
		}
		buf = append(buf, '}')
		return string(buf[start:])
	}
	var a usageArrays
	a.cred = col(func(b []byte, u *credvault.Usage) []byte { return appendQuoted(b, u.CredentialID) })
	a.org = col(func(b []byte, u *credvault.Usage) []byte { return appendQuoted(b, u.OrgID) })
	a.wf = col(func(b []byte, u *credvault.Usage) []byte { return appendQuoted(b, u.WorkflowID) })
	a.node = col(func(b []byte, u *credvault.Usage) []byte { return appendQuoted(b, u.NodeID) })
	a.user = col(func(b []byte, u *credvault.Usage) []byte {
		if u.UserID == nil {
			return append(b, "NULL"...)
		}
		return appendQuoted(b, *u.UserID)
	})
	a.host = col(func(b []byte, u *credvault.Usage) []byte { return appendQuoted(b, u.DestinationHost) })
	a.status = col(func(b []byte, u *credvault.Usage) []byte { return strconv.AppendInt(b, int64(u.Status), 10) })
	a.lat = col(func(b []byte, u *credvault.Usage) []byte { return strconv.AppendInt(b, int64(u.LatencyMS), 10) })
	a.at = col(func(b []byte, u *credvault.Usage) []byte { return appendTimestamp(b, u.CreatedAt) })
	return a
}

// appendQuoted appends s as a quoted array element: backslash and double
// quote escaped with a backslash, as lib/pq quotes them.
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// appendTimestamp appends t as lib/pq formats a timestamp parameter: the
// layout with a seconds offset when the zone has one, " BC" for years up
// to 0 (ISO year 0 is 1 BC).
func appendTimestamp(b []byte, t time.Time) []byte {
	bc := false
	if t.Year() <= 0 {
		t = t.AddDate((-t.Year())*2+1, 0, 0)
		bc = true
	}
	b = t.AppendFormat(b, tsLayout)
	if _, offset := t.Zone(); offset%60 != 0 {
		if offset < 0 {
			offset = -offset
		}
		b = append(b, ':')
		if offset%60 < 10 {
			b = append(b, '0')
		}
		b = strconv.AppendInt(b, int64(offset%60), 10)
	}
	if bc {
		b = append(b, " BC"...)
	}
	return b
}
