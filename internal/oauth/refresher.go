package oauth

import (
	"context"

	"credvault/internal/credvault"
)

// Refresher is the proactive refresh, run as a periodic job (internal/jobs,
// once across all replicas): it refreshes the connections due (their
// refresh time, about 10% of the token's lifetime before expiry, has
// passed), at most the service's Concurrency token requests at once. Each
// refresh holds its credential's cluster-wide lock and skips a credential
// another replica is refreshing, so an overlapping run never sends a token
// request twice.
type Refresher struct {
	Service *credvault.OAuthService
	Batch   int // connections per round, default 500
}

// RunOnce refreshes every connection due now, in rounds of Batch, until a
// round finds fewer than Batch. It returns how many it examined. Errors:
// EUNAVAILABLE (PostgreSQL or Vault down).
func (r *Refresher) RunOnce(ctx context.Context) (int, error) {
	batch := r.Batch
	if batch <= 0 {
		batch = 500
	}
	total := 0
	// Rows another replica holds stay due until it finishes; the bound
	// keeps such a round from spinning.
	for round := 0; round < 200; round++ {
		n, err := r.Service.RefreshDue(ctx, batch)
		total += n
		if err != nil || n < batch || ctx.Err() != nil {
			return total, err
		}
	}
	return total, nil
}
