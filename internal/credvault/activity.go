package credvault

import (
	"context"
	"time"
)

// ActivityTop is one of the busiest keys or integrations of a period:
// its checks (every verification) and how many were refused for its
// state or by its rate limit.
type ActivityTop struct {
	ID          string `db:"id"`
	Name        string `db:"name"`
	Display     string `db:"display"` // prefix_…last4 of a key; "" for an integration
	Enabled     bool   `db:"enabled"`
	Checks      int64  `db:"checks"`
	Refused     int64  `db:"refused"`
	RateLimited int64  `db:"rate_limited"`
}

// OrgActivity is an org's key verifications over a period: per UTC day
// (oldest first, days without any absent), the busiest keys and
// integrations, and the audit events of the period (newest first).
type OrgActivity struct {
	Since           time.Time
	Days            []KeyDayCount
	TopKeys         []ActivityTop
	TopIntegrations []ActivityTop
	Events          []*AuditEvent
	// EventsHidden is set when the caller lacks audit:read.
	EventsHidden bool
}

// ActivityStore reads an org's verification counters.
type ActivityStore interface {
	// OrgVerificationsPerDay sums the org's per-key counters by day
	// since then (KeyID empty).
	OrgVerificationsPerDay(ctx context.Context, orgID string, since time.Time) ([]KeyDayCount, error)
	// TopKeys and TopIntegrations are the n with the most checks since then.
	TopKeys(ctx context.Context, orgID string, since time.Time, n int) ([]ActivityTop, error)
	TopIntegrations(ctx context.Context, orgID string, since time.Time, n int) ([]ActivityTop, error)
}

// ActivityService is the org's activity page: owners and admins with
// keys:read see every key's figures; the audit events need audit:read.
type ActivityService struct {
	Store ActivityStore
	Audit *AuditService
	Now   func() time.Time
}

// Activity limits.
const (
	activityTop    = 5
	activityEvents = 50
)

// Activity returns the org's activity of the last days (1-90). Errors:
// EFORBIDDEN (scope keys:read, role), EINVALID (days).
func (s *ActivityService) Activity(ctx context.Context, days int) (*OrgActivity, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireScope(p, ScopeKeysRead); err != nil {
		return nil, err
	}
	if err := requireManager(p, "see the org's activity"); err != nil {
		return nil, err
	}
	since, err := statsSince(s.Now, days)
	if err != nil {
		return nil, err
	}
	a := &OrgActivity{Since: since}
	if a.Days, err = s.Store.OrgVerificationsPerDay(ctx, p.OrgID, since); err != nil {
		return nil, err
	}
	if a.TopKeys, err = s.Store.TopKeys(ctx, p.OrgID, since, activityTop); err != nil {
		return nil, err
	}
	if a.TopIntegrations, err = s.Store.TopIntegrations(ctx, p.OrgID, since, activityTop); err != nil {
		return nil, err
	}
	evs, err := s.Audit.FindAuditEvents(ctx, AuditFilter{Limit: activityEvents})
	switch {
	case ErrorCode(err) == EFORBIDDEN:
		a.EventsHidden = true
	case err != nil:
		return nil, err
	}
	for _, ev := range evs { // newest first: stop at the period's start
		if ev.CreatedAt.Before(since) {
			break
		}
		a.Events = append(a.Events, ev)
	}
	return a, nil
}
