package jobs

import (
	"context"
	"log/slog"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// quiet passes River's own log lines on at warning level and above only:
// at info River logs every leader election and maintenance pass.
func quiet(l *slog.Logger) *slog.Logger {
	return slog.New(minLevel{l.Handler(), slog.LevelWarn})
}

type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(a), h.min}
}

func (h minLevel) WithGroup(n string) slog.Handler { return minLevel{h.Handler.WithGroup(n), h.min} }

// errorLog writes one line per failed attempt: the job's kind, id and
// attempt and the error's text. Workers return errors that name what
// failed, never a secret (credvault's errors never hold one). The job's
// arguments are not logged: they are a worker's business.
type errorLog struct{ log *slog.Logger }

func (e errorLog) HandleError(_ context.Context, job *rivertype.JobRow, err error) *river.ErrorHandlerResult {
	e.log.Warn("background job failed; it will be retried", "kind", job.Kind, "job_id", job.ID,
		"attempt", job.Attempt, "max_attempts", job.MaxAttempts, "error", err.Error())
	return nil
}

func (e errorLog) HandlePanic(_ context.Context, job *rivertype.JobRow, v any, _ string) *river.ErrorHandlerResult {
	e.log.Error("background job panicked; it will be retried", "kind", job.Kind, "job_id", job.ID,
		"attempt", job.Attempt)
	return nil
}
