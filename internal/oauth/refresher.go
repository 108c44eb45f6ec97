package oauth

import (
	"context"
	"log/slog"
	"time"

	"credvault/internal/credvault"
)

// Refresher is the proactive refresh: every Interval it refreshes the
// connections due (their refresh time, about 10% of the token's lifetime
// before expiry, has passed), at most the service's Concurrency token
// requests at once. Each refresh holds its credential's cluster-wide lock
// and skips a credential another replica is refreshing, so running it on
// every replica never sends a token request twice.
type Refresher struct {
	Service  *credvault.OAuthService
	Interval time.Duration // default 15s
	Batch    int           // connections per round, default 500
	Log      *slog.Logger
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

// Run calls RunOnce every Interval until ctx ends.
func (r *Refresher) Run(ctx context.Context) {
	every := r.Interval
	if every <= 0 {
		every = 15 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := r.RunOnce(ctx); err != nil && ctx.Err() == nil && r.Log != nil {
			r.Log.Warn("oauth refresh round failed", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
