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

// Counter counts refusals and rate-limit hits on the hot paths, in memory,
// without a lock: Refused is one atomic load of the published table, a map
// read and an atomic add, and allocates nothing, for every subject counted
// before the last flush. A subject seen for the first time since then takes
// a mutex once to get its tally. Nothing is written, sent or awaited. Flush
// adds the counts to PostgreSQL in the background, where the aggregator
// (once across replicas) turns them into events, and publishes a new table.
type Counter struct {
	// table is the published snapshot, never written after it is stored:
	// the subjects active in the last flush period and their tallies.
	table atomic.Pointer[map[subject]*tally]

	mu sync.Mutex
	// fresh holds the subjects first seen since the last publish.
	fresh map[subject]*tally
	// idle notes since when a subject of the table has had no refusal
	// (read at flushes); one idle for retireAfter leaves the table.
	idle map[subject]time.Time
	// retired holds the tallies left out of the table: a Refused that
	// loaded an older table may still add to one, so they are read at
	// each flush for another retireAfter.
	retired []subjectTally
	// dropped counts refusals not kept because the table was full (a flood
	// of distinct subjects); they are not lost silently: a log line says
	// how many at each flush.
	dropped atomic.Int64
}

// subject is one org's key (key "" for the org's unknown keys).
type subject struct{ org, key string }

type tally struct{ refusals, limited atomic.Int64 }

func (t *tally) add(refusals, limited int64) {
	t.refusals.Add(refusals)
	if limited != 0 {
		t.limited.Add(limited)
	}
}

type subjectTally struct {
	k  subject
	t  *tally
	at time.Time // when it was retired
}

// retireAfter is how long a subject stays in the table without refusals,
// and then how long its tally is still read: far longer than a Refused
// call can hold an older table, so no count is lost, and short enough that
// the table holds only subjects refused lately.
const retireAfter = time.Minute

// maxSubjects bounds the subjects kept between flushes (some 100 bytes
// each). Subjects are keys and orgs that credvault itself found, so only an
// org with this many distinct refused keys in one flush period reaches it.
const maxSubjects = 100_000

// NewCounter returns an empty Counter.
func NewCounter() *Counter {
	c := &Counter{fresh: map[subject]*tally{}, idle: map[subject]time.Time{}}
	c.table.Store(&map[subject]*tally{})
	return c
}

// Refused counts one refused request for org: of key keyID, or of an
// unknown key when keyID is "". rateLimited marks a 429. A refusal with
// no org (an unknown key on a route that names none) is not counted.
func (c *Counter) Refused(orgID, keyID string, rateLimited bool) {
	if orgID == "" {
		return
	}
	var limited int64
	if rateLimited {
		limited = 1
	}
	k := subject{orgID, keyID}
	if t := (*c.table.Load())[k]; t != nil {
		t.add(1, limited)
		return
	}
	c.addFresh(k, 1, limited)
}

// addFresh counts for a subject not in the published table.
func (c *Counter) addFresh(k subject, refusals, limited int64) {
	c.mu.Lock()
	t := c.fresh[k]
	if t == nil {
		if len(c.fresh)+len(*c.table.Load()) >= maxSubjects {
			c.mu.Unlock()
			c.dropped.Add(refusals)
			return
		}
		t = &tally{}
		c.fresh[k] = t
	}
	c.mu.Unlock()
	t.add(refusals, limited)
}

// CountStore adds flushed counts to the minute they were taken in.
type CountStore interface {
	AddRefusalCounts(ctx context.Context, minute time.Time, counts []credvault.RefusalCount) error
}

// take reads (and zeroes) every tally and publishes the next table: the
// subjects refused within retireAfter and the fresh ones, so that an active
// subject stays on the lock-free path and a quiet one does not stay for
// ever.
func (c *Counter) take(now time.Time) []credvault.RefusalCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.table.Load()
	sums := map[subject][2]int64{}
	read := func(k subject, t *tally) bool {
		r, l := t.refusals.Swap(0), t.limited.Swap(0)
		if r == 0 && l == 0 {
			return false
		}
		s := sums[k]
		sums[k] = [2]int64{s[0] + r, s[1] + l}
		return true
	}
	retired := c.retired[:0]
	for _, st := range c.retired {
		read(st.k, st.t)
		if now.Sub(st.at) < retireAfter {
			retired = append(retired, st)
		}
	}
	next := make(map[subject]*tally, len(old)+len(c.fresh))
	for k, t := range old {
		switch since, idle := c.idle[k]; {
		case read(k, t):
			delete(c.idle, k)
		case !idle:
			c.idle[k] = now
		case now.Sub(since) >= retireAfter:
			delete(c.idle, k)
			retired = append(retired, subjectTally{k, t, now})
			continue
		}
		next[k] = t
	}
	for k, t := range c.fresh {
		read(k, t)
		if _, ok := next[k]; ok {
			retired = append(retired, subjectTally{k, t, now})
			continue
		}
		next[k] = t
	}
	c.table.Store(&next)
	c.fresh = map[subject]*tally{}
	c.retired = retired
	out := make([]credvault.RefusalCount, 0, len(sums))
	for k, s := range sums {
		// A rate-limited refusal read between its two adds is in two
		// flushes: its refusal in one, its rate limit in the next.
		name := credvault.SubjectUnknownKeys
		if k.key != "" {
			name = "key:" + k.key
		}
		out = append(out, credvault.RefusalCount{OrgID: k.org, Subject: name, Refusals: int(s[0]), RateLimited: int(s[1])})
	}
	return out
}

// Flush writes the counts taken since the last flush into the current
// minute. On failure the counts are added back, to be tried again.
func (c *Counter) Flush(ctx context.Context, store CountStore, now time.Time, log *slog.Logger) error {
	counts := c.take(now)
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
	if t := (*c.table.Load())[k]; t != nil {
		t.add(int64(rc.Refusals), int64(rc.RateLimited))
		return
	}
	c.addFresh(k, int64(rc.Refusals), int64(rc.RateLimited))
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
