package apikey

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"credvault/internal/credvault"
)

// TestUsageCountsSurviveWriteBacks records verifications from several
// goroutines, through cache-entry cells and the slow path, while
// write-backs take and retire cells: every count arrives exactly once,
// and the latest use of each key with it.
func TestUsageCountsSurviveWriteBacks(t *testing.T) {
	var u usedTimes
	u.init()
	keys := []*credvault.AuthKey{{ID: "k1"}, {ID: "k2", IntegrationID: "i1"}, {ID: "k3"}}
	slots := make([]atomic.Pointer[usageCell], len(keys))
	const workers, each = 4, 20000
	day := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var (
		wg    sync.WaitGroup
		done  atomic.Bool
		total = map[dayKey]outcomeCounts{}
		last  = map[string]time.Time{}
	)
	take := func() {
		used, counts := u.swap()
		for k, n := range counts {
			m := total[k]
			for i := range n {
				m[i] += n[i]
			}
			total[k] = m
		}
		for id, tm := range used {
			if tm.After(last[id]) {
				last[id] = tm
			}
		}
	}
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		for !done.Load() {
			take()
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				k := (w + i) % len(keys)
				slot := &slots[k]
				if i%7 == 0 {
					slot = nil // an uncached key: the slow path
				}
				outcome, used := outcomeValid, true
				if i%5 == 0 {
					outcome, used = outcomeRevoked, false
				}
				u.record(byte(k), slot, keys[k], day.Add(time.Duration(i)*time.Millisecond), outcome, used)
			}
		}()
	}
	wg.Wait()
	done.Store(true)
	<-flushed
	take()
	var sum, refused int64
	for _, n := range total {
		for i := range n {
			sum += n[i]
		}
		refused += n[outcomeRevoked]
	}
	if want := int64(workers * each); sum != want {
		t.Fatalf("counted %d verifications, want %d", sum, want)
	}
	if want := int64(workers * each / 5); refused != want {
		t.Fatalf("counted %d refusals, want %d", refused, want)
	}
	if n := total[dayKey{id: "k2", integration: "i1", day: day.Unix() / 86400}]; n[outcomeValid] == 0 {
		t.Fatalf("no counts under k2's integration: %v", total)
	}
	for _, k := range keys {
		if last[k.ID].IsZero() || last[k.ID].Before(day.Add(time.Duration(each-10)*time.Millisecond)) {
			t.Fatalf("last use of %s is %v", k.ID, last[k.ID])
		}
	}
}
