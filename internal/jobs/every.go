package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Every runs fn every interval, once across all instances that share the
// database (see Periodic), under the given name: a short snake_case word
// that names the work in logs ("purge_sessions", "oauth_refresh"). fn gets
// the job's context, which ends at the Runner's JobTimeout; an error is
// logged and that period's run is retried with River's backoff, so fn must
// be safe to run again. It panics after Start or for a name used twice.
//
// Each instance's Start also runs fn once, within a poll interval, without
// waiting for leadership: a restart within a period does not wait for the
// next (River's RunOnStart would, being the leader's, unique per period
// and deduplicated against the period's run already done). Instances
// starting together share one such run (it is unique while queued or
// running).
//
// Every is for work that is a function of the database's state at the
// time it runs (refresh what expires soon, check what is due); work that
// carries its own arguments is a worker of its own (AddWorker).
func (r *Runner) Every(name string, interval time.Duration, fn func(ctx context.Context) error) {
	if r.client != nil {
		panic("jobs: Every after Start")
	}
	if r.every == nil {
		r.every = &everyWorker{fns: map[string]func(context.Context) error{}}
		AddWorker[everyArgs](r, r.every)
	}
	if _, dup := r.every.fns[name]; dup {
		panic(fmt.Sprintf("jobs: Every(%q) registered twice", name))
	}
	r.every.fns[name] = fn
	// One job per name and period: a change of leader never enqueues one
	// period twice. A run that failed and waits for its retry does not hold
	// the next period back.
	r.addPeriodic(interval, func() river.JobArgs { return everyArgs{Name: name} },
		river.UniqueOpts{ByArgs: true, ByPeriod: interval}, false)
	r.everyNames = append(r.everyNames, name)
}

// liveStates are the states of a job that has not ended.
var liveStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
	rivertype.JobStateRetryable, rivertype.JobStateScheduled,
}

// startRuns queues this instance's start run of every Every function:
// unique by name while one is queued or running (not per period, so a run
// done earlier in the period does not hold it back).
func (r *Runner) startRuns(ctx context.Context) error {
	if len(r.everyNames) == 0 {
		return nil
	}
	params := make([]river.InsertManyParams, len(r.everyNames))
	for i, name := range r.everyNames {
		params[i] = river.InsertManyParams{Args: everyArgs{Name: name},
			InsertOpts: &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: liveStates}}}
	}
	_, err := r.client.InsertMany(ctx, params)
	return err
}

// everyArgs names the function an Every job runs.
type everyArgs struct {
	Name string `json:"name" river:"unique"`
}

func (everyArgs) Kind() string { return "credvault_every" }

type everyWorker struct {
	river.WorkerDefaults[everyArgs]
	fns map[string]func(context.Context) error
}

func (w *everyWorker) Work(ctx context.Context, job *river.Job[everyArgs]) error {
	fn, ok := w.fns[job.Args.Name]
	if !ok {
		// Enqueued by an instance of another version that has this job;
		// this one does not: leave it to an instance that knows it.
		return river.JobSnooze(time.Minute)
	}
	if err := fn(ctx); err != nil {
		return fmt.Errorf("%s: %w", job.Args.Name, err)
	}
	return nil
}
