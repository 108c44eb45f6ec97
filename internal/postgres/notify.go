package postgres

import (
	"context"
	"log/slog"
	"time"

	"github.com/lib/pq"
)

// Listen subscribes to InvalidationChannel on a dedicated connection (lib/pq's
// Listener, which reconnects by itself) and calls onEvent with each
// payload. Once LISTEN is in effect, and after every reconnect, it calls
// onReset: notifications sent while it was not listening are lost, so the
// caller must (re)load what it keeps. onReset runs on the listener's own
// goroutine and should return quickly.
// onReconnect, when not nil, is called on every reconnect (not the first
// connect), before onReset: the metrics hook.
// It returns when ctx ends.
func Listen(ctx context.Context, url string, log *slog.Logger, onEvent func(string), onReset, onReconnect func()) error {
	l := pq.NewListener(url, 100*time.Millisecond, 5*time.Second, func(ev pq.ListenerEventType, err error) {
		switch ev {
		case pq.ListenerEventDisconnected:
			log.Warn("invalidation listener disconnected; reconnecting", "error", errString(err))
		case pq.ListenerEventReconnected:
			log.Info("invalidation listener reconnected; dropping caches")
			if onReconnect != nil {
				onReconnect()
			}
			onReset()
		case pq.ListenerEventConnectionAttemptFailed:
			log.Debug("invalidation listener: connection attempt failed", "error", errString(err))
		}
	})
	defer l.Close()
	if err := l.Listen(InvalidationChannel); err != nil {
		return translate(err, "listen")
	}
	// Listen returns once the server has acknowledged LISTEN: a load that
	// starts now misses no notification. (A reset on the first connect
	// would run before that, and load everything twice.)
	onReset()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-l.Notify:
			if n == nil { // reconnected: handled by the event callback
				continue
			}
			onEvent(n.Extra)
		case <-ping.C:
			// A quiet connection can die unnoticed; a ping finds out, and
			// the listener reconnects.
			go func() { _ = l.Ping() }()
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
