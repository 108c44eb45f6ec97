package credvault

import (
	"context"
	"time"
)

// KeyDayCount is how one API key's (or integration's) verifications went
// on one UTC day: Valid (accepted), RateLimited (its rate limit was
// exhausted) and Refused, the sum of the refusals by reason: Revoked,
// Expired, KeyDisabled (the key's own switch) and IntegrationDisabled.
// IntegrationID is the key's integration when it was verified ("" for
// none). The verifier adds these up in memory and writes them in batches,
// like last-used times.
type KeyDayCount struct {
	KeyID               string    `db:"key_id"`
	IntegrationID       string    `db:"-"`
	Day                 time.Time `db:"day"` // midnight UTC
	Valid               int64     `db:"valid"`
	Refused             int64     `db:"refused"`
	RateLimited         int64     `db:"rate_limited"`
	Revoked             int64     `db:"revoked"`
	Expired             int64     `db:"expired"`
	KeyDisabled         int64     `db:"key_disabled"`
	IntegrationDisabled int64     `db:"integration_disabled"`
}

// CallDayCount is how one credential's calls through credvault (or, summed,
// an org's) went on one UTC day, by the upstream's answer: OK (1xx-3xx),
// Rejected (401 or 403: the API refused the credential), RateLimited (429)
// and Failed (any other 4xx or 5xx, or no answer, recorded as status 0).
type CallDayCount struct {
	Day         time.Time `db:"day"`
	OK          int64     `db:"ok"`
	Rejected    int64     `db:"rejected"`
	RateLimited int64     `db:"rate_limited"`
	Failed      int64     `db:"failed"`
}

// DayCount is a number of events on one UTC day.
type DayCount struct {
	Day   time.Time `db:"day"`
	Count int64     `db:"count"`
}

// StatsStore reads the per-day figures behind the console's charts.
type StatsStore interface {
	// KeyVerificationsPerDay returns the key's counts for days >= since,
	// oldest first; days without verifications are absent.
	KeyVerificationsPerDay(ctx context.Context, keyID string, since time.Time) ([]KeyDayCount, error)
	// CredentialCallsPerDay counts the credential's uses per UTC day since
	// then, by outcome, oldest first; days without use are absent.
	CredentialCallsPerDay(ctx context.Context, credentialID string, since time.Time) ([]CallDayCount, error)
	// OrgVerificationsPerDay sums the verifications of every key of the
	// org per UTC day since then, oldest first (KeyID empty).
	OrgVerificationsPerDay(ctx context.Context, orgID string, since time.Time) ([]KeyDayCount, error)
	// OrgCallsPerDay counts the uses of every credential of the org per
	// UTC day since then, by outcome, oldest first.
	OrgCallsPerDay(ctx context.Context, orgID string, since time.Time) ([]CallDayCount, error)
	// CredentialsLastUsed returns the last use of each of the org's
	// credentials named; ids without use are absent.
	CredentialsLastUsed(ctx context.Context, orgID string, ids []string) (map[string]time.Time, error)
}

// StatsService serves per-day figures under the same rules as the
// resources they describe: whoever may read a key sees its chart, whoever
// may use a credential sees its calls.
type StatsService struct {
	Keys        *APIKeyService
	Credentials *CredentialService
	Store       StatsStore
	Now         func() time.Time
}

// StatsDays bounds how many days a chart may cover.
const StatsDays = 90

func (s *StatsService) since(days int) (time.Time, error) { return statsSince(s.Now, days) }

// statsSince is the first UTC day of a chart of the last days (1-90), by
// the clock now (time.Now when nil). Errors: EINVALID naming "days".
func statsSince(now func() time.Time, days int) (time.Time, error) {
	if days < 1 || days > StatsDays {
		return time.Time{}, Errorf(EINVALID, "field \"days\" must be 1 to %d", StatsDays)
	}
	if now == nil {
		now = time.Now
	}
	today := now().UTC().Truncate(24 * time.Hour)
	return today.AddDate(0, 0, -(days - 1)), nil
}

// KeyVerifications returns the last days of a key's verification counts.
// Errors: those of APIKeyService.FindAPIKey (EFORBIDDEN, ENOTFOUND), and
// EINVALID for days outside 1..90.
func (s *StatsService) KeyVerifications(ctx context.Context, keyID string, days int) ([]KeyDayCount, time.Time, error) {
	since, err := s.since(days)
	if err != nil {
		return nil, time.Time{}, err
	}
	k, err := s.Keys.FindAPIKey(ctx, keyID)
	if err != nil {
		return nil, time.Time{}, err
	}
	out, err := s.Store.KeyVerificationsPerDay(ctx, k.ID, since)
	return out, since, err
}

// CredentialCalls returns the last days of a credential's calls. Errors:
// those of CredentialService.FindCredential (EFORBIDDEN, ENOTFOUND), and
// EINVALID for days outside 1..90.
func (s *StatsService) CredentialCalls(ctx context.Context, credentialID string, days int) ([]CallDayCount, time.Time, error) {
	since, err := s.since(days)
	if err != nil {
		return nil, time.Time{}, err
	}
	c, _, err := s.Credentials.FindCredential(ctx, credentialID)
	if err != nil {
		return nil, time.Time{}, err
	}
	out, err := s.Store.CredentialCallsPerDay(ctx, c.ID, since)
	return out, since, err
}

// OrgVerifications returns the last days of the verifications of every
// key of the caller's org, by outcome. Errors: EFORBIDDEN unless the
// caller is an owner or admin with keys:read (the figures cover every
// member's keys); EINVALID for days outside 1..90.
func (s *StatsService) OrgVerifications(ctx context.Context, days int) ([]KeyDayCount, time.Time, error) {
	p, since, err := s.orgWide(ctx, days, ScopeKeysRead, "see the whole org's verifications")
	if err != nil {
		return nil, time.Time{}, err
	}
	out, err := s.Store.OrgVerificationsPerDay(ctx, p.OrgID, since)
	return out, since, err
}

// OrgCalls returns the last days of the calls of every credential of the
// caller's org, by outcome. Errors: EFORBIDDEN unless the caller is an
// owner or admin with credentials:read; EINVALID for days outside 1..90.
func (s *StatsService) OrgCalls(ctx context.Context, days int) ([]CallDayCount, time.Time, error) {
	p, since, err := s.orgWide(ctx, days, ScopeCredentialsRead, "see the whole org's calls")
	if err != nil {
		return nil, time.Time{}, err
	}
	out, err := s.Store.OrgCallsPerDay(ctx, p.OrgID, since)
	return out, since, err
}

// orgWide is the check of the org-wide figures: a manager holding scope.
func (s *StatsService) orgWide(ctx context.Context, days int, scope, what string) (*Principal, time.Time, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	if err := requireScope(p, scope); err != nil {
		return nil, time.Time{}, err
	}
	if err := requireManager(p, what); err != nil {
		return nil, time.Time{}, err
	}
	since, err := s.since(days)
	return p, since, err
}

// CredentialsLastUsed returns when each credential was last used, for a
// list the caller already obtained from CredentialService.FindCredentials
// (so it holds only what the caller may see); credentials of another org
// are skipped. Errors: EUNAUTHORIZED without a caller, EUNAVAILABLE.
func (s *StatsService) CredentialsLastUsed(ctx context.Context, creds []*Credential) (map[string]time.Time, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(creds))
	for _, c := range creds {
		if c.OrgID == p.OrgID {
			ids = append(ids, c.ID)
		}
	}
	if len(ids) == 0 {
		return map[string]time.Time{}, nil
	}
	return s.Store.CredentialsLastUsed(ctx, p.OrgID, ids)
}
