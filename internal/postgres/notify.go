package postgres

import (
	"context"
	"database/sql"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"credvault/internal/credvault"
)

// Follower timings: how often the log is read through the pool while the
// LISTEN connection is down (and the most lib/pq waits between reconnects
// of it), and while it is up (a safety net for a listener that is
// connected to a server that no longer takes writes, such as a demoted
// primary). A revocation is therefore applied everywhere within
// PollUp + one query after its commit, whatever happens to LISTEN.
const (
	PollDown          = 250 * time.Millisecond
	PollUp            = 500 * time.Millisecond
	pollTimeout       = 2 * time.Second
	lateAfter         = time.Second // a row older than this that NOTIFY did not bring: the listener missed it
	maxCatchUp        = 10000       // more rows behind than this: reload everything instead
	fullResetAfter    = time.Hour   // out of touch longer than this: reload everything (rows may be pruned)
	stateLogRetention = 24 * time.Hour
)

// StateLogPruneEvery is how often key_state_log rows older than a day are
// deleted (a periodic job, once across all instances).
const StateLogPruneEvery = 10 * time.Minute

// Follower keeps one instance's caches in step with key_state_log. It
// knows the last seq it applied; it applies new rows as NOTIFY brings
// them, reads the log from that seq on every (re)connect of its LISTEN
// connection, and polls it through the pool every PollDown while that
// connection is down (every PollUp while it is up). Fresh reports whether
// the log was read to its end recently enough for cached keys to be
// trusted.
type Follower struct {
	db  *sqlx.DB
	url string
	log *slog.Logger
	// apply handles one payload; reset drops every cache and reloads (on
	// start, when too far behind, or after a long time out of touch);
	// onReconnect (may be nil) counts reconnects of the LISTEN connection.
	apply       func(string)
	reset       func()
	onReconnect func()
	maxStale    time.Duration

	last      atomic.Int64 // seq of the last row applied
	contact   atomic.Int64 // unix nanos: when the log was last read to its end
	started   atomic.Bool
	listening atomic.Bool
	server    atomic.Pointer[string] // the server process the log was last read from
}

// NewFollower returns a Follower on db (the pool, which follows the
// writable host) and url (for the LISTEN connection). maxStale is how long
// the log may go unread before Fresh fails.
func NewFollower(db *sqlx.DB, url string, log *slog.Logger, maxStale time.Duration, apply func(string), reset, onReconnect func()) *Follower {
	return &Follower{db: db, url: url, log: log, maxStale: maxStale, apply: apply, reset: reset, onReconnect: onReconnect}
}

// LastSeq is the seq of the last key_state_log row this instance applied.
func (f *Follower) LastSeq() int64 { return f.last.Load() }

// Age is the time since the log was last read to its end.
func (f *Follower) Age() time.Duration { return time.Since(time.Unix(0, f.contact.Load())) }

// Listening reports whether the LISTEN connection is up.
func (f *Follower) Listening() bool { return f.listening.Load() }

// Fresh is the readiness check of the caches: nil while the log has been
// read to its end within maxStale, EUNAVAILABLE before the first read and
// after maxStale without one (a key revoked meanwhile may still be
// accepted from cache, so the instance should take no traffic).
func (f *Follower) Fresh(context.Context) error {
	if !f.started.Load() {
		return credvault.Errorf(credvault.EUNAVAILABLE, "key state not read from postgres yet")
	}
	if age := f.Age(); age > f.maxStale {
		return credvault.Errorf(credvault.EUNAVAILABLE, "key state not read from postgres for %s (limit %s); cached keys are not trusted", age.Round(time.Second), f.maxStale)
	}
	return nil
}

// Run follows the log until ctx ends.
func (f *Follower) Run(ctx context.Context) {
	tick := time.NewTicker(PollDown)
	defer tick.Stop()
	for !f.started.Load() {
		if err := f.begin(ctx); err != nil {
			f.log.Warn("reading the key state log failed; retrying", "error", err.Error())
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}
	l, ready := f.listen()
	defer func() { l.Close() }()
	lastPoll := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-ready:
			ready = nil
			if err != nil {
				f.log.Warn("LISTEN failed; following the key state log by polling", "error", err.Error())
				continue
			}
			f.listening.Store(true)
			f.catchUp(ctx)
			lastPoll = time.Now()
		case n := <-l.Notify:
			if n == nil { // reconnected, LISTEN in effect again: read what was missed
				f.listening.Store(true)
				f.catchUp(ctx)
				lastPoll = time.Now()
				continue
			}
			f.notified(ctx, n.Extra)
		case <-tick.C:
			if f.listening.Load() && time.Since(lastPoll) < PollUp {
				continue
			}
			lastPoll = time.Now()
			if missed := f.catchUp(ctx); missed && f.listening.Load() {
				// Rows NOTIFY should have brought long ago: the listener
				// is on a server that no longer takes writes. Start over;
				// the new connection finds the writable host.
				f.log.Warn("LISTEN connection missed key state changes; reconnecting it")
				l.Close()
				f.listening.Store(false)
				l, ready = f.listen()
			}
		}
	}
}

// listen opens a LISTEN connection; ready gets the result of LISTEN once
// the connection is up (lib/pq retries it, at most PollDown apart).
func (f *Follower) listen() (*pq.Listener, chan error) {
	l := pq.NewListener(f.url, 100*time.Millisecond, PollDown, func(ev pq.ListenerEventType, err error) {
		switch ev {
		case pq.ListenerEventDisconnected:
			f.listening.Store(false)
			f.log.Warn("invalidation listener disconnected; reconnecting and polling the key state log meanwhile", "error", errString(err))
		case pq.ListenerEventReconnected:
			f.log.Info("invalidation listener reconnected; reading the key state log from the last applied change", "seq", f.last.Load())
			if f.onReconnect != nil {
				f.onReconnect()
			}
		case pq.ListenerEventConnectionAttemptFailed:
			f.log.Debug("invalidation listener: connection attempt failed", "error", errString(err))
		}
	})
	ready := make(chan error, 1)
	go func() { ready <- l.Listen(InvalidationChannel) }()
	return l, ready
}

// begin reads where the log ends and reloads every cache from there.
func (f *Follower) begin(ctx context.Context) error {
	qctx, cancel := context.WithTimeout(ctx, pollTimeout)
	defer cancel()
	var last int64
	if err := f.db.GetContext(qctx, &last, `SELECT COALESCE(max(seq), 0) FROM key_state_log`); err != nil {
		return translate(err, "key state log")
	}
	f.last.Store(last)
	f.reset()
	f.contact.Store(time.Now().UnixNano())
	f.started.Store(true)
	return nil
}

// notified applies one NOTIFY payload "log:<seq>:<payload>": in order it is
// applied at once; after a gap it is applied at once too and the log is
// read from the last applied seq (a payload only drops cache entries, so
// applying it early or twice is harmless, and a revocation must not wait
// for a read that fails while the database goes away); one already
// applied is ignored.
func (f *Follower) notified(ctx context.Context, extra string) {
	rest, ok := strings.CutPrefix(extra, "log:")
	num, payload, ok2 := strings.Cut(rest, ":")
	seq, err := strconv.ParseInt(num, 10, 64)
	if !ok || !ok2 || err != nil {
		f.log.Warn("ignoring malformed invalidation notification")
		return
	}
	switch last := f.last.Load(); {
	case seq == last+1:
		f.apply(payload)
		f.last.Store(seq)
	case seq > last+1:
		f.apply(payload)
		f.catchUp(ctx)
	}
}

type logRow struct {
	Seq     sql.NullInt64  `db:"seq"`
	Payload sql.NullString `db:"payload"`
	Late    sql.NullBool   `db:"late"`
	Top     int64          `db:"top"`    // max(seq) in the log
	Server  string         `db:"server"` // identifies the server process that answered
}

// rewindOnNewServer is how many applied rows are read again when the log
// is first read from another server process (a restart, or a promoted
// standby): after an asynchronous failover that lost the last commits,
// the new primary's sequence can hand out numbers this instance already
// applied (a sequence logs 32 values ahead), and applying a row twice is
// harmless.
const rewindOnNewServer = 64

// catchUp applies every row after the last applied seq, then marks the log
// read to its end. It reports whether a row was older than lateAfter (one
// that NOTIFY should have brought). A log that ends before the last applied
// seq (restored, or a failover lost its end) reloads everything. A failed
// read leaves everything as it was; the next poll tries again.
func (f *Follower) catchUp(ctx context.Context) (missed bool) {
	if time.Since(time.Unix(0, f.contact.Load())) > fullResetAfter {
		_ = f.begin(ctx)
		return false
	}
	qctx, cancel := context.WithTimeout(ctx, pollTimeout)
	defer cancel()
	from := f.last.Load()
	// The server is only known after the read: read once, and again from
	// further back when it turns out to be a new one.
	for attempt := 0; attempt < 2; attempt++ {
		var rows []logRow
		err := f.db.SelectContext(qctx, &rows, `
			SELECT l.seq, l.payload, now() - l.at > $3 * interval '1 millisecond' AS late,
			       COALESCE(m.top, 0) AS top, pg_postmaster_start_time()::text || '/' || inet_server_port() AS server
			FROM (SELECT max(seq) AS top FROM key_state_log) m
			LEFT JOIN LATERAL (SELECT * FROM key_state_log WHERE seq > $1 ORDER BY seq LIMIT $2) l ON true
			ORDER BY l.seq`,
			from, maxCatchUp, lateAfter.Milliseconds())
		if err != nil || len(rows) == 0 {
			if err != nil {
				f.log.Debug("reading the key state log failed; will retry", "error", err.Error())
			}
			return false
		}
		server := rows[0].Server
		if prev := f.server.Swap(&server); attempt == 0 && prev != nil && *prev != server {
			f.log.Info("key state log read from a new server process; reading the last changes again", "rewind", rewindOnNewServer)
			from = max(0, from-rewindOnNewServer)
			continue
		}
		if rows[0].Top < f.last.Load() {
			f.log.Warn("the key state log ends before the last change applied here (database restored or failed over with loss); reloading every cache")
			_ = f.begin(ctx)
			return false
		}
		if len(rows) == maxCatchUp {
			f.log.Warn("far behind the key state log; reloading every cache")
			_ = f.begin(ctx)
			return false
		}
		for _, r := range rows {
			if !r.Seq.Valid {
				continue
			}
			f.apply(r.Payload.String)
			if r.Seq.Int64 > f.last.Load() {
				f.last.Store(r.Seq.Int64)
			}
			missed = missed || r.Late.Bool
		}
		f.contact.Store(time.Now().UnixNano())
		return missed
	}
	return false
}

// Prune deletes key_state_log rows older than a day: an instance out of
// touch that long reloads every cache instead of reading them. Errors:
// EUNAVAILABLE.
func (f *Follower) Prune(ctx context.Context) error {
	_, err := f.db.ExecContext(ctx, `DELETE FROM key_state_log WHERE at < now() - $1 * interval '1 second'`, stateLogRetention.Seconds())
	return translate(err, "key state log")
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
