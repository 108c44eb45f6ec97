package oauth

import (
	"context"

	"golang.org/x/sync/errgroup"

	"credvault/internal/credvault"
)

// Refresher is the proactive refresh, run as a periodic job (internal/jobs,
// once across all replicas): it refreshes the connections due (their
// refresh time, about 10% of the token's lifetime before expiry, has
// passed) in batches (credvault.OAuthService.RefreshDue: one lock
// statement, one transit batch each way, one write per batch), with at
// most the service's Concurrency token requests at once. A batch holds its
// connections' cluster-wide locks and skips those another replica or an
// on-demand refresh holds, so an overlapping run never sends a token
// request twice.
type Refresher struct {
	Service *credvault.OAuthService
	// Pipelines is how many batches run at once (default 2): while one
	// batch writes, the next one's token requests keep the provider slots
	// busy. The provider bound is the service's, whatever this is.
	Pipelines int
	// MaxBatches bounds one run (default 1000 batches, 100,000
	// connections), so that a connection due again at once (a provider
	// answering tokens that are already expired) cannot spin a run.
	MaxBatches int
}

// RunOnce refreshes every connection due now, batch after batch, until a
// batch claims none. It returns how many it claimed. Errors: EUNAVAILABLE
// (PostgreSQL or Vault down).
func (r *Refresher) RunOnce(ctx context.Context) (int, error) {
	pipes, maxBatches := r.Pipelines, r.MaxBatches
	if pipes <= 0 {
		pipes = 2
	}
	if maxBatches <= 0 {
		maxBatches = 1000
	}
	budget := make(chan struct{}, maxBatches)
	for range maxBatches {
		budget <- struct{}{}
	}
	counts := make([]int, pipes)
	g, gctx := errgroup.WithContext(ctx)
	for p := range pipes {
		g.Go(func() error {
			for {
				select {
				case <-budget:
				default:
					return nil
				}
				n, err := r.Service.RefreshDue(gctx, credvault.RefreshBatch)
				counts[p] += n
				if err != nil || n == 0 || gctx.Err() != nil {
					return err
				}
			}
		})
	}
	err := g.Wait()
	total := 0
	for _, n := range counts {
		total += n
	}
	return total, err
}
