package credvault

import "time"

// The event stream's inputs: what the hot paths counted and what is
// about to expire, as the stores hand them to internal/events.

// SubjectUnknownKeys is the subject of refusals of keys not found in an
// org (a verify call by the org's service naming an unknown key).
const SubjectUnknownKeys = "unknown"

// RefusalCount is one subject's counts of one flush.
type RefusalCount struct {
	OrgID       string
	Subject     string // "key:<id>" or "unknown"
	Refusals    int
	RateLimited int
}

// RefusalWindow is one subject's refusals in the window and in the
// baseline before it.
type RefusalWindow struct {
	OrgID    string `db:"org_id"`
	Subject  string `db:"subject"`
	Recent   int    `db:"recent"`
	Before   int    `db:"before"`
	KeyName  string `db:"key_name"`
	Display  string `db:"display"`
	Spiking  bool   `db:"spiking"` // the state last told
	Baseline float64
}

// RateLimitedKey is a key that was throttled in a recent minute.
type RateLimitedKey struct {
	OrgID         string    `db:"org_id"`
	KeyID         string    `db:"key_id"`
	Name          string    `db:"name"`
	Display       string    `db:"display"`
	Limit         int       `db:"rate_limit"`
	WindowSeconds int       `db:"rate_window_secs"`
	Hits          int       `db:"hits"`
	LastMinute    time.Time `db:"last_minute"`
}

// Expiring is a key or a stored credential value whose expiry is near or
// (for a key) just passed.
type Expiring struct {
	Kind      string    `db:"kind"` // "api_key" or "credential"
	OrgID     string    `db:"org_id"`
	ID        string    `db:"id"`
	Name      string    `db:"name"`
	Display   string    `db:"display"`
	ExpiresAt time.Time `db:"expires_at"`
}
