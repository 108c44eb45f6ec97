package apikey

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"credvault/internal/credvault"
)

// usedTimes collects last-used times and per-key daily verification
// counts between write-backs (Verifier.flush, every FlushEvery).
//
// Each (key, integration, UTC day) has a usageCell of atomic counters. A
// cached key finds its cell through its cache entry (entry.usage), with
// no lock and no map lookup; the shards' maps (by key hash, under a
// mutex) are the slow path: the first verification of a key since the
// last write-back, a key that is not cached, a new day. Before, every
// verification updated two maps under a shard lock (last-used by id,
// counts by id, integration and day): about a quarter of the verifier's
// time in a profile of /v1/auth/check (issue 24).
//
// A write-back takes every cell's counts and retires the cells no
// verification is writing to, so memory follows the keys used since the
// last write-back, as before. No count is lost or counted twice: see
// usageCell.refs.
type usedTimes struct {
	shards [64]usageShard
}

type usageShard struct {
	sync.Mutex
	cells map[dayKey]*usageCell
	// restored holds the last-used times a failed write-back put back.
	restored map[string]time.Time
}

// dayKey is a key id, its integration's id ("" for none) when verified,
// and a UTC day (days since the Unix epoch).
type dayKey struct {
	id, integration string
	day             int64
}

// Verification outcomes, the indexes of a dayKey's counts.
const (
	outcomeValid = iota
	outcomeRateLimited
	outcomeRevoked
	outcomeExpired
	outcomeKeyDisabled
	outcomeIntegrationDisabled
	numOutcomes
)

type outcomeCounts [numOutcomes]int64

// usageCell counts one dayKey's verifications since the last write-back.
type usageCell struct {
	key dayKey
	// refs is the number of verifications writing to the cell. A
	// write-back retires a cell only while it is 0, by setting it to
	// sealedRefs (under the shard lock, removing the cell from the map);
	// a verification that then reaches the cell through an entry sees a
	// negative count, leaves it untouched and takes the slow path to a new
	// cell. So every count lands in a cell that a write-back reads after
	// it (the sealing one, or a later one).
	refs atomic.Int64
	// last is the unix nanoseconds of the latest use, noUse when none
	// since the last write-back.
	last   atomic.Int64
	counts [numOutcomes]atomic.Int64
}

const (
	sealedRefs = math.MinInt64 / 2 // far from overflow however many late verifications add 1
	noUse      = math.MinInt64
)

func newUsageCell(k dayKey) *usageCell {
	c := &usageCell{key: k}
	c.last.Store(noUse)
	return c
}

// enter reports whether the cell takes counts (it is not retired); a true
// answer must be followed by leave.
func (c *usageCell) enter() bool {
	if c.refs.Add(1) > 0 {
		return true
	}
	c.refs.Add(-1)
	return false
}

func (c *usageCell) leave() { c.refs.Add(-1) }

func (c *usageCell) add(outcome int, used bool, nanos int64) {
	c.counts[outcome].Add(1)
	if !used {
		return
	}
	for {
		old := c.last.Load()
		if nanos <= old || c.last.CompareAndSwap(old, nanos) {
			return
		}
	}
}

func (u *usedTimes) init() {
	for i := range u.shards {
		u.shards[i].cells = map[dayKey]*usageCell{}
		u.shards[i].restored = map[string]time.Time{}
	}
}

// record counts one verification outcome of ak on t's UTC day and, when
// used, records t as the key's last use. slot is the cell pointer of the
// key's cache entry, nil for a key that is not cached; shard picks the
// map of the slow path (a byte of the key's hash).
func (u *usedTimes) record(shard byte, slot *atomic.Pointer[usageCell], ak *credvault.AuthKey, t time.Time, outcome int, used bool) {
	day, nanos := t.Unix()/86400, t.UnixNano()
	if slot != nil {
		if c := slot.Load(); c != nil && c.key.day == day && c.key.id == ak.ID && c.key.integration == ak.IntegrationID && c.enter() {
			c.add(outcome, used, nanos)
			c.leave()
			return
		}
	}
	k := dayKey{id: ak.ID, integration: ak.IntegrationID, day: day}
	sh := &u.shards[shard&63]
	sh.Lock()
	c := sh.cells[k]
	if c == nil {
		c = newUsageCell(k)
		sh.cells[k] = c
	}
	// A cell in the map is never sealed: a write-back seals and removes
	// it under the lock held here.
	c.refs.Add(1)
	sh.Unlock()
	if slot != nil {
		slot.Store(c)
	}
	c.add(outcome, used, nanos)
	c.leave()
}

// restoreCounts puts back counts a failed write-back took.
func (u *usedTimes) restoreCounts(counts map[dayKey]outcomeCounts) {
	sh := &u.shards[0]
	sh.Lock()
	for k, n := range counts {
		c := sh.cells[k]
		if c == nil {
			c = newUsageCell(k)
			sh.cells[k] = c
		}
		for i := range n {
			c.counts[i].Add(n[i])
		}
	}
	sh.Unlock()
}

// mark puts back a last-used time a failed write-back took.
func (u *usedTimes) mark(shard byte, id string, t time.Time) {
	sh := &u.shards[shard&63]
	sh.Lock()
	if t.After(sh.restored[id]) {
		sh.restored[id] = t
	}
	sh.Unlock()
}

// swap takes everything collected so far: the latest use of each key id,
// and the counts of each dayKey that has any.
func (u *usedTimes) swap() (map[string]time.Time, map[dayKey]outcomeCounts) {
	out := map[string]time.Time{}
	counts := map[dayKey]outcomeCounts{}
	for i := range u.shards {
		sh := &u.shards[i]
		sh.Lock()
		for id, t := range sh.restored {
			if t.After(out[id]) {
				out[id] = t
			}
		}
		clear(sh.restored)
		for k, c := range sh.cells {
			// Sealed first, read after: a count added before the seal is
			// read now, none can be added after it.
			if c.refs.CompareAndSwap(0, sealedRefs) {
				delete(sh.cells, k)
			}
			var n outcomeCounts
			some := false
			for j := range c.counts {
				n[j] = c.counts[j].Swap(0)
				some = some || n[j] != 0
			}
			if some {
				m := counts[k]
				for j := range n {
					m[j] += n[j]
				}
				counts[k] = m
			}
			if last := c.last.Swap(noUse); last != noUse {
				if t := time.Unix(0, last); t.After(out[k.id]) {
					out[k.id] = t
				}
			}
		}
		sh.Unlock()
	}
	return out, counts
}
