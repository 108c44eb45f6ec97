package events

import (
	"context"
	"strconv"
	"time"

	"credvault/internal/credvault"
)

// ReminderStore is what reminders read and write.
type ReminderStore interface {
	credvault.EventStore
	// FindExpiring lists active keys expiring in (from, to] and credential
	// values expiring in (now, to].
	FindExpiring(ctx context.Context, from, now, to time.Time) ([]credvault.Expiring, error)
}

// Reminder thresholds: api_key.expiring and credential.expiring are sent
// 7 days and 1 day before expires_at (the tighter one only, when a key is
// created closer than 7 days to its end); api_key.expired once after it.
// Keys that expired more than ExpiredLookback ago (before credvault told
// of expiries) get no event.
const (
	RemindWeek      = 7 * 24 * time.Hour
	RemindDay       = 24 * time.Hour
	ExpiredLookback = 7 * 24 * time.Hour
)

// Remind emits the reminders due at now. Each is sent once: its dedupe key
// names the thing, the threshold and the expiry (a new expires_at is a new
// reminder). It runs as a periodic job, once across replicas.
func Remind(ctx context.Context, store ReminderStore, now time.Time) error {
	list, err := store.FindExpiring(ctx, now.Add(-ExpiredLookback), now, now.Add(RemindWeek))
	if err != nil {
		return err
	}
	for _, x := range list {
		left := x.ExpiresAt.Sub(now)
		var typ, threshold string
		switch {
		case left <= 0 && x.Kind == "api_key":
			typ, threshold = credvault.EventKeyExpired, "expired"
		case left <= 0:
			continue
		case left <= RemindDay:
			threshold = "1d"
		default:
			threshold = "7d"
		}
		if typ == "" {
			typ = credvault.EventKeyExpiring
			if x.Kind == "credential" {
				typ = credvault.EventCredentialExpiring
			}
		}
		data := map[string]any{x.Kind + "_id": x.ID, "name": x.Name, "expires_at": x.ExpiresAt.UTC(),
			"seconds_left": max(int64(left.Seconds()), 0), "threshold": threshold}
		if x.Display != "" {
			data["display"] = x.Display
		}
		dedupe := typ + ":" + x.ID + ":" + threshold + ":" + strconv.FormatInt(x.ExpiresAt.Unix(), 10)
		if err := credvault.EmitSystemEvent(ctx, store, x.OrgID, typ, x.Kind, x.ID, dedupe, data); err != nil {
			return err
		}
	}
	return nil
}
