package postgres

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"credvault/internal/credvault"
)

// UsageWriter collects credential uses from the injector and writes them
// in batches, so that recording a use never slows the call it describes.
type UsageWriter struct {
	store *Store
	log   *slog.Logger
	every time.Duration

	mu      sync.Mutex
	pending []credvault.Usage
	spare   []credvault.Usage // the last written batch's array, emptied, for the next one
}

// maxSpareUsage bounds the array a writer keeps between flushes.
const maxSpareUsage = 1 << 16

// maxPendingUsage bounds memory while PostgreSQL is down: past it, the
// oldest uses are dropped (and counted in the log).
const maxPendingUsage = 100_000

// NewUsageWriter returns a writer that flushes every interval.
func NewUsageWriter(store *Store, log *slog.Logger, every time.Duration) *UsageWriter {
	if every <= 0 {
		every = time.Second
	}
	return &UsageWriter{store: store, log: log, every: every}
}

// Record queues one use; it never blocks on the database.
func (w *UsageWriter) Record(u credvault.Usage) {
	w.mu.Lock()
	if len(w.pending) >= maxPendingUsage {
		w.pending = w.pending[1:]
	}
	w.pending = append(w.pending, u)
	w.mu.Unlock()
}

// Run flushes until ctx ends, then once more.
func (w *UsageWriter) Run(ctx context.Context) {
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			w.Flush(fctx)
			cancel()
			return
		case <-t.C:
			w.Flush(ctx)
		}
	}
}

// Flush writes what is queued; on failure the batch is queued again. A
// written batch's array is kept (emptied) for the next batch.
func (w *UsageWriter) Flush(ctx context.Context) {
	w.mu.Lock()
	batch := w.pending
	w.pending, w.spare = w.spare, nil
	w.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	err := w.store.RecordUsage(ctx, batch)
	if err == nil {
		if cap(batch) <= maxSpareUsage {
			clear(batch) // no references kept
			w.mu.Lock()
			if w.spare == nil {
				w.spare = batch[:0]
			}
			w.mu.Unlock()
		}
		return
	}
	if credvault.ErrorCode(err) != credvault.EUNAVAILABLE {
		// The batch itself is bad: retrying it would block every later
		// use. Drop it and say so.
		w.log.Error("credential usage batch refused by the database; dropped", "uses", len(batch), "error", err.Error())
		return
	}
	w.log.Warn("recording credential usage failed; will retry", "uses", len(batch), "error", err.Error())
	w.mu.Lock()
	w.pending = append(batch, w.pending...)
	if len(w.pending) > maxPendingUsage {
		w.pending = w.pending[len(w.pending)-maxPendingUsage:]
	}
	w.mu.Unlock()
}
