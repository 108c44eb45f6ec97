package main

import (
	"context"
	"net/url"
	"time"

	"credvault/internal/credvault"
	"credvault/internal/events"
	"credvault/internal/injector"
	"credvault/internal/jobs"
	"credvault/internal/telemetry"
)

// eventOptions tune the event stream; the zero value is production. Tests
// shorten the periods so that minutes of schedule pass in seconds.
type eventOptions struct {
	backoff        events.Backoff   // delivery retries (default events.DefaultBackoff)
	healthScan     time.Duration    // how often due health checks are claimed (default 15 s)
	aggregate      time.Duration    // how often counts become spike and rate-limit events (default 30 s)
	flush          time.Duration    // how often an instance flushes its refusal counts (default 5 s)
	remind         time.Duration    // how often expiry reminders are looked for (default 5 min)
	spikeRule      events.SpikeRule // default events.DefaultSpikeRule
	deliveryClient *injector.Client // default: the egress-checked client
	now            func() time.Time // default time.Now
	jobPoll        time.Duration    // the job queue's poll interval (default internal/jobs's)
}

// Production periods of the event stream's periodic jobs. A 15 s claim
// period keeps a health check within 15 s of its slot; reminders are
// about days, so 5 min is plenty.
const (
	defaultHealthScan = 15 * time.Second
	defaultAggregate  = 30 * time.Second
	defaultFlush      = 5 * time.Second
	defaultRemind     = 5 * time.Minute
	outboxSample      = 10 * time.Second
	// deliveryTimeout bounds one delivery attempt: a receiver should
	// answer at once and work later (Standard Webhooks advises a short
	// timeout).
	deliveryTimeout = 15 * time.Second
)

// jobRescueAfter is how long a job may count as running before the job
// queue's leader takes it for lost and another instance runs it again:
// just above a delivery job's deadline (deliveryTimeout plus
// events.DeliveryOverhead, plus jobs.RescueMargin: 25 s). A delivery whose
// instance died after the request went out is then sent again (under its
// one webhook-id) within jobs.Runner.LostJobRerunWithin, about a minute,
// not River's default of an hour. Jobs with longer deadlines (the periodic
// ones, a minute) are never taken before their own deadline.
var jobRescueAfter = jobs.RescueAfter(events.DeliveryJobTimeout(deliveryTimeout))

// wireEvents builds the event stream on s: the webhook and monitor
// services, the sender, and the jobs (deliveries, health checks, the
// aggregator, reminders, the outbox sweep) registered on s.jobs. Call it
// before s.jobs starts; call eventsStarted after.
func (s *service) wireEvents(cfg Config, opts eventOptions) {
	s.eventMetrics = telemetry.NewEventMetrics(s.registry)
	s.store.OnEmitted(s.eventMetrics.EventEmitted)
	client := opts.deliveryClient
	if client == nil {
		client = injector.NewClient(injector.ClientOptions{AllowPrivate: cfg.EgressAllowPrivate, Timeout: deliveryTimeout,
			ResponseHeaderTimeout: deliveryTimeout, MaxRedirects: -1})
	}
	allowPrivate := cfg.EgressAllowPrivate
	s.webhooks = &credvault.WebhookService{Store: s.store, Transit: s.vault,
		CheckURL: func(u *url.URL) error { return injector.CheckDestination(u, allowPrivate) }}
	s.sender = &events.Sender{Store: s.store, Transit: s.vault, Client: client.HTTPClient(), Backoff: opts.backoff,
		Log: s.log, Observe: s.eventMetrics.Delivery, Now: opts.now}
	s.counter = events.NewCounter()
	now := opts.now
	if now == nil {
		now = time.Now
	}
	agg := &events.Aggregator{Store: s.store, Rule: opts.spikeRule, Now: now}

	jobs.AddWorker(s.jobs, &events.DeliveryWorker{Sender: s.sender})
	jobs.AddWorker(s.jobs, &events.HealthWorker{Monitors: s.monitors})
	s.jobs.Every("credential_health_scan", or(opts.healthScan, defaultHealthScan), func(ctx context.Context) error {
		_, err := s.store.ClaimDueHealthChecks(ctx, now(), 500)
		return err
	})
	s.jobs.Every("refusal_aggregate", or(opts.aggregate, defaultAggregate), agg.Run)
	s.jobs.Every("expiry_reminders", or(opts.remind, defaultRemind), func(ctx context.Context) error {
		return events.Remind(ctx, s.store, now())
	})
	s.jobs.Every("webhook_outbox_sweep", time.Minute, func(ctx context.Context) error {
		return events.Sweep(ctx, s.store, s.jobs, now())
	})
	s.eventFlush = or(opts.flush, defaultFlush)
}

// eventsStarted hands the store its job hook once the queue runs (an
// insert before would fail), and starts this instance's own loops: the
// refusal counter's flush and the outbox sampler.
func (s *service) eventsStarted(ctx context.Context) {
	s.store.OnJobs(events.Enqueue(s.jobs))
	s.loops.Add(2)
	go func() {
		defer s.loops.Done()
		s.counter.Run(ctx, s.store, s.eventFlush, s.log)
	}()
	go func() {
		defer s.loops.Done()
		t := time.NewTicker(outboxSample)
		defer t.Stop()
		for {
			if depth, oldest, err := s.store.OutboxStats(ctx); err == nil {
				s.eventMetrics.Outbox(depth, oldest)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
