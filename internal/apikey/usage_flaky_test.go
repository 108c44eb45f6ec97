package apikey

import (
	"context"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"credvault/internal/credvault"
)

// flakyStore is a Store in memory whose write-backs fail every third
// call, applying nothing then (as a rolled-back transaction).
type flakyStore struct {
	mu     sync.Mutex
	keys   map[[32]byte]*credvault.AuthKey
	calls  int
	counts map[dayKey]int64 // all outcomes, by key, integration and day
	last   map[string]time.Time
}

func (s *flakyStore) FindAuthKeyByHash(_ context.Context, h [32]byte) (*credvault.AuthKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.keys[h]; k != nil {
		c := *k
		return &c, nil
	}
	return nil, credvault.Errorf(credvault.ENOTFOUND, "no key")
}

func (s *flakyStore) KeyHashPrefixes(_ context.Context, fn func([8]byte)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h := range s.keys {
		var p [8]byte
		copy(p[:], h[:8])
		fn(p)
	}
	return nil
}

func (s *flakyStore) fail() bool {
	s.calls++
	return s.calls%3 == 0
}

func (s *flakyStore) TouchAPIKeys(_ context.Context, used map[string]time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail() {
		return errors.New("database unavailable")
	}
	for id, t := range used {
		if t.After(s.last[id]) {
			s.last[id] = t
		}
	}
	return nil
}

func (s *flakyStore) AddKeyVerifications(_ context.Context, counts []credvault.KeyDayCount) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail() {
		return errors.New("database unavailable")
	}
	for _, c := range counts {
		k := dayKey{id: c.KeyID, integration: c.IntegrationID, day: c.Day.Unix() / 86400}
		s.counts[k] += c.Valid + c.RateLimited + c.Refused
	}
	return nil
}

// TestUsageCountsSurviveFailuresRolloverAndEviction verifies keys from
// several goroutines across a UTC midnight while write-backs run (a third
// of them failing) and the keys' cache entries are dropped, revoked and
// restored: the store ends with every verification counted once, on the
// day of its clock reading, and each key's latest use.
func TestUsageCountsSurviveFailuresRolloverAndEviction(t *testing.T) {
	ctx := context.Background()
	store := &flakyStore{keys: map[[32]byte]*credvault.AuthKey{}, counts: map[dayKey]int64{}, last: map[string]time.Time{}}
	midnight := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
	const workers, each = 6, 3000
	// The clock steps 1 ms per reading, crossing midnight half way.
	var ticks atomic.Int64
	start := midnight.Add(-workers * each / 2 * time.Millisecond)
	var perDay sync.Map // day -> *atomic.Int64
	clock := func() time.Time {
		now := start.Add(time.Duration(ticks.Add(1)) * time.Millisecond)
		n, _ := perDay.LoadOrStore(now.Unix()/86400, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		return now
	}
	keys := make([]string, workers)
	ids := make([]string, workers)
	for i := range keys {
		k, err := Generate("cv", "live")
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k.Reveal()
		ids[i] = "00000000-0000-0000-0000-00000000000" + string(rune('0'+i))
		ak := &credvault.AuthKey{ID: ids[i], OrgID: "o"}
		if i%2 == 1 {
			ak.IntegrationID = "i"
		}
		store.keys[Hash(keys[i])] = ak
	}
	v := NewVerifier(store, NewLocalLimiter(), VerifierOptions{Prefix: "cv", CacheTTL: time.Hour, Now: clock})
	v.Reset(ctx)
	ticks.Store(0)
	perDay.Clear()

	var (
		wg       sync.WaitGroup
		done     atomic.Bool
		lastTick = make([]int64, workers) // a lower bound of each key's last clock reading
	)
	background := make(chan struct{})
	go func() {
		defer close(background)
		for i := 0; !done.Load(); i++ {
			v.flush(ctx)
			h := Hash(keys[i%workers])
			switch i % 3 {
			case 0:
				v.Invalidate("key:" + hex.EncodeToString(h[:]))
			case 1:
				// Revoke, then restore, the key in the store.
				store.mu.Lock()
				ak := store.keys[h]
				if ak.RevokedAt == nil {
					at := midnight
					ak.RevokedAt = &at
				} else {
					ak.RevokedAt = nil
				}
				store.mu.Unlock()
				v.Invalidate("key:" + hex.EncodeToString(h[:]))
			default:
				v.Invalidate("integration:i")
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				before := ticks.Load()
				res, err := v.Verify(ctx, keys[w])
				if err != nil || res.Code != credvault.VerifyValid && res.Code != credvault.VerifyRevoked {
					t.Errorf("verify: %s %v", res.Code, err)
					return
				}
				if res.Code == credvault.VerifyValid { // a refused one is no use
					lastTick[w] = before + 1
				}
			}
		}()
	}
	wg.Wait()
	done.Store(true)
	<-background
	for range 10 { // every third write-back fails: retry until all is in
		v.flush(ctx)
	}

	var total int64
	byDay := map[int64]int64{}
	for k, n := range store.counts {
		total += n
		byDay[k.day] += n
	}
	if want := int64(workers * each); total != want {
		t.Fatalf("stored %d verifications, want %d", total, want)
	}
	perDay.Range(func(day, n any) bool {
		if got, want := byDay[day.(int64)], n.(*atomic.Int64).Load(); got != want {
			t.Errorf("day %d: stored %d verifications, the clock was read %d times on it", day, got, want)
		}
		return true
	})
	for w, id := range ids {
		if lastTick[w] == 0 {
			continue // revoked for all its verifications
		}
		low := start.Add(time.Duration(lastTick[w]) * time.Millisecond)
		if got := store.last[id]; got.Before(low) {
			t.Errorf("key %d: last use %v, its last verification was at %v or later", w, got, low)
		}
	}
}
