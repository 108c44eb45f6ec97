package events

import (
	"context"
	"database/sql"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"credvault/internal/credvault"
)

// DeliveryArgs is the job that sends one delivery.
type DeliveryArgs struct {
	DeliveryID int64 `json:"delivery_id"`
	// Manual: a redelivery a person asked for (credvault.Job.Manual).
	Manual bool `json:"manual,omitempty"`
}

// Kind implements river.JobArgs.
func (DeliveryArgs) Kind() string { return credvault.JobDelivery }

// HealthArgs is the job that runs one scheduled health check: the check
// of one credential for one interval (Slot).
type HealthArgs struct {
	CredentialID string    `json:"credential_id"`
	OrgID        string    `json:"org_id"`
	Slot         time.Time `json:"slot"`
}

// Kind implements river.JobArgs.
func (HealthArgs) Kind() string { return credvault.JobHealthCheck }

// DeliveryWorker works DeliveryArgs with a Sender: a failed attempt is
// snoozed until the Backoff's next time (River does not count snoozes as
// attempts; the delivery's own count does); an error of credvault's own
// (PostgreSQL, Vault) is retried by River.
type DeliveryWorker struct {
	river.WorkerDefaults[DeliveryArgs]
	Sender *Sender
}

// DeliveryOverhead bounds a delivery job's work besides its HTTP attempt:
// loading the delivery, decrypting the webhook's secret through transit,
// recording the attempt (PostgreSQL and Vault calls of milliseconds).
const DeliveryOverhead = 5 * time.Second

// DeliveryJobTimeout is the deadline of one delivery job whose HTTP attempt
// is bounded by attempt (the sending client's Timeout): attempt plus
// DeliveryOverhead; 0 (the job queue's default) for an unbounded attempt.
// A job queue that takes a job running past it (plus a margin) for lost
// retries a delivery whose instance died mid-send that soon.
func DeliveryJobTimeout(attempt time.Duration) time.Duration {
	if attempt <= 0 {
		return 0
	}
	return attempt + DeliveryOverhead
}

// Timeout implements river.Worker: DeliveryJobTimeout of the sender's
// client.
func (w *DeliveryWorker) Timeout(*river.Job[DeliveryArgs]) time.Duration {
	return DeliveryJobTimeout(w.Sender.Client.Timeout)
}

// Work implements river.Worker.
//
// A manual job's first run sends whatever the delivery's status: the
// delivery's automatic job may have sent it meanwhile (it was in flight
// when the person asked), and the person asked for one more request. A
// first run is one River has not attempted before (no snooze, no rescue).
func (w *DeliveryWorker) Work(ctx context.Context, job *river.Job[DeliveryArgs]) error {
	force := job.Args.Manual && len(job.AttemptedBy) <= 1
	out, err := w.Sender.Send(ctx, job.Args.DeliveryID, force)
	if err != nil {
		return err
	}
	if out.Done {
		return nil
	}
	return river.JobSnooze(out.RetryIn)
}

// HealthWorker works HealthArgs: one Test connection as the system.
type HealthWorker struct {
	river.WorkerDefaults[HealthArgs]
	Monitors *credvault.MonitorService
}

// Work implements river.Worker. A credential deleted meanwhile ends the
// job.
func (w *HealthWorker) Work(ctx context.Context, job *river.Job[HealthArgs]) error {
	_, err := w.Monitors.RunHealthCheck(ctx, job.Args.OrgID, job.Args.CredentialID, job.Args.Slot)
	if credvault.ErrorCode(err) == credvault.ENOTFOUND {
		return nil
	}
	return err
}

// Inserter is the job queue's insert (internal/jobs.Runner).
type Inserter interface {
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) error
	InsertTx(ctx context.Context, tx *sql.Tx, args river.JobArgs, opts *river.InsertOpts) error
}

// deliveryOpts makes one live automatic job per delivery: a delivery
// already queued, waiting for its retry or being sent is not queued again
// (a sweep that races the job). A manual redelivery is a job of its own
// (manualOpts): River records a job's end in batches just after it ran, so
// a redelivery asked then, or while the automatic job is still sending,
// would be folded into a job that never sends again.
var deliveryOpts = &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
	rivertype.JobStateRetryable, rivertype.JobStateScheduled,
}}}

// manualOpts: each manual redelivery is its own job, not unique against
// anything.
var manualOpts = &river.InsertOpts{}

// healthOpts: a check is tried once. A retry would call the third party a
// second time for one interval; a check lost to a crash is made up by the
// next interval's.
var healthOpts = &river.InsertOpts{MaxAttempts: 1, UniqueOpts: river.UniqueOpts{ByArgs: true}}

// Enqueue returns the store's job hook (postgres.Store.OnJobs): each job
// inserted in the caller's transaction.
func Enqueue(q Inserter) func(ctx context.Context, tx *sql.Tx, jobs []credvault.Job) error {
	return func(ctx context.Context, tx *sql.Tx, jobs []credvault.Job) error {
		for _, j := range jobs {
			var err error
			switch j.Kind {
			case credvault.JobDelivery:
				opts := deliveryOpts
				if j.Manual {
					opts = manualOpts
				}
				err = q.InsertTx(ctx, tx, DeliveryArgs{DeliveryID: j.DeliveryID, Manual: j.Manual}, opts)
			case credvault.JobHealthCheck:
				err = q.InsertTx(ctx, tx, HealthArgs{CredentialID: j.CredentialID, OrgID: j.OrgID, Slot: j.Slot}, healthOpts)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
}

// OverdueStore finds deliveries whose job should have run by now.
type OverdueStore interface {
	OverdueDeliveries(ctx context.Context, before time.Time, limit int) ([]int64, error)
}

// Sweep queues a job for every pending delivery overdue by more than a
// minute: deliveries stored by a command that runs no job queue, or whose
// job was lost. The unique insert makes it a no-op for a delivery whose
// job is alive.
func Sweep(ctx context.Context, store OverdueStore, q Inserter, now time.Time) error {
	ids, err := store.OverdueDeliveries(ctx, now.Add(-time.Minute), 1000)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := q.Insert(ctx, DeliveryArgs{DeliveryID: id}, deliveryOpts); err != nil {
			return err
		}
	}
	return nil
}
