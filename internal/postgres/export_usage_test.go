package postgres

import "credvault/internal/credvault"

// UsageArraysForTest is newUsageArrays's nine literals in parameter order.
func UsageArraysForTest(uses []credvault.Usage) []string {
	a := newUsageArrays(uses)
	return []string{a.cred, a.org, a.wf, a.node, a.user, a.host, a.status, a.lat, a.at}
}

// FlushAtUsage is the batch size UsageWriter writes without waiting.
const FlushAtUsage = flushAtUsage
