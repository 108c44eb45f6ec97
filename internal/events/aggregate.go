package events

import (
	"context"
	"strconv"
	"strings"
	"time"

	"credvault/internal/credvault"
)

// SpikeRule says when refusals are a spike. For each subject (one key, or
// the unknown keys of one org) it compares the refusals of the last Window
// with the subject's own baseline: its refusals in the Baseline before
// that window, scaled to one Window. A spike is at least Min refusals in
// the window and at least Factor times the baseline. An event is sent
// when a subject starts spiking, not again until it has been quiet (below
// the rule) for one aggregation.
//
// DefaultSpikeRule: 5 minutes against the hour before, at least 100
// refusals and 10 times the baseline. 100 in 5 minutes is a script, not a
// person mistyping; 10 times keeps a key that is always refused a little
// (an old deployment) from raising an event for every burst.
type SpikeRule struct {
	Window   time.Duration
	Baseline time.Duration
	Min      int
	Factor   float64
}

// DefaultSpikeRule is the production rule (see SpikeRule).
var DefaultSpikeRule = SpikeRule{Window: 5 * time.Minute, Baseline: time.Hour, Min: 100, Factor: 10}

// AggregateStore is what the aggregator reads and writes.
type AggregateStore interface {
	credvault.EventStore
	// RefusalWindows sums each subject's refusals since windowStart and in
	// [baselineStart, windowStart), with the last spike state told.
	RefusalWindows(ctx context.Context, windowStart, baselineStart time.Time) ([]credvault.RefusalWindow, error)
	// SetSpikeState records a subject's spike state; ev is stored (an
	// event) only when the state changed. It reports whether it did.
	SetSpikeState(ctx context.Context, orgID, subject string, spiking bool, ev *credvault.AuditEvent) (bool, error)
	// RateLimitedKeys lists keys with rate-limit hits since since.
	RateLimitedKeys(ctx context.Context, since time.Time) ([]credvault.RateLimitedKey, error)
	// PurgeRefusalCounts drops counts older than before.
	PurgeRefusalCounts(ctx context.Context, before time.Time) error
}

// Aggregator turns the counts the hot paths flushed into
// api_key.refusals_spike and api_key.rate_limited events. It runs as a
// periodic job, once across replicas.
type Aggregator struct {
	Store AggregateStore
	Rule  SpikeRule
	Now   func() time.Time
}

// Run is one aggregation: spikes, then rate-limit hits, then a purge of
// counts older than the baseline.
func (a *Aggregator) Run(ctx context.Context) error {
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	rule := a.Rule
	if rule.Window <= 0 {
		rule = DefaultSpikeRule
	}
	minute := now.UTC().Truncate(time.Minute)
	windowStart := minute.Add(-rule.Window + time.Minute)
	baselineStart := windowStart.Add(-rule.Baseline)
	wins, err := a.Store.RefusalWindows(ctx, windowStart, baselineStart)
	if err != nil {
		return err
	}
	for _, w := range wins {
		w.Baseline = float64(w.Before) * float64(rule.Window) / float64(rule.Baseline)
		spiking := w.Recent >= rule.Min && float64(w.Recent) >= rule.Factor*w.Baseline
		if spiking == w.Spiking {
			continue
		}
		var ev *credvault.AuditEvent
		if spiking {
			ev = spikeEvent(w, rule)
		}
		if _, err := a.Store.SetSpikeState(ctx, w.OrgID, w.Subject, spiking, ev); err != nil {
			return err
		}
	}
	keys, err := a.Store.RateLimitedKeys(ctx, minute.Add(-2*time.Minute))
	if err != nil {
		return err
	}
	for _, k := range keys {
		window := max(k.WindowSeconds, 60) // counts are per minute
		slot := k.LastMinute.Unix() / int64(window)
		data := map[string]any{"key_id": k.KeyID, "name": k.Name, "display": k.Display, "rate_limited": k.Hits,
			"limit": k.Limit, "window_seconds": k.WindowSeconds}
		dedupe := credvault.EventKeyRateLimited + ":" + k.KeyID + ":" + strconv.FormatInt(slot, 10)
		if err := credvault.EmitSystemEvent(ctx, a.Store, k.OrgID, credvault.EventKeyRateLimited, "api_key", k.KeyID, dedupe, data); err != nil {
			return err
		}
	}
	return a.Store.PurgeRefusalCounts(ctx, baselineStart.Add(-time.Minute))
}

func spikeEvent(w credvault.RefusalWindow, rule SpikeRule) *credvault.AuditEvent {
	data := map[string]any{"subject": w.Subject, "refusals": w.Recent, "window_seconds": int(rule.Window.Seconds()),
		"baseline": w.Baseline, "baseline_seconds": int(rule.Baseline.Seconds()), "rule_min": rule.Min, "rule_factor": rule.Factor}
	subjectID := ""
	if id, ok := strings.CutPrefix(w.Subject, "key:"); ok {
		subjectID = id
		data["key_id"], data["name"], data["display"] = id, w.KeyName, w.Display
	} else {
		data["unknown_keys"] = true
	}
	rtype, rid := "api_key", subjectID
	if subjectID == "" {
		rtype, rid = "org", w.OrgID
	}
	ev := &credvault.AuditEvent{OrgID: w.OrgID, ActorType: "system", Action: credvault.EventKeyRefusalsSpike,
		ResourceType: rtype, ResourceID: rid, Data: copyMap(data)}
	return credvault.WithEvent(ev, credvault.EventKeyRefusalsSpike, subjectID, data)
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
