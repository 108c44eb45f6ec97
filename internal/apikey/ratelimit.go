package apikey

import (
	"context"
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"credvault/internal/credvault"
)

// MaxWindow is the longest rate-limit window credvault accepts. The shared
// limiter keeps bucket state in nanoseconds inside Redis' Lua numbers, which
// are exact only below 2^53 (about 104 days); 31 days leaves a wide margin and
// covers any "per month" allowance.
const MaxWindow = 31 * 24 * time.Hour

// Limit is an API key's allowance: Requests per Window, as a token bucket
// that holds at most Requests tokens and gains one every Window/Requests.
// A key may therefore burst Requests at once and then sustain the average
// rate. Zero Requests means the key is not limited.
type Limit struct {
	Requests int
	Window   time.Duration
}

// interval is the time one token takes to come back, truncated to the
// nanosecond the same way by both limiters so they agree exactly.
func (l Limit) interval() time.Duration { return l.Window / time.Duration(l.Requests) }

// validate returns EINVALID for a limit no bucket can represent.
func (l Limit) validate() error {
	switch {
	case l.Requests < 0:
		return credvault.Errorf(credvault.EINVALID, "rate limit requests must not be negative")
	case l.Requests == 0:
		return nil
	case l.Window <= 0:
		return credvault.Errorf(credvault.EINVALID, "rate limit window must be positive")
	case l.Window > MaxWindow:
		return credvault.Errorf(credvault.EINVALID, "rate limit window must be at most %s", MaxWindow)
	case l.interval() <= 0:
		return credvault.Errorf(credvault.EINVALID, "rate limit allows more than one request per nanosecond")
	}
	return nil
}

// Decision is the outcome of one request against a Limit. The HTTP layer
// turns it into RateLimit-Limit (Limit), RateLimit-Remaining (Remaining),
// RateLimit-Reset (Reset) and, when refused, Retry-After (RetryAfter) headers,
// and the verify endpoint into its ratelimit object. A Decision with Limit 0
// comes from an unlimited key: callers omit the headers.
type Decision struct {
	// Allowed reports whether this request may proceed; a refused request
	// consumed nothing.
	Allowed bool
	// Limit is the key's Requests (the bucket size).
	Limit int
	// Remaining is how many more requests would pass right now.
	Remaining int
	// Reset is how long until the bucket is full again, i.e. until
	// Remaining is back to Limit if the key sends nothing.
	Reset time.Duration
	// RetryAfter is, for a refused request, how long until one request
	// would pass; zero when Allowed.
	RetryAfter time.Duration
}

// Limiter decides whether one more request under id (an API key id, never
// the key itself) is allowed by lim. Both implementations give the same
// answers for the same sequence of calls; the Redis one shares its state
// between credvault instances.
type Limiter interface {
	// Allow counts one request when it is allowed. It returns EINVALID for a
	// limit with negative Requests, a non-positive Window, a Window over
	// MaxWindow or an interval under a nanosecond; no other error.
	Allow(ctx context.Context, id string, lim Limit) (Decision, error)
}

const (
	// localShards spreads ids over independent maps so that concurrent
	// requests for different keys rarely wait for one another.
	localShards = 64
	// maxBucketsPerShard bounds memory: 65,536 buckets in all, roughly
	// 16 MiB. Only a deployment with more keys active within their windows
	// than that loses precision: an evicted bucket starts full again.
	maxBucketsPerShard = 1024
	// sweepEvery is how often a shard looks for idle buckets when it grows.
	sweepEvery = time.Minute
)

// LocalLimiter is the in-process Limiter: one token bucket per API key id
// (golang.org/x/time/rate underneath). It serves single-instance deployments
// and is the fallback of RedisLimiter while Redis is unreachable. Buckets
// that have refilled completely are dropped, which changes no answer, so
// memory follows the number of recently active keys. It is safe for
// concurrent use; the zero value is not usable, call NewLocalLimiter.
type LocalLimiter struct {
	seed   maphash.Seed
	shards [localShards]localShard
	// perShard is the bound on each shard's buckets: maxBucketsPerShard,
	// smaller in tests.
	perShard int
}

type localShard struct {
	mu        sync.Mutex
	buckets   map[string]*localBucket
	lastSweep time.Time
	// sweepAt is the size at which the shard sweeps even before sweepEvery
	// has passed, so a burst of new ids is cleaned up promptly.
	sweepAt int
	_       [64]byte // keep shards on separate cache lines
}

type localBucket struct {
	mu   sync.Mutex
	lim  Limit
	rl   *rate.Limiter
	last time.Time // time of the last request
	// dead is set, under mu, when a sweep removed the bucket from its shard;
	// a request that raced with the sweep looks the id up again, so no
	// request is counted in a bucket nobody will read.
	dead bool
}

// NewLocalLimiter returns an empty LocalLimiter. It starts no goroutine:
// idle buckets are swept while new ones are added.
func NewLocalLimiter() *LocalLimiter {
	return newLocalLimiter(maxBucketsPerShard)
}

func newLocalLimiter(perShard int) *LocalLimiter {
	l := &LocalLimiter{seed: maphash.MakeSeed(), perShard: perShard}
	now := time.Now()
	for i := range l.shards {
		l.shards[i].buckets = make(map[string]*localBucket)
		l.shards[i].lastSweep = now
		l.shards[i].sweepAt = max(perShard/4, 1)
	}
	return l
}

// Allow implements Limiter with a token bucket per id: burst lim.Requests,
// one token back every lim.Window/lim.Requests. A different lim for an id
// than the previous call's replaces that id's bucket with a full one. ctx is
// unused: the answer never waits. Errors: EINVALID for an invalid lim (see
// Limiter); nothing else.
func (l *LocalLimiter) Allow(_ context.Context, id string, lim Limit) (Decision, error) {
	if err := lim.validate(); err != nil {
		return Decision{}, err
	}
	if lim.Requests == 0 {
		return Decision{Allowed: true}, nil
	}
	for {
		b := l.bucket(id, lim)
		b.mu.Lock()
		if b.dead {
			b.mu.Unlock()
			continue
		}
		d := b.take(lim, time.Now())
		b.mu.Unlock()
		return d, nil
	}
}

// bucket returns id's bucket, creating it when missing. The shard lock is
// held only for the map access.
func (l *LocalLimiter) bucket(id string, lim Limit) *localBucket {
	s := &l.shards[maphash.String(l.seed, id)%localShards]
	s.mu.Lock()
	b := s.buckets[id]
	if b == nil {
		now := time.Now()
		if len(s.buckets) >= s.sweepAt || now.Sub(s.lastSweep) >= sweepEvery {
			s.sweep(now, l.perShard)
		}
		b = &localBucket{lim: lim, rl: newRateLimiter(lim), last: now}
		// The id may live in a request buffer that is reused later.
		s.buckets[strings.Clone(id)] = b
	}
	s.mu.Unlock()
	return b
}

// take counts one request at now; b.mu must be held.
func (b *localBucket) take(lim Limit, now time.Time) Decision {
	if b.lim != lim {
		b.lim, b.rl = lim, newRateLimiter(lim)
	}
	b.last = now
	allowed := b.rl.AllowN(now, 1)
	tokens := b.rl.TokensAt(now)
	per := float64(lim.interval())
	d := Decision{
		Allowed: allowed,
		Limit:   lim.Requests,
		Reset:   time.Duration(math.Ceil((float64(lim.Requests) - tokens) * per)),
	}
	if allowed {
		d.Remaining = int(tokens) // tokens >= 0, so this is the floor
	} else {
		d.RetryAfter = max(time.Duration(math.Ceil((1-tokens)*per)), 1)
	}
	return d
}

func newRateLimiter(lim Limit) *rate.Limiter {
	return rate.NewLimiter(rate.Every(lim.interval()), lim.Requests)
}

// sweep drops the buckets that have refilled completely (idle for at least
// their window), which loses no state. If the shard is still at its bound, it
// drops arbitrary buckets down to three quarters of it, so that a shard full
// of busy buckets sweeps once per quarter of new ids, not on every one.
// s.mu must be held.
func (s *localShard) sweep(now time.Time, bound int) {
	s.lastSweep = now
	for id, b := range s.buckets {
		b.mu.Lock()
		if now.Sub(b.last) >= b.lim.Window {
			b.dead = true
			delete(s.buckets, id)
		}
		b.mu.Unlock()
	}
	if len(s.buckets) >= bound {
		for id, b := range s.buckets {
			if len(s.buckets) <= bound*3/4 {
				break
			}
			b.mu.Lock()
			b.dead = true
			delete(s.buckets, id)
			b.mu.Unlock()
		}
	}
	s.sweepAt = min(max(2*len(s.buckets), bound/4, 1), bound)
}
