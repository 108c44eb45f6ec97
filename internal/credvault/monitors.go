package credvault

import (
	"context"
	"time"
)

// CredentialMonitor is what credvault watches on a credential: a
// scheduled Test connection (IntervalSeconds, 0 = none) and the expiry of
// the stored third-party value that the person entered (ValueExpiresAt).
type CredentialMonitor struct {
	CredentialID    string       `json:"credential_id"`
	IntervalSeconds int          `json:"interval_seconds"`
	NextCheckAt     *time.Time   `json:"next_check_at"`
	HealthStatus    string       `json:"health_status"` // unknown, healthy, failing
	ValueExpiresAt  *time.Time   `json:"value_expires_at"`
	LastCheck       *HealthCheck `json:"last_check"`
}

// Health statuses.
const (
	HealthUnknown = "unknown"
	HealthHealthy = "healthy"
	HealthFailing = "failing"
)

// HealthCheck is the outcome of one scheduled check: the HTTP status
// class ("2xx" … "5xx", or "error" when no answer came), status and
// latency, and an error code; never a body.
type HealthCheck struct {
	ID          int64     `json:"id"`
	Slot        time.Time `json:"slot"` // the interval it is the check of
	OK          bool      `json:"ok"`
	StatusClass string    `json:"status_class"`
	Status      int       `json:"status"`
	LatencyMS   int       `json:"latency_ms"`
	Code        string    `json:"code"`
	CreatedAt   time.Time `json:"created_at"`
}

// Limits of a health-check schedule. A minute is the shortest interval a
// caller may ask for, so a schedule cannot turn credvault into a load
// generator against a third party; a week the longest.
const (
	MinHealthInterval = 60
	MaxHealthInterval = 7 * 24 * 3600
)

// MonitorStore persists monitors and health-check history.
type MonitorStore interface {
	// FindMonitor returns the credential's monitor (a zero one with
	// status unknown when none was set).
	FindMonitor(ctx context.Context, orgID, credentialID string) (*CredentialMonitor, error)
	// SetMonitor replaces the schedule and the value's expiry; a new
	// interval makes the first check due at once.
	SetMonitor(ctx context.Context, orgID, credentialID string, intervalSeconds int, valueExpiresAt *time.Time, ev *AuditEvent) (*CredentialMonitor, error)
	FindHealthChecks(ctx context.Context, credentialID string, cursor int64, limit int) ([]*HealthCheck, error)
	// ClaimDueHealthChecks moves every due schedule (next_check_at <= now)
	// to its next interval and queues one check job per schedule, in one
	// transaction: a slot is claimed once, whoever runs the claim.
	ClaimDueHealthChecks(ctx context.Context, now time.Time, limit int) (int, error)
	// RecordHealthCheck stores a check's outcome and the credential's new
	// status; ev (an event of the change) only when the status changed.
	// It returns the status before.
	RecordHealthCheck(ctx context.Context, credentialID string, hc *HealthCheck, status string, ev func(before string) *AuditEvent) error
}

// MonitorService reads and sets monitors, and runs scheduled checks.
type MonitorService struct {
	Store       MonitorStore
	Credentials *CredentialService
	Proxy       *ProxyService
	Now         func() time.Time
}

// MonitorInput is PUT /v1/credentials/{id}/monitor: the whole monitor.
type MonitorInput struct {
	IntervalSeconds int        // 0: no scheduled check
	ValueExpiresAt  *time.Time // nil: no expiry
}

// FindMonitor returns a credential's monitor with its last check.
// Errors: those of FindCredential.
func (s *MonitorService) FindMonitor(ctx context.Context, credentialID string) (*CredentialMonitor, error) {
	c, _, err := s.Credentials.FindCredential(ctx, credentialID)
	if err != nil {
		return nil, err
	}
	return s.Store.FindMonitor(ctx, c.OrgID, c.ID)
}

// SetMonitor sets the schedule and the value's expiry (manage
// permission). Errors: EFORBIDDEN, ENOTFOUND, EINVALID naming
// "interval_seconds" (0 or 60..604800; the credential needs a
// test_request and base_url) or "value_expires_at" (in the future).
func (s *MonitorService) SetMonitor(ctx context.Context, credentialID string, in MonitorInput) (*CredentialMonitor, error) {
	c, _, err := s.Credentials.load(ctx, credentialID, ScopeCredentialsWrite, PermissionManage)
	if err != nil {
		return nil, err
	}
	if in.IntervalSeconds != 0 {
		if in.IntervalSeconds < MinHealthInterval || in.IntervalSeconds > MaxHealthInterval {
			return nil, Errorf(EINVALID, "field \"interval_seconds\" must be 0 (no scheduled check) or from %d to %d", MinHealthInterval, MaxHealthInterval)
		}
		if c.TestRequest == nil || c.BaseURL == "" {
			return nil, Errorf(EINVALID, "field \"interval_seconds\": this credential has no test_request and base_url to check with; set them with PATCH first")
		}
	}
	if in.ValueExpiresAt != nil && !in.ValueExpiresAt.After(s.now()) {
		return nil, Errorf(EINVALID, "field \"value_expires_at\" must be in the future")
	}
	data := map[string]any{"interval_seconds": in.IntervalSeconds, "value_expires_at": in.ValueExpiresAt}
	ev := newAuditEvent(ctx, c.OrgID, "credential.monitor", "credential", c.ID, data)
	return s.Store.SetMonitor(ctx, c.OrgID, c.ID, in.IntervalSeconds, in.ValueExpiresAt, ev)
}

// FindHealthChecks is a credential's check history, newest first.
// Errors: those of FindCredential.
func (s *MonitorService) FindHealthChecks(ctx context.Context, credentialID string, cursor int64, limit int) ([]*HealthCheck, error) {
	c, _, err := s.Credentials.FindCredential(ctx, credentialID)
	if err != nil {
		return nil, err
	}
	return s.Store.FindHealthChecks(ctx, c.ID, cursor, limit)
}

// SystemPrincipal is the caller of work credvault does by itself in an
// org (a scheduled check): it may use and read every credential of the
// org and nothing else. Audit records name actor type "system".
func SystemPrincipal(orgID string) *Principal {
	return &Principal{OrgID: orgID, Kind: "system", Role: RoleOwner, Scopes: []string{ScopeCredentialsRead, ScopeCredentialsUse}}
}

// RunHealthCheck runs the credential's Test connection for one slot as
// the system, stores the outcome, and emits credential.health_failed or
// credential.health_recovered when the status changed (a first failure
// counts as a change; a first success does not). Errors: the store's;
// ENOTFOUND when the credential is gone.
func (s *MonitorService) RunHealthCheck(ctx context.Context, orgID, credentialID string, slot time.Time) (*HealthCheck, error) {
	ctx = WithCaller(ctx, SystemPrincipal(orgID), "")
	hc := &HealthCheck{Slot: slot}
	res, c, err := s.Proxy.test(ctx, credentialID)
	switch {
	case ErrorCode(err) == ENOTFOUND:
		return nil, err
	case err != nil:
		hc.StatusClass, hc.Code = "error", ErrorReason(err)
		if hc.Code == "" {
			hc.Code = ErrorCode(err)
		}
	default:
		hc.OK, hc.Status, hc.LatencyMS, hc.Code = res.OK, res.Status, int(res.LatencyMS), res.Code
		hc.StatusClass = statusClass(res.Status)
	}
	status := HealthFailing
	if hc.OK {
		status = HealthHealthy
	}
	name := ""
	if c != nil {
		name = c.Name
	}
	err = s.Store.RecordHealthCheck(ctx, credentialID, hc, status, func(before string) *AuditEvent {
		var typ string
		switch {
		case status == HealthFailing && before != HealthFailing:
			typ = EventHealthFailed
		case status == HealthHealthy && before == HealthFailing:
			typ = EventHealthRecovered
		default:
			return nil
		}
		data := map[string]any{"credential_id": credentialID, "name": name, "status": hc.Status,
			"status_class": hc.StatusClass, "latency_ms": hc.LatencyMS, "code": hc.Code, "previous": before}
		ev := newAuditEvent(ctx, orgID, typ, "credential", credentialID, copyData(data))
		return WithEvent(ev, typ, credentialID, data)
	})
	return hc, err
}

// statusClass is "2xx" … "5xx" for an HTTP status, "error" for none.
func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "error"
	}
	return string(rune('0'+status/100)) + "xx"
}

func (s *MonitorService) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}
