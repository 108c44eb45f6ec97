package credvault

import (
	"strings"
	"sync"
	"time"
)

// ValueCache keeps decrypted credentials in memory for a short TTL
// (CREDVAULT_SECRET_CACHE_TTL), so that injection does not cost a Vault
// round trip per call. Every change to a credential (update, rotate,
// unshare, delete) drops it on every instance through the "cred:<id>"
// invalidation, so a cached entry never outlives a change by more than
// the notification's travel time.
type ValueCache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.RWMutex
	entries map[string]cachedValue
	// gen counts invalidations (under mu), so that a value read before
	// one is not cached after it.
	gen uint64
}

type cachedValue struct {
	cred    *Credential
	value   Secret
	expires time.Time
}

// maxCachedValues bounds memory; past it the cache starts over.
const maxCachedValues = 100_000

// NewValueCache returns a cache with the given TTL; a TTL of 0 disables
// it (Get never hits).
func NewValueCache(ttl time.Duration) *ValueCache {
	return &ValueCache{ttl: ttl, now: time.Now, entries: map[string]cachedValue{}}
}

// Get returns the cached credential and value for id, if fresh.
func (vc *ValueCache) Get(id string) (*Credential, Secret, bool) {
	if vc == nil || vc.ttl <= 0 {
		return nil, Secret{}, false
	}
	vc.mu.RLock()
	e, ok := vc.entries[id]
	vc.mu.RUnlock()
	if !ok || !vc.now().Before(e.expires) {
		return nil, Secret{}, false
	}
	if o := e.cred.OAuth; o != nil && o.ExpiresAt != nil && !vc.now().Before(*o.ExpiresAt) {
		return nil, Secret{}, false // an expired access token: UseCredential refreshes it
	}
	return e.cred, e.value, true
}

// StaleIfError is how long past its TTL a cached value may still be used
// while PostgreSQL or Vault cannot be reached to read it again. Changes
// reach the cache through key_state_log whatever the TTL, so an entry past
// its TTL is old, not wrong; the bound keeps an instance that reaches
// neither from serving one forever.
const StaleIfError = 5 * time.Minute

// GetStale returns the cached credential and value for id if it expired
// less than StaleIfError ago (or is fresh): for use only when reading it
// again failed with EUNAVAILABLE.
func (vc *ValueCache) GetStale(id string) (*Credential, Secret, bool) {
	if vc == nil || vc.ttl <= 0 {
		return nil, Secret{}, false
	}
	vc.mu.RLock()
	e, ok := vc.entries[id]
	vc.mu.RUnlock()
	if !ok || !vc.now().Before(e.expires.Add(StaleIfError)) {
		return nil, Secret{}, false
	}
	return e.cred, e.value, true
}

// Generation is taken before reading a credential from the store and
// handed to Put.
func (vc *ValueCache) Generation() uint64 {
	if vc == nil {
		return 0
	}
	vc.mu.RLock()
	defer vc.mu.RUnlock()
	return vc.gen
}

// Put caches c and its value, unless an invalidation happened since gen
// was taken (the value may be from before a change). A cached c gets an
// empty Memo; c must not be shared with other goroutines yet.
func (vc *ValueCache) Put(c *Credential, value Secret, gen uint64) {
	if vc == nil || vc.ttl <= 0 {
		return
	}
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if vc.gen != gen {
		return
	}
	if len(vc.entries) >= maxCachedValues {
		clear(vc.entries)
	}
	// The copy the cache hands out gets its own, empty Memo: what callers
	// derive from it lives exactly as long as this entry.
	c.memo = &Memo{}
	vc.entries[c.ID] = cachedValue{cred: c, value: value, expires: vc.now().Add(vc.ttl)}
}

// Invalidate applies an invalidation payload: "cred:<id>" drops that
// credential; other kinds concern other caches.
func (vc *ValueCache) Invalidate(payload string) {
	if vc == nil {
		return
	}
	if id, ok := strings.CutPrefix(payload, "cred:"); ok {
		vc.mu.Lock()
		vc.gen++
		delete(vc.entries, id)
		vc.mu.Unlock()
	}
}

// Reset drops everything (after the listener reconnected and may have
// missed notifications).
func (vc *ValueCache) Reset() {
	if vc == nil {
		return
	}
	vc.mu.Lock()
	vc.gen++
	clear(vc.entries)
	vc.mu.Unlock()
}
