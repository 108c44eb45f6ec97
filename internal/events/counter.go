package events

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"credvault/internal/credvault"
)

// Counter counts refusals and rate-limit hits on the hot paths, in memory:
// a map read and an atomic add per refused request, nothing written, sent
// or awaited. Flush adds the counts to PostgreSQL in the background, where
// the aggregator (once across replicas) turns them into events.
type Counter struct {
	mu     sync.RWMutex
	counts map[subject]*tally
	// dropped counts refusals not kept because the map was full (a flood
	// of distinct subjects); they are not lost silently: a log line says
	// how many at each flush.
	dropped atomic.Int64
}

// subject is one org's key (key "" for the org's unknown keys).
type subject struct{ org, key string }

type tally struct{ refusals, limited atomic.Int64 }

// maxSubjects bounds the map between flushes (some 100 bytes an entry).
// Subjects are keys and orgs that credvault itself found, so only an org
// with this many distinct refused keys in one flush period reaches it.
const maxSubjects = 100_000

// NewCounter returns an empty Counter.
func NewCounter() *Counter { return &Counter{counts: map[subject]*tally{}} }

// Refused counts one refused request for org: of key keyID, or of an
// unknown key when keyID is "". rateLimited marks a 429. A refusal with
// no org (an unknown key on a route that names none) is not counted.
func (c *Counter) Refused(orgID, keyID string, rateLimited bool) {
	if orgID == "" {
		return
	}
	k := subject{orgID, keyID}
	c.mu.RLock()
	t := c.counts[k]
	c.mu.RUnlock()
	if t == nil {
		c.mu.Lock()
		if t = c.counts[k]; t == nil {
			if len(c.counts) >= maxSubjects {
				c.mu.Unlock()
				c.dropped.Add(1)
				return
			}
			t = &tally{}
			c.counts[k] = t
		}
		c.mu.Unlock()
	}
	t.refusals.Add(1)
	if rateLimited {
		t.limited.Add(1)
	}
}

// CountStore adds flushed counts to the minute they were taken in.
type CountStore interface {
	AddRefusalCounts(ctx context.Context, minute time.Time, counts []credvault.RefusalCount) error
}

// take empties the counter and returns what it held.
func (c *Counter) take() []credvault.RefusalCount {
	c.mu.Lock()
	old := c.counts
	c.counts = make(map[subject]*tally, len(old))
	c.mu.Unlock()
	out := make([]credvault.RefusalCount, 0, len(old))
	for k, t := range old {
		if r := t.refusals.Load(); r > 0 {
			name := credvault.SubjectUnknownKeys
			if k.key != "" {
				name = "key:" + k.key
			}
			out = append(out, credvault.RefusalCount{OrgID: k.org, Subject: name, Refusals: int(r), RateLimited: int(t.limited.Load())})
		}
	}
	return out
}

// Flush writes the counts taken since the last flush into the current
// minute. On failure the counts are added back, to be tried again.
func (c *Counter) Flush(ctx context.Context, store CountStore, now time.Time, log *slog.Logger) error {
	counts := c.take()
	if d := c.dropped.Swap(0); d > 0 && log != nil {
		log.Warn("refusal counter full; refusals not counted for spike detection", "dropped", d)
	}
	if len(counts) == 0 {
		return nil
	}
	if err := store.AddRefusalCounts(ctx, now.UTC().Truncate(time.Minute), counts); err != nil {
		for _, rc := range counts {
			c.addBack(rc)
		}
		return err
	}
	return nil
}

func (c *Counter) addBack(rc credvault.RefusalCount) {
	k := subject{rc.OrgID, strings.TrimPrefix(rc.Subject, "key:")}
	if rc.Subject == credvault.SubjectUnknownKeys {
		k.key = ""
	}
	c.mu.Lock()
	t := c.counts[k]
	if t == nil {
		t = &tally{}
		c.counts[k] = t
	}
	c.mu.Unlock()
	t.refusals.Add(int64(rc.Refusals))
	t.limited.Add(int64(rc.RateLimited))
}

// Run flushes every period until ctx ends, then once more.
func (c *Counter) Run(ctx context.Context, store CountStore, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_ = c.Flush(fctx, store, time.Now(), log)
			cancel()
			return
		case now := <-t.C:
			if err := c.Flush(ctx, store, now, log); err != nil {
				log.Warn("flushing refusal counts failed; will retry", "error", credvault.ErrorMessage(err))
			}
		}
	}
}
