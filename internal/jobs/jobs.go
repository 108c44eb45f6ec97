// Package jobs runs credvault's background work that must happen once
// across all replicas, not once per replica: periodic jobs (proactive OAuth
// refresh, scheduled credential health checks, purges) and durable
// one-off jobs (webhook deliveries). It is the one place where "once across
// the cluster" is decided, on River (github.com/riverqueue/river), a
// PostgreSQL job queue, driven through its database/sql driver on
// credvault's own lib/pq pool.
//
// Why River: jobs live in PostgreSQL, which every credvault instance
// already depends on, so no broker is added; a job row is claimed with
// FOR UPDATE SKIP LOCKED (worked once, by one instance); periodic jobs are
// enqueued only by the elected leader and, here, made unique per period
// (a leader change cannot enqueue one period twice); a job can be inserted
// in the caller's own transaction (an outbox written with the change that
// caused it); failed jobs retry with backoff. The database/sql driver has
// no LISTEN support, so the client polls (PollInterval, default 1 s).
//
// Use: New, then Every (a function run every interval, once across the
// cluster) or AddWorker and Periodic for every kind of job, then Start;
// Stop at shutdown. Workers are ordinary river.Worker implementations.
package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/rivermigrate"
)

// migrationLockID serialises River's schema migrations between instances
// that start at the same time (rivermigrate takes no lock of its own). It
// differs from internal/postgres's lock for credvault's own migrations.
const migrationLockID = 0x63766a6f6273 // "cvjobs"

// Defaults, chosen for a credential vault's background work: a handful of
// jobs a minute per org, each a network call of at most tens of seconds.
const (
	// DefaultPollInterval is how often an idle instance looks for new jobs
	// (River's own default; the database/sql driver cannot LISTEN).
	DefaultPollInterval = time.Second
	// DefaultMaxWorkers is the number of jobs one instance works at once.
	DefaultMaxWorkers = 8
	// DefaultJobTimeout bounds one job's run; a job past it is cancelled
	// through its context and retried.
	DefaultJobTimeout = time.Minute
	// RescueMargin is how long past its own timeout a job may still count
	// as running before it is taken for lost: the worker returns at its
	// deadline and River records the outcome in a batch just after, well
	// within this; it also absorbs clock skew between instances.
	RescueMargin = 5 * time.Second
)

// River's fixed periods that bound how soon a lost job runs again (River
// v0.51 internal/maintenance and internal/leadership; not configurable).
const (
	// rescuerInterval: how often the leader looks for stuck jobs.
	rescuerInterval = 30 * time.Second
	// leaderHandover: a dead leader's row lives its TTL (elect interval
	// 5 s + 10 s padding) past its last re-election; a follower tries
	// every 5–6 s.
	leaderHandover = 21 * time.Second
	// schedulerInterval: how often the leader makes retryable jobs
	// available.
	schedulerInterval = 5 * time.Second
)

// RescueAfter is the RescueAfter for jobs whose run is bounded by timeout:
// timeout plus RescueMargin.
func RescueAfter(timeout time.Duration) time.Duration { return timeout + RescueMargin }

// Config tunes a Runner. The zero value takes the defaults above.
type Config struct {
	// PollInterval: how often to look for available jobs (>= 1 ms).
	PollInterval time.Duration
	// MaxWorkers: jobs worked at once by this instance.
	MaxWorkers int
	// JobTimeout: a job's deadline, for workers that set none of their
	// own (river.Worker's Timeout); -1 for none.
	JobTimeout time.Duration
	// RescueAfter: how long a job may count as running before the leader
	// takes it for lost (its instance died mid-run) and lets another
	// instance run it again; never before the job's own timeout has passed
	// (River's rescuer checks each kind's Timeout). Set it just above the
	// timeout of the kind whose loss must be noticed soonest (RescueAfter
	// of that timeout). Default: RescueAfter(JobTimeout); for JobTimeout
	// -1, River's own default (1 h).
	RescueAfter time.Duration
	// Logger receives River's own log lines at warning level and above,
	// and one line per failed job attempt. Nil: slog.Default().
	Logger *slog.Logger
}

// Runner is one instance's River client and the jobs registered with it.
// Register every worker and periodic job before Start.
type Runner struct {
	db       *sql.DB
	cfg      Config
	workers  *river.Workers
	periodic []*river.PeriodicJob
	client   *river.Client[*sql.Tx]
	kinds    int
	every    *everyWorker // the worker of Every's jobs, made on first use
	// everyNames: Every's names, in order, for the start runs.
	everyNames []string
}

// New returns a Runner on db (credvault's pool). Nothing runs until Start.
func New(db *sql.DB, cfg Config) *Runner {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MaxWorkers <= 0 {
		cfg.MaxWorkers = DefaultMaxWorkers
	}
	if cfg.JobTimeout == 0 {
		cfg.JobTimeout = DefaultJobTimeout
	}
	if cfg.RescueAfter <= 0 && cfg.JobTimeout > 0 {
		cfg.RescueAfter = RescueAfter(cfg.JobTimeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Runner{db: db, cfg: cfg, workers: river.NewWorkers()}
}

// AddWorker registers the worker for job kind T on r. A worker whose
// Timeout is 0 gets the Runner's JobTimeout. It panics when r has started
// or when T's kind is registered twice: both are wiring mistakes found at
// start-up, never at run time.
func AddWorker[T river.JobArgs](r *Runner, w river.Worker[T]) {
	if r.client != nil {
		panic("jobs: AddWorker after Start")
	}
	river.AddWorker[T](r.workers, timeoutWorker[T]{Worker: w, def: r.cfg.JobTimeout})
	r.kinds++
}

// timeoutWorker gives a worker without a Timeout of its own the Runner's
// JobTimeout. Every kind then states its own timeout, which River's rescuer
// reads: a job is never rescued while still within it, however short
// RescueAfter is.
type timeoutWorker[T river.JobArgs] struct {
	river.Worker[T]
	def time.Duration
}

func (w timeoutWorker[T]) Timeout(job *river.Job[T]) time.Duration {
	if d := w.Worker.Timeout(job); d != 0 {
		return d
	}
	return w.def
}

// LostJobRerunWithin is the longest a job whose instance died mid-run
// waits, counted from when it started, before another instance runs it
// again, for a kind whose timeout is within RescueAfter: RescueAfter (or a
// dead leader's handover, whichever is later), then River's rescuer pass,
// scheduler pass and one poll.
func (r *Runner) LostJobRerunWithin() time.Duration {
	return max(r.cfg.RescueAfter, leaderHandover) + rescuerInterval + schedulerInterval + r.cfg.PollInterval
}

// Periodic makes args() run every interval, once across all instances that
// share the database, starting shortly after the first instance starts
// (runOnStart) or one interval later. Each period's job is unique (by kind
// and period), so a change of leader never enqueues one period twice. The
// kind of args() must have a worker (AddWorker). It panics after Start.
func (r *Runner) Periodic(interval time.Duration, args func() river.JobArgs, runOnStart bool) {
	r.addPeriodic(interval, args, river.UniqueOpts{ByPeriod: interval}, runOnStart)
}

func (r *Runner) addPeriodic(interval time.Duration, args func() river.JobArgs, unique river.UniqueOpts, runOnStart bool) {
	if r.client != nil {
		panic("jobs: periodic job added after Start")
	}
	r.periodic = append(r.periodic, river.NewPeriodicJob(
		river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) {
			return args(), &river.InsertOpts{UniqueOpts: unique}
		},
		&river.PeriodicJobOpts{RunOnStart: runOnStart},
	))
}

// Start starts working jobs. With no worker registered it does nothing.
// Errors: River's own, for an invalid configuration.
func (r *Runner) Start(ctx context.Context) error {
	if r.kinds == 0 {
		return nil
	}
	// Every worker states its own timeout (timeoutWorker), so the
	// client-level JobTimeout is never used; River only asks that it not
	// exceed RescueStuckJobsAfter.
	jobTimeout := r.cfg.JobTimeout
	if r.cfg.RescueAfter > 0 {
		jobTimeout = min(jobTimeout, r.cfg.RescueAfter)
	}
	client, err := river.NewClient(riverdatabasesql.New(r.db), &river.Config{
		FetchPollInterval:    r.cfg.PollInterval,
		FetchCooldown:        min(r.cfg.PollInterval, river.FetchCooldownDefault),
		JobTimeout:           jobTimeout,
		RescueStuckJobsAfter: max(r.cfg.RescueAfter, 0),
		Logger:               quiet(r.cfg.Logger),
		PeriodicJobs:         r.periodic,
		PollOnly:             true,
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: r.cfg.MaxWorkers}},
		Workers:              r.workers,
		ErrorHandler:         errorLog{r.cfg.Logger},
	})
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	if err := client.Start(ctx); err != nil {
		return fmt.Errorf("jobs: start: %w", err)
	}
	r.client = client
	if err := r.startRuns(ctx); err != nil {
		// The periods still run them; only the prompt first run is lost.
		r.cfg.Logger.Warn("background jobs: start runs not queued; they run at their next period", "error", err.Error())
	}
	return nil
}

// Insert enqueues one job now, outside any transaction. Errors: the
// database's, wrapped.
func (r *Runner) Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) error {
	if r.client == nil {
		return errors.New("jobs: Insert before Start")
	}
	_, err := r.client.Insert(ctx, args, opts)
	return err
}

// InsertTx enqueues one job in the caller's transaction: the job exists
// exactly when the change that caused it commits (an outbox). Errors: the
// database's, wrapped.
func (r *Runner) InsertTx(ctx context.Context, tx *sql.Tx, args river.JobArgs, opts *river.InsertOpts) error {
	if r.client == nil {
		return errors.New("jobs: InsertTx before Start")
	}
	_, err := r.client.InsertTx(ctx, tx, args, opts)
	return err
}

// Stop stops fetching new jobs and waits for running ones until ctx ends,
// then cancels them (they are retried elsewhere or later).
func (r *Runner) Stop(ctx context.Context) {
	if r.client == nil {
		return
	}
	if err := r.client.Stop(ctx); err != nil {
		// Cancel what still runs, and wait for it a bounded time: a job
		// that ignores its context must not hold the process's shutdown
		// (River then records it as running; the rescuer reruns it).
		cctx, cancel := context.WithTimeout(context.Background(), stopAndCancelWait)
		defer cancel()
		if err := r.client.StopAndCancel(cctx); err != nil {
			r.cfg.Logger.Warn("background jobs: some did not return after cancellation; stopping without them", "wait", stopAndCancelWait.String())
		}
	}
}

// stopAndCancelWait bounds how long Stop waits for cancelled jobs.
const stopAndCancelWait = 5 * time.Second

// Migrate creates or upgrades River's tables (river_job, river_leader, …)
// in the database's search path, under an advisory lock so that instances
// starting together migrate once. Each River version applies in its own
// transaction (some add an enum value that a later statement uses, which
// one transaction cannot do). Errors: the database's, wrapped.
func Migrate(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("jobs: migrate: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLockID); err != nil {
		return fmt.Errorf("jobs: migrate lock: %w", err)
	}
	defer func() {
		// A fresh context: the unlock must happen even when ctx has ended.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = conn.ExecContext(uctx, `SELECT pg_advisory_unlock($1)`, migrationLockID)
	}()
	m, err := rivermigrate.New(riverdatabasesql.New(db), &rivermigrate.Config{Logger: quiet(slog.Default())})
	if err != nil {
		return fmt.Errorf("jobs: migrate: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("jobs: migrate: %w", err)
	}
	return nil
}
