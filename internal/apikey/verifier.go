package apikey

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"credvault/internal/credvault"
)

// DefaultMissBudget is how many database lookups per second the verifier
// spends on keys its known-key set does not hold. They cover a key created
// on another instance an instant before its notification arrives; beyond
// the budget such keys are refused without a query, so a flood of random
// well-formed keys cannot load PostgreSQL.
const DefaultMissBudget = 20

// Store is what the verifier reads from and writes to.
type Store interface {
	// FindAuthKeyByHash returns ENOTFOUND when no key has that hash.
	FindAuthKeyByHash(ctx context.Context, hash [32]byte) (*credvault.AuthKey, error)
	// KeyHashPrefixes calls fn with the first 8 bytes of every stored
	// key's hash (revoked and expired keys included).
	KeyHashPrefixes(ctx context.Context, fn func(prefix [8]byte)) error
	// TouchAPIKeys records last-used times in one batch.
	TouchAPIKeys(ctx context.Context, used map[string]time.Time) error
	// AddKeyVerifications adds per-key daily verification counts in one
	// batch.
	AddKeyVerifications(ctx context.Context, counts []credvault.KeyDayCount) error
}

// VerifierOptions configures a Verifier. Zero values take the defaults.
type VerifierOptions struct {
	Prefix      string        // CREDVAULT_KEY_PREFIX
	CacheTTL    time.Duration // backstop for a missed invalidation; default 30s
	NegativeTTL time.Duration // how long an unknown key is remembered; default 5s
	// MissBudget bounds, per second, the database lookups for keys that are
	// not in the known-key set (which NOTIFY keeps current); default
	// DefaultMissBudget.
	MissBudget   int
	FlushEvery   time.Duration // last_used_at write-back period; default 1s
	DisableCache bool          // every verification reads PostgreSQL (benchmarks)
	// SigningKeys and Issuer enable JWT keys: the signing key's public
	// keys and the iss every key must carry (CREDVAULT_ISSUER). Without
	// SigningKeys a JWT is MALFORMED.
	SigningKeys *SigningKeys
	Issuer      string
	Logger      *slog.Logger
	Now         func() time.Time
}

// Verifier checks presented keys on the hot path. A known key costs a
// checksum, a SHA-256, a map lookup and the rate limiter: no database round
// trip. A key that fails its checksum never gets further; an unknown key
// with a valid checksum is refused from the known-key set, or from a short
// negative cache, so random keys cannot flood PostgreSQL.
type Verifier struct {
	store   Store
	limiter Limiter
	opts    VerifierOptions
	log     *slog.Logger

	cache    shardedMap[*entry]
	negative shardedMap[int64] // hash -> unix nanos when the entry ends
	known    knownSet
	flight   singleflight.Group
	miss     *rate.Limiter
	used     usedTimes
	stats    Stats

	reloads chan struct{} // RequestReset -> Run, one pending at most

	// loadedOnce is set by the first successful load of the known-key
	// set, and firstLoad closed at the same time.
	loadedOnce atomic.Bool
	firstLoad  chan struct{}

	// generation counts invalidations, so that a lookup racing with one
	// does not put stale data back into the cache.
	generation atomic.Uint64
}

type entry struct {
	key        *credvault.AuthKey
	loaded     int64       // unix nanos
	refreshing atomic.Bool // a background reload is under way
	// usage is the key's usage cell of the day (usedTimes.record), so
	// that counting a verification takes no lock.
	usage atomic.Pointer[usageCell]
}

// Stats counts what the verifier did, for tests, benchmarks and metrics.
type Stats struct {
	Verifications atomic.Int64
	CacheHits     atomic.Int64
	DBLookups     atomic.Int64
	Malformed     atomic.Int64
	UnknownFast   atomic.Int64 // refused from the known-key set or negative cache
	// JWTSignatureChecks counts full JWT verifications (parse, signature,
	// claims): the first use of a token on an instance, not the cached ones.
	JWTSignatureChecks atomic.Int64
	RateAllowed        atomic.Int64 // keys with a rate limit, let through
	RateLimited        atomic.Int64 // keys with a rate limit, refused by it
}

// NewVerifier returns a verifier; call Run to keep its known-key set and
// last-used write-back going.
func NewVerifier(store Store, limiter Limiter, opts VerifierOptions) *Verifier {
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = 30 * time.Second
	}
	if opts.NegativeTTL <= 0 {
		opts.NegativeTTL = 5 * time.Second
	}
	if opts.MissBudget <= 0 {
		opts.MissBudget = DefaultMissBudget
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	v := &Verifier{
		store: store, limiter: limiter, opts: opts, log: opts.Logger,
		miss:      rate.NewLimiter(rate.Limit(opts.MissBudget), opts.MissBudget),
		reloads:   make(chan struct{}, 1),
		firstLoad: make(chan struct{}),
	}
	v.cache.init()
	v.negative.init()
	v.known.init()
	v.used.init()
	return v
}

// KnownReady reports whether the known-key set is loaded (after the
// invalidation listener first connected).
func (v *Verifier) KnownReady() bool { return v.known.isReady() }

// Loaded is the readiness check of the verifier: nil once the known-key
// set has loaded at least once since start, EUNAVAILABLE before (until
// then every unknown key would cost a database lookup, so an instance
// should not take traffic). A later failed reload keeps the previous set.
func (v *Verifier) Loaded(context.Context) error {
	if v.loadedOnce.Load() {
		return nil
	}
	return credvault.Errorf(credvault.EUNAVAILABLE, "known API keys are still loading")
}

// WaitLoaded blocks until the known-key set has loaded once, or ctx ends
// (its error is returned then). Start-up waits here, so that an instance
// serves only once unknown keys are refused without a query.
func (v *Verifier) WaitLoaded(ctx context.Context) error {
	select {
	case <-v.firstLoad:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// KnownBytes is the memory the known-key filter holds, in bytes.
func (v *Verifier) KnownBytes() int64 { return v.known.sizeBytes() }

// Stats returns the verifier's counters.
func (v *Verifier) Stats() *Stats { return &v.stats }

// Verify checks key and, when it is valid, counts it against its rate
// limit. Bad keys are codes, not errors; the error is for PostgreSQL being
// unavailable (EUNAVAILABLE).
func (v *Verifier) Verify(ctx context.Context, key string) (credvault.Verification, error) {
	v.stats.Verifications.Add(1)
	if _, err := Parse(key, v.opts.Prefix); err != nil {
		if v.opts.SigningKeys != nil && credvault.LooksLikeJWS(key) {
			return v.verifyJWT(ctx, key)
		}
		v.stats.Malformed.Add(1)
		return credvault.Verification{Code: credvault.VerifyMalformed}, nil
	}
	hash := Hash(key)
	now := v.opts.Now() // one clock read per verification
	ak, usage, err := v.lookup(ctx, hash, now.UnixNano())
	if err != nil {
		if credvault.ErrorCode(err) == credvault.ENOTFOUND {
			return credvault.Verification{Code: credvault.VerifyNotFound}, nil
		}
		return credvault.Verification{}, err
	}
	return v.admit(ctx, ak, usage, hash, now)
}

// verifyJWT checks a JWT key. A token this instance verified before is in
// the cache under its hash, which only a token credvault issued can have
// (the database holds the hashes of issued tokens), so a cache hit skips
// the signature and claims check and costs what an opaque key costs. A
// miss verifies the token in full before anything is looked up, then
// reads its row (by hash, like an opaque key) for revocation.
func (v *Verifier) verifyJWT(ctx context.Context, token string) (credvault.Verification, error) {
	hash := hashLong(token)
	now := v.opts.Now()
	var (
		ak    *credvault.AuthKey
		usage *atomic.Pointer[usageCell]
	)
	if e := v.cached(hash, now.UnixNano()); e != nil {
		ak, usage = e.key, &e.usage
	} else {
		code, claims := v.checkJWT(ctx, token, now)
		if code != "" {
			return credvault.Verification{Code: code}, nil
		}
		var err error
		if ak, usage, err = v.lookup(ctx, hash, now.UnixNano()); err != nil {
			if credvault.ErrorCode(err) == credvault.ENOTFOUND {
				return credvault.Verification{Code: credvault.VerifyNotFound}, nil
			}
			return credvault.Verification{}, err
		}
		if ak.ID != claims.ID {
			return credvault.Verification{Code: credvault.VerifyNotFound}, nil
		}
	}
	if ak.Format == credvault.KeyFormatJWT && ak.SigningVersion < v.opts.SigningKeys.MinVersion() {
		return credvault.Verification{Code: credvault.VerifyKeyRetired, Key: ak}, nil
	}
	return v.admit(ctx, ak, usage, hash, now)
}

// admit finishes a verification of a found key of either format:
// revocation, expiry, the key's and its integration's switches (before
// the rate limit, so that a disabled key's calls leave its window as it
// was), last-used time and the rate limit. usage is the key's cache
// entry's usage cell, nil for a key that is not cached.
func (v *Verifier) admit(ctx context.Context, ak *credvault.AuthKey, usage *atomic.Pointer[usageCell], hash [32]byte, now time.Time) (credvault.Verification, error) {
	refused := func(code string, outcome int) (credvault.Verification, error) {
		v.used.record(hash[1], usage, ak, now, outcome, false)
		return credvault.Verification{Code: code, Key: ak}, nil
	}
	switch {
	case ak.RevokedAt != nil:
		return refused(credvault.VerifyRevoked, outcomeRevoked)
	case ak.ExpiresAt != nil && !now.Before(*ak.ExpiresAt):
		return refused(credvault.VerifyExpired, outcomeExpired)
	case ak.Disabled:
		return refused(credvault.VerifyDisabled, outcomeKeyDisabled)
	case ak.IntegrationDisabled:
		return refused(credvault.VerifyIntegrationDisabled, outcomeIntegrationDisabled)
	}
	res := credvault.Verification{Code: credvault.VerifyValid, Key: ak}
	if ak.RateLimit != nil {
		d, err := v.limiter.Allow(ctx, ak.ID, Limit{Requests: ak.RateLimit.Requests, Window: time.Duration(ak.RateLimit.WindowSeconds) * time.Second})
		if err != nil {
			// The limiter degrades by itself (Redis falls back to local);
			// an error here is a bug, and refusing every call would turn it
			// into an outage.
			v.log.Error("rate limiter failed; allowing the request", "key_id", ak.ID, "error", err.Error())
			v.used.record(hash[1], usage, ak, now, outcomeValid, true)
			return res, nil
		}
		res.Rate = credvault.RateDecision{Limited: true, Allowed: d.Allowed, Limit: d.Limit, Remaining: d.Remaining, Reset: d.Reset, RetryAfter: d.RetryAfter}
		if !d.Allowed {
			res.Code = credvault.VerifyRateLimited
			v.stats.RateLimited.Add(1)
			v.used.record(hash[1], usage, ak, now, outcomeRateLimited, true)
			return res, nil
		} else {
			v.stats.RateAllowed.Add(1)
		}
	}
	v.used.record(hash[1], usage, ak, now, outcomeValid, true)
	return res, nil
}

// lookup finds the key by hash: the cache, then the known-key set and
// negative cache (no database), then PostgreSQL, once per hash at a time.
// usage is the cache entry's usage cell, nil for a key read from the
// database.
func (v *Verifier) lookup(ctx context.Context, hash [32]byte, now int64) (ak *credvault.AuthKey, usage *atomic.Pointer[usageCell], err error) {
	if e := v.cached(hash, now); e != nil {
		return e.key, &e.usage, nil
	}
	if !v.opts.DisableCache {
		if until, ok := v.negative.get(hash); ok && now < until {
			v.stats.UnknownFast.Add(1)
			return nil, nil, errUnknown
		}
		if !v.known.mayContain(hash) && !v.miss.Allow() {
			v.stats.UnknownFast.Add(1)
			return nil, nil, errUnknown
		}
	}
	f, err := v.fetch(ctx, hash)
	if err != nil {
		if credvault.ErrorCode(err) == credvault.ENOTFOUND && !v.opts.DisableCache {
			v.keepMiss(hash, f)
		}
		return nil, nil, err
	}
	if !v.opts.DisableCache {
		v.keep(hash, f, now)
		v.known.add(hash)
	}
	return f.key, nil, nil
}

// cached answers from the cache: a fresh entry, or one past the TTL but
// recent, which is answered from while it reloads in the background (so
// that a busy key does not stall a request every TTL; changes arrive by
// NOTIFY long before, the TTL only bounds a missed one).
// It returns nil when the key must be read.
func (v *Verifier) cached(hash [32]byte, now int64) *entry {
	if v.opts.DisableCache {
		return nil
	}
	e, ok := v.cache.get(hash)
	if !ok {
		return nil
	}
	age := now - e.loaded
	if age >= 2*int64(v.opts.CacheTTL) {
		return nil
	}
	v.stats.CacheHits.Add(1)
	if age >= int64(v.opts.CacheTTL) && e.refreshing.CompareAndSwap(false, true) {
		v.refresh(hash)
	}
	return e
}

// fetched is a key read from the database with the invalidation
// generation current when the read started.
type fetched struct {
	key *credvault.AuthKey
	gen uint64
}

// fetch reads a key once at a time per hash and invalidation generation:
// a caller joins only a read begun in the generation it began in, never
// one begun before an invalidation it has seen (that read may hold the
// key as it was before a revocation acknowledged to the caller's client).
// The generation is taken again inside the shared read, for keep and
// keepMiss; it is returned with ENOTFOUND too.
func (v *Verifier) fetch(ctx context.Context, hash [32]byte) (fetched, error) {
	var k [40]byte
	copy(k[:], hash[:])
	binary.LittleEndian.PutUint64(k[32:], v.generation.Load())
	res, err, _ := v.flight.Do(string(k[:]), func() (any, error) {
		gen := v.generation.Load()
		v.stats.DBLookups.Add(1)
		ak, err := v.store.FindAuthKeyByHash(ctx, hash)
		return fetched{key: ak, gen: gen}, err
	})
	f, _ := res.(fetched)
	if err != nil {
		return fetched{gen: f.gen}, err
	}
	return f, nil
}

// keep caches f unless an invalidation happened since its read began; an
// invalidation that lands while it is being stored removes it again.
func (v *Verifier) keep(hash [32]byte, f fetched, now int64) {
	if v.generation.Load() != f.gen {
		return
	}
	v.cache.put(hash, &entry{key: f.key, loaded: now})
	if v.generation.Load() != f.gen {
		v.cache.delete(hash)
	}
}

// keepMiss remembers in the negative cache that hash was not found,
// unless an invalidation happened since the read began (a "new:<hash>"
// for a key created meanwhile would otherwise be hidden for the negative
// TTL); one that lands while it is being stored removes it again.
func (v *Verifier) keepMiss(hash [32]byte, f fetched) {
	if v.generation.Load() != f.gen {
		return
	}
	v.negative.put(hash, v.opts.Now().Add(v.opts.NegativeTTL).UnixNano())
	if v.generation.Load() != f.gen {
		v.negative.delete(hash)
	}
}

var errUnknown = credvault.Errorf(credvault.ENOTFOUND, "API key not found")

// refresh reloads one cached key in the background (the entry's
// refreshing flag makes it once per entry).
func (v *Verifier) refresh(hash [32]byte) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f, err := v.fetch(ctx, hash)
		switch {
		case err == nil:
			v.keep(hash, f, v.opts.Now().UnixNano())
		case credvault.ErrorCode(err) == credvault.ENOTFOUND:
			v.cache.delete(hash)
		}
	}()
}

// Invalidate applies one notification from PostgreSQL: "key:<hex>" drops
// that key, "user:<uuid>" drops that user's keys, "integration:<uuid>"
// drops the keys of that integration (disabled or enabled), "new:<hex>"
// records a new key in the known-key set (and clears a negative entry for
// it). A dropped key is read again on its next use.
func (v *Verifier) Invalidate(payload string) { v.invalidate(payload, true) }

// Drop is Invalidate for a payload from a source that anyone who can
// reach it may write to (the Redis channel between instances): it only
// drops cache entries, and adds nothing to the known-key set, whose
// additions are kept until the next reload (a flood of made-up hashes
// would grow it without bound). A new key it names is learnt from
// PostgreSQL, or looked up within the miss budget.
func (v *Verifier) Drop(payload string) { v.invalidate(payload, false) }

func (v *Verifier) invalidate(payload string, learn bool) {
	kind, arg, _ := strings.Cut(payload, ":")
	switch kind {
	case "key", "new":
		b, err := hex.DecodeString(arg)
		if err != nil || len(b) != 32 {
			v.log.Warn("ignoring malformed invalidation", "kind", kind)
			return
		}
		var h [32]byte
		copy(h[:], b)
		v.generation.Add(1)
		v.cache.delete(h)
		v.negative.delete(h)
		if learn {
			v.known.add(h)
		}
	case "user":
		v.generation.Add(1)
		v.cache.deleteIf(func(e *entry) bool { return e.key.UserID == arg })
	case "integration":
		v.generation.Add(1)
		v.cache.deleteIf(func(e *entry) bool { return e.key.IntegrationID == arg })
	}
	// Other kinds ("cred:") concern other caches.
}

// Reset drops every cached key and reloads the known-key set before it
// returns. The reload holds 8 bytes a key while it reads, then builds the
// filter; a failed reload keeps the previous set (a key it misses then
// costs a lookup within the miss budget) until the next reload.
func (v *Verifier) Reset(ctx context.Context) {
	v.dropCaches()
	v.load(ctx)
}

// RequestReset is Reset for the invalidation listener, which calls it on
// every (re)connect and must not stall while 10,000,000 keys load: the
// caches are dropped at once, and the reload runs in Run's goroutine.
// Requests made while a reload waits or runs are served by one more.
func (v *Verifier) RequestReset() {
	v.dropCaches()
	select {
	case v.reloads <- struct{}{}:
	default: // one is pending already
	}
}

func (v *Verifier) dropCaches() {
	v.generation.Add(1)
	v.cache.clear()
	v.negative.clear()
}

func (v *Verifier) load(ctx context.Context) {
	v.known.beginLoad()
	var prefixes []uint64
	err := v.store.KeyHashPrefixes(ctx, func(p [8]byte) {
		prefixes = append(prefixes, binary.LittleEndian.Uint64(p[:]))
	})
	if err == nil {
		if err = v.known.finishLoad(prefixes); err == nil && v.loadedOnce.CompareAndSwap(false, true) {
			close(v.firstLoad)
		}
	} else {
		v.known.failLoad()
	}
	if err != nil {
		v.log.Error("loading known API keys failed; keeping the previous set until the next reload", "error", err.Error())
	}
}

// Run writes last-used times back every FlushEvery and performs the
// reloads RequestReset asks for, until ctx ends; then it writes back once
// more.
func (v *Verifier) Run(ctx context.Context) {
	t := time.NewTicker(v.opts.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			v.flush(fctx)
			cancel()
			return
		case <-t.C:
			v.flush(ctx)
		case <-v.reloads:
			v.load(ctx)
		}
	}
}

func (v *Verifier) flush(ctx context.Context) {
	used, counts := v.used.swap()
	if len(counts) > 0 {
		batch := make([]credvault.KeyDayCount, 0, len(counts))
		for k, n := range counts {
			batch = append(batch, credvault.KeyDayCount{KeyID: k.id, IntegrationID: k.integration, Day: time.Unix(k.day*86400, 0).UTC(),
				Valid: n[outcomeValid], RateLimited: n[outcomeRateLimited],
				Refused: n[outcomeRevoked] + n[outcomeExpired] + n[outcomeKeyDisabled] + n[outcomeIntegrationDisabled],
				Revoked: n[outcomeRevoked], Expired: n[outcomeExpired],
				KeyDisabled: n[outcomeKeyDisabled], IntegrationDisabled: n[outcomeIntegrationDisabled]})
		}
		if err := v.store.AddKeyVerifications(ctx, batch); err != nil {
			v.log.Warn("writing verification counters failed; will retry", "keys", len(batch), "error", err.Error())
			v.used.restoreCounts(counts)
		}
	}
	if len(used) == 0 {
		return
	}
	if err := v.store.TouchAPIKeys(ctx, used); err != nil {
		v.log.Warn("writing last_used_at failed; will retry", "keys", len(used), "error", err.Error())
		for id, t := range used {
			v.used.mark(id[0], id, t)
		}
	}
}

// shardedMap is a map keyed by key hash, split into shards so that
// concurrent verifications rarely contend on a lock.
type shardedMap[V any] struct {
	shards [64]struct {
		sync.RWMutex
		m map[[32]byte]V
	}
}

func (s *shardedMap[V]) init() {
	for i := range s.shards {
		s.shards[i].m = map[[32]byte]V{}
	}
}

func (s *shardedMap[V]) get(h [32]byte) (V, bool) {
	sh := &s.shards[h[0]&63]
	sh.RLock()
	v, ok := sh.m[h]
	sh.RUnlock()
	return v, ok
}

// maxShardEntries bounds memory: a full shard is emptied rather than
// growing without limit (an attacker can make many distinct valid-checksum
// keys for the negative cache).
const maxShardEntries = 1 << 16

func (s *shardedMap[V]) put(h [32]byte, v V) {
	sh := &s.shards[h[0]&63]
	sh.Lock()
	if len(sh.m) >= maxShardEntries {
		clear(sh.m)
	}
	sh.m[h] = v
	sh.Unlock()
}

func (s *shardedMap[V]) delete(h [32]byte) {
	sh := &s.shards[h[0]&63]
	sh.Lock()
	delete(sh.m, h)
	sh.Unlock()
}

func (s *shardedMap[V]) deleteIf(match func(V) bool) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.Lock()
		for h, v := range sh.m {
			if match(v) {
				delete(sh.m, h)
			}
		}
		sh.Unlock()
	}
}

func (s *shardedMap[V]) clear() {
	for i := range s.shards {
		s.shards[i].Lock()
		clear(s.shards[i].m)
		s.shards[i].Unlock()
	}
}
