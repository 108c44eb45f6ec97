package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// keyStateFanout is the second path of key state changes between the
// instances of one installation: the instance that commits a change
// publishes its payload on a Redis channel before it answers the call, and
// every other instance drops what the payload names from its caches as it
// arrives. The first path is key_state_log, read through LISTEN/NOTIFY
// and polls (internal/postgres.Follower); it alone orders changes and
// decides when caches are trusted. The second exists for the moments the
// first cannot serve: a revocation acknowledged just before PostgreSQL
// goes away (its NOTIFY can be lost in a shutdown and the log cannot be
// read until the server is back), or an instance cut off from PostgreSQL
// while others still reach it. With it, such a key is refused (503: it
// must be read from the database, which is out of reach) instead of being
// accepted from the cache until the log can be read again.
//
// A message is "<sender> <payload>", payload as in key_state_log
// ("key:<64 hex>", "new:<64 hex>", "user:<uuid>", "cred:<uuid>",
// "integration:<uuid>"). A payload only removes cache entries (what
// arrives here adds nothing to the known-key set, which keeps additions
// until its next reload), so a message from anyone who can publish on the
// channel costs database reads at worst, never an acceptance nor memory
// that stays; applying one twice, or before the log's row, is harmless. Publishing is best
// effort, bounded by CREDVAULT_REDIS_TIMEOUT: without Redis, changes travel
// by PostgreSQL alone, as before.
type keyStateFanout struct {
	rdb     redis.UniversalClient
	channel string
	sender  string
	timeout time.Duration
	log     *slog.Logger
	apply   func(payload string)
	count   func(result string)
	// warnMalformed bounds the warnings about malformed messages to one
	// a minute (anyone who reaches Redis can publish; the metric counts
	// every one).
	warnMalformed rate.Sometimes
}

// malformedWarnEvery is how often at most a malformed message is logged.
const malformedWarnEvery = time.Minute

// fanoutChannelPrefix names the channel; the installation's name in the
// database (urn:credvault:installation:<uuid>, the same for every instance
// on that database whatever CREDVAULT_ISSUER says), hashed, completes it,
// so that installations sharing one Redis do not drop each other's cache
// entries and every instance of one hears the others.
const fanoutChannelPrefix = "credvault:key_state:"

func newKeyStateFanout(rdb redis.UniversalClient, installation string, timeout time.Duration, log *slog.Logger, apply func(string), count func(string)) *keyStateFanout {
	sum := sha256.Sum256([]byte(installation))
	var id [8]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read does not fail (Go 1.24+)
	return &keyStateFanout{rdb: rdb, channel: fanoutChannelPrefix + hex.EncodeToString(sum[:8]), sender: hex.EncodeToString(id[:]),
		timeout: timeout, log: log, apply: apply, count: count, warnMalformed: rate.Sometimes{Interval: malformedWarnEvery}}
}

// publish sends the payloads of one commit of this instance, in one
// round trip. It waits at most the Redis timeout; a failure is counted
// (per payload) and logged at debug level (the other instances still read
// the changes from PostgreSQL).
func (f *keyStateFanout) publish(payloads ...string) {
	if len(payloads) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	cmds, err := f.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, payload := range payloads {
			p.Publish(ctx, f.channel, f.sender+" "+payload)
		}
		return nil
	})
	failed := 0
	for i := range payloads {
		if err != nil && (i >= len(cmds) || cmds[i].Err() != nil) {
			failed++
			f.count("publish_failed")
		} else {
			f.count("published")
		}
	}
	if failed > 0 {
		f.log.Debug("publishing key state changes to redis failed; other instances read them from postgres", "changes", failed, "error", err.Error())
	}
}

// run receives the other instances' payloads until ctx ends. go-redis
// reconnects and subscribes again after Redis restarts; what was published
// meanwhile arrives through PostgreSQL. It returns as soon as ctx ends:
// go-redis holds the subscription's lock through a connection attempt
// (the subscribe, a reconnect after a failed health check), which lasts
// up to its read timeout, or the 10 s reconnect timeout, when Redis hangs;
// shutdown does not wait for that, the subscription closes behind it.
func (f *keyStateFanout) run(ctx context.Context) {
	ps := f.rdb.Subscribe(ctx)       // no channel yet: no round trip
	defer func() { go ps.Close() }() // #nosec G104 -- nothing to do with its error at shutdown
	subscribed := make(chan struct{})
	go func() {
		// A failed subscribe is retried by the receiving goroutine
		// (go-redis keeps the channel and subscribes on every connect).
		_ = ps.Subscribe(ctx, f.channel)
		close(subscribed)
	}()
	select {
	case <-ctx.Done():
		return
	case <-subscribed:
	}
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			f.received(m.Payload)
		}
	}
}

// received applies one message unless this instance sent it or it is not
// a payload credvault writes.
func (f *keyStateFanout) received(msg string) {
	sender, payload, ok := strings.Cut(msg, " ")
	if !ok || !validStatePayload(payload) {
		f.count("malformed")
		f.warnMalformed.Do(func() {
			f.log.Warn("ignoring a malformed key state message on redis (logged once a minute at most; credvault_key_state_fanout_total{result=\"malformed\"} counts them)", "channel", f.channel)
		})
		return
	}
	if sender == f.sender {
		return
	}
	f.count("received")
	f.apply(payload)
}

// validStatePayload reports whether p is one of the payloads
// key_state_log holds: key: and new: with a SHA-256 in lower-case hex,
// user:, cred: and integration: with a UUID (either case, as PostgreSQL
// takes it).
func validStatePayload(p string) bool {
	kind, arg, ok := strings.Cut(p, ":")
	if !ok {
		return false
	}
	switch kind {
	case "key", "new":
		return len(arg) == 64 && isHex(arg, false)
	case "user", "cred", "integration":
		return len(arg) == 36 && arg[8] == '-' && arg[13] == '-' && arg[18] == '-' && arg[23] == '-' &&
			isHex(arg[:8]+arg[9:13]+arg[14:18]+arg[19:23]+arg[24:], true)
	}
	return false
}

// isHex reports whether s is hexadecimal digits, upper case allowed when
// upper is.
func isHex(s string, upper bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (!upper || c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}
