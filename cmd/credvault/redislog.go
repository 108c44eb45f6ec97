package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// redisLogger sends the Redis client's own messages (pool and connection
// trouble, printf-style, plain text on stderr by default) through slog, so
// that the log stays one JSON line per event.
type redisLogger struct{ log *slog.Logger }

// Printf implements go-redis's Logging interface: every message it writes
// is about trouble (a failed close, a bad pooled connection), so at warn.
func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "), "component", "redis")
}

// setRedisLogger makes go-redis log through log. The setting is
// process-wide, as go-redis keeps it.
func setRedisLogger(log *slog.Logger) { redis.SetLogger(redisLogger{log}) }
