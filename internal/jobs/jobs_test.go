package jobs_test

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"testing"
	"time"

	_ "github.com/lib/pq"
	"github.com/riverqueue/river"

	"credvault/internal/jobs"
	"credvault/internal/postgres/pgtest"
)

type tickArgs struct{}

func (tickArgs) Kind() string { return "test_tick" }

// tickWorker records, per instance, the period (ScheduledAt) of every job
// it works.
type tickWorker struct {
	river.WorkerDefaults[tickArgs]
	instance int
	mu       *sync.Mutex
	runs     map[time.Time][]int
}

func (w *tickWorker) Work(_ context.Context, job *river.Job[tickArgs]) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := job.ScheduledAt.Truncate(time.Second)
	w.runs[p] = append(w.runs[p], w.instance)
	return nil
}

func openDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", pgtest.NewEmpty(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestPeriodicRunsOnceAcrossInstances: three instances on one database
// register the same one-second periodic job; no period is worked by more
// than one of them, and few are skipped once the first has run.
func TestPeriodicRunsOnceAcrossInstances(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	// Three instances migrating at once: one migrates, the others wait.
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- jobs.Migrate(ctx, db) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Migrate: %v", err)
		}
	}

	var mu sync.Mutex
	runs := map[time.Time][]int{}
	everyRuns := map[int]int{}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&syncWriter{w: &logs, mu: &mu}, nil))
	var runners []*jobs.Runner
	for i := range 3 {
		r := jobs.New(db, jobs.Config{PollInterval: 50 * time.Millisecond, Logger: log})
		jobs.AddWorker(r, &tickWorker{instance: i, mu: &mu, runs: runs})
		r.Periodic(time.Second, func() river.JobArgs { return tickArgs{} }, true)
		r.Every("purge", time.Second, func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			everyRuns[i]++
			return nil
		})
		if err := r.Start(ctx); err != nil {
			t.Fatalf("Start: %v", err)
		}
		runners = append(runners, r)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(runs)
		mu.Unlock()
		if n >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, r := range runners {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r.Stop(sctx)
		cancel()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(runs) < 4 {
		t.Fatalf("periods worked: %d within 20 s, want >= 4", len(runs))
	}
	var first, last time.Time
	for p, who := range runs {
		if len(who) != 1 {
			t.Errorf("period %s worked %d times (instances %v), want once", p.Format(time.TimeOnly), len(who), who)
		}
		if first.IsZero() || p.Before(first) {
			first = p
		}
		if p.After(last) {
			last = p
		}
	}
	// A period may be skipped when the leader's enqueuer falls behind on a
	// loaded machine or leadership moves (River's periodic scheduler keeps
	// its state in memory); never more than one in a row here. That is why
	// Every's functions act on the database's state (what is due), so the
	// next period catches up what a skipped one left.
	if span := int(last.Sub(first)/time.Second) + 1; span-len(runs) > span/4+1 {
		t.Errorf("periods from %s to %s: %d worked of %d", first.Format(time.TimeOnly), last.Format(time.TimeOnly), len(runs), span)
	}
	// Every's function: once a period too, whichever instance works it,
	// plus at most one start run per instance (Every runs at each start;
	// instances that start together share one).
	total := 0
	for _, n := range everyRuns {
		total += n
	}
	if total < len(runs)-1 || total > len(runs)+1+len(runners) {
		t.Errorf("Every ran %d times over %d periods (%v), want one a period and at most one a start", total, len(runs), everyRuns)
	}
}

// TestEveryRunsPromptlyAtEachStart: an Every function with a one-hour
// period runs within seconds of a Runner starting, and again within
// seconds of a restart in the same period (the period's run is done, and
// River's RunOnStart alone would skip it until the next period).
func TestEveryRunsPromptlyAtEachStart(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	if err := jobs.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	for _, round := range []string{"first start", "restart in the same period"} {
		ran := make(chan struct{}, 10)
		r := jobs.New(db, jobs.Config{})
		r.Every("probe", time.Hour, func(context.Context) error {
			ran <- struct{}{}
			return nil
		})
		start := time.Now()
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ran:
			t.Logf("%s: first run %v after Start", round, time.Since(start).Round(10*time.Millisecond))
		case <-time.After(10 * time.Second):
			t.Errorf("%s: no run within 10 s of Start (period 1 h)", round)
		}
		r.Stop(ctx)
	}
}

type failArgs struct{}

func (failArgs) Kind() string { return "test_fail" }

type failWorker struct {
	river.WorkerDefaults[failArgs]
	done chan struct{}
	once sync.Once
}

func (w *failWorker) Work(context.Context, *river.Job[failArgs]) error {
	w.once.Do(func() { close(w.done) })
	return errTest
}

var errTest = &testError{"upstream answered 503"}

type testError struct{ s string }

func (e *testError) Error() string { return e.s }

// TestInsertTxFollowsTheTransaction: a job inserted in a transaction that
// rolls back never runs; one in a committed transaction runs, and its
// failure is logged with kind and attempt.
func TestInsertTxFollowsTheTransaction(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	if err := jobs.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var mu sync.Mutex
	r := jobs.New(db, jobs.Config{PollInterval: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs, mu: &mu}, nil))})
	w := &failWorker{done: make(chan struct{})}
	jobs.AddWorker(r, w)
	if err := r.Insert(ctx, failArgs{}, nil); err == nil {
		t.Fatal("Insert before Start: no error")
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Stop(ctx)

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.InsertTx(ctx, tx, failArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	_ = tx.Rollback()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM river_job WHERE kind = 'test_fail'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("jobs after rollback: %d, want 0", n)
	}

	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.InsertTx(ctx, tx, failArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		t.Fatal("committed job not worked within 10 s")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		out := logs.String()
		mu.Unlock()
		if bytes.Contains([]byte(out), []byte("kind=test_fail")) && bytes.Contains([]byte(out), []byte("attempt=1")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failure line naming kind and attempt; log:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type syncWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
