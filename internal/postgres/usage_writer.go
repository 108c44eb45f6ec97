package postgres

import (
	"context"
	"log/slog"
	"strings"
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
	// users holds one home per user id for the uses' UserID pointers: the
	// caller's pointer points into its request's context, which a queued
	// use would otherwise keep alive until the flush (about 200 bytes a
	// call, 5 MB a second at 25,000 proxied calls a second).
	users map[string]*string
	kick  chan struct{} // a full batch waits: flush before the interval ends
}

// flushAtUsage is the batch size that is written without waiting for the
// interval, so that what waits in memory does not grow with the call
// rate: at 25,000 proxied calls a second, a one-second batch held
// 25,000 uses (136 bytes each, and the request context each pointed to)
// and the spare array as much again; RSS under that load was 40-50%
// above the binary issue 24 was measured on (BENCHMARKS.md). 4,096 uses
// are a few database round trips a second at that rate.
const flushAtUsage = 4096

// maxSpareUsage bounds the array a writer keeps between flushes.
const maxSpareUsage = 2 * flushAtUsage

// maxUserHomes bounds users; past it, the map starts over at the next
// flush.
const maxUserHomes = 4096

// maxPendingUsage bounds memory while PostgreSQL is down: past it, the
// oldest uses are dropped (and counted in the log).
const maxPendingUsage = 100_000

// NewUsageWriter returns a writer that flushes every interval.
func NewUsageWriter(store *Store, log *slog.Logger, every time.Duration) *UsageWriter {
	if every <= 0 {
		every = time.Second
	}
	return &UsageWriter{store: store, log: log, every: every, users: map[string]*string{}, kick: make(chan struct{}, 1)}
}

// Record queues one use; it never blocks on the database. u.UserID is
// not kept: the use points to a copy of its user id shared by every use
// of that user.
func (w *UsageWriter) Record(u credvault.Usage) {
	w.mu.Lock()
	if u.UserID != nil {
		home, ok := w.users[*u.UserID]
		if !ok {
			id := strings.Clone(*u.UserID)
			home = &id
			w.users[id] = home
		}
		u.UserID = home
	}
	if len(w.pending) >= maxPendingUsage {
		w.pending = w.pending[1:]
	}
	w.pending = append(w.pending, u)
	full := len(w.pending) == flushAtUsage
	w.mu.Unlock()
	if full {
		select {
		case w.kick <- struct{}{}:
		default: // a flush is asked for already
		}
	}
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
		case <-w.kick:
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
	if len(w.users) > maxUserHomes {
		w.users = map[string]*string{}
	}
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
