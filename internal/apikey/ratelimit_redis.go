package apikey

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// redisTimeout bounds each Redis round trip: rate limiting runs on every
	// authenticated request, so a slow Redis must cost little before the
	// local fallback answers.
	redisTimeout = 50 * time.Millisecond
	// redisLogEvery spaces out outage warnings so a Redis outage under load
	// does not flood the log.
	redisLogEvery = 10 * time.Second
	// defaultRedisKeyPrefix is used when NewRedisLimiter gets no prefix.
	defaultRedisKeyPrefix = "credvault:ratelimit:"
)

// tokenBucketScript is the same token bucket as LocalLimiter, kept in one
// Redis string per API key id and updated atomically, timed by the Redis
// server's clock so that instances with skewed clocks still share one limit.
//
// The value is "<sec> <usec> <ahead> <size> <interval>": the server time of
// the last allowed request; how many nanoseconds after that time the bucket
// will be full again (ahead/interval tokens are in use); and the limit the
// bucket was built for, so that a changed limit starts a full bucket exactly
// as LocalLimiter does. All arithmetic stays in integers below 2^53
// (MaxWindow guarantees it), so Lua's doubles are exact. The key expires when
// the bucket is full, which loses nothing.
//
// KEYS[1] = bucket key; ARGV[1] = requests (bucket size); ARGV[2] = interval
// in ns (time for one token to come back). Returns {allowed (0/1),
// remaining, reset ns, retry-after ns}.
var tokenBucketScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local size = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local capacity = size * interval
local t = redis.call('TIME')
local sec, usec = tonumber(t[1]), tonumber(t[2])
local ahead = 0
local v = redis.call('GET', KEYS[1])
if v then
  local psec, pusec, pahead, psize, pinterval =
    string.match(v, '^(%d+) (%d+) (%d+) (%d+) (%d+)$')
  if psec and tonumber(psize) == size and tonumber(pinterval) == interval then
    local elapsed = ((sec - tonumber(psec)) * 1000000 + (usec - tonumber(pusec))) * 1000
    ahead = tonumber(pahead) - elapsed
    if ahead < 0 then ahead = 0 end
    if ahead > capacity then ahead = capacity end
  end
end
local after = ahead + interval
if after > capacity then
  return {0, 0, ahead, after - capacity}
end
redis.call('SET', KEYS[1], string.format('%d %d %d %d %d', sec, usec, after, size, interval),
  'PX', math.max(1, math.ceil(after / 1000000)))
local remaining = math.floor((capacity - after) / interval)
if remaining * interval > capacity - after then remaining = remaining - 1 end
return {1, remaining, after, 0}
`)

// RedisLimiter is the Limiter for deployments with several credvault
// instances: each decision is one atomic script run in Redis, so all
// instances on one Redis share each key's limit exactly. While Redis errors
// or is slow, it answers from a local fallback instead, so an outage neither
// blocks all traffic nor lifts limits entirely (each instance then enforces
// the full limit on its own). Safe for concurrent use.
type RedisLimiter struct {
	rdb      redis.UniversalClient
	prefix   string
	fallback Limiter
	log      *slog.Logger
	timeout  time.Duration

	lastLog    atomic.Int64 // UnixNano of the last outage warning
	suppressed atomic.Int64 // outage warnings skipped since then
}

// NewRedisLimiter returns a RedisLimiter on rdb (which must not be nil)
// storing buckets under keyPrefix (default "credvault:ratelimit:"), answering
// from fallback (default a new LocalLimiter) when Redis fails, and warning on
// log (default slog.Default()) at most every 10 seconds, without any key
// material. Each call gives Redis 50ms; build rdb with ContextTimeoutEnabled
// so an abandoned call also ends then rather than at the client's read
// timeout.
func NewRedisLimiter(rdb redis.UniversalClient, keyPrefix string, fallback Limiter, log *slog.Logger) *RedisLimiter {
	if keyPrefix == "" {
		keyPrefix = defaultRedisKeyPrefix
	}
	if fallback == nil {
		fallback = NewLocalLimiter()
	}
	if log == nil {
		log = slog.Default()
	}
	return &RedisLimiter{rdb: rdb, prefix: keyPrefix, fallback: fallback, log: log, timeout: redisTimeout}
}

// WithTimeout sets how long each call gives Redis before the fallback
// answers (default 50ms; d <= 0 keeps it). It returns r, for chaining at
// construction; call it before first use.
func (r *RedisLimiter) WithTimeout(d time.Duration) *RedisLimiter {
	if d > 0 {
		r.timeout = d
	}
	return r
}

// Allow implements Limiter with the same token bucket as LocalLimiter, held
// in Redis under keyPrefix+id; a changed limit for id replaces its bucket
// with a full one, as LocalLimiter does. When Redis fails or takes longer
// than its timeout (50ms unless WithTimeout), the answer comes from the
// fallback. Errors:
// EINVALID for an invalid lim (see Limiter); Redis failures are never
// returned.
func (r *RedisLimiter) Allow(ctx context.Context, id string, lim Limit) (Decision, error) {
	if err := lim.validate(); err != nil {
		return Decision{}, err
	}
	if lim.Requests == 0 {
		return Decision{Allowed: true}, nil
	}
	d, err := r.shared(ctx, id, lim)
	if err == nil {
		return d, nil
	}
	if ctx.Err() == nil { // the caller giving up is not a Redis problem
		r.warn(err)
	}
	return r.fallback.Allow(ctx, id, lim)
}

type scriptResult struct {
	vals []int64
	err  error
}

// shared runs the bucket script with a deadline. The call runs in its own
// goroutine because go-redis ignores context deadlines on socket reads unless
// the client enables ContextTimeoutEnabled, and the deadline must hold either
// way; the goroutine ends when go-redis gives up.
func (r *RedisLimiter) shared(ctx context.Context, id string, lim Limit) (Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	interval := lim.interval()
	key := r.prefix + id
	done := make(chan scriptResult, 1)
	go func() {
		vals, err := tokenBucketScript.Run(ctx, r.rdb, []string{key}, lim.Requests, int64(interval)).Int64Slice()
		done <- scriptResult{vals, err}
	}()
	var res scriptResult
	select {
	case res = <-done:
	case <-ctx.Done():
		return Decision{}, ctx.Err()
	}
	if res.err != nil {
		return Decision{}, res.err
	}
	if len(res.vals) != 4 {
		return Decision{}, fmt.Errorf("rate limit script returned %d values, want 4", len(res.vals))
	}
	return Decision{
		Allowed:    res.vals[0] == 1,
		Limit:      lim.Requests,
		Remaining:  int(res.vals[1]),
		Reset:      time.Duration(res.vals[2]),
		RetryAfter: time.Duration(res.vals[3]),
	}, nil
}

// warn logs a Redis failure at most once per redisLogEvery, with the number
// of failures not logged since the previous warning.
func (r *RedisLimiter) warn(err error) {
	now := time.Now().UnixNano()
	last := r.lastLog.Load()
	if now-last < int64(redisLogEvery) || !r.lastLog.CompareAndSwap(last, now) {
		r.suppressed.Add(1)
		return
	}
	reason := "error"
	if errors.Is(err, context.DeadlineExceeded) {
		reason = "timeout"
	}
	r.log.Warn("rate limiter: Redis unavailable, using the local limiter",
		"reason", reason, "err", err, "suppressed", r.suppressed.Swap(0))
}
