package events

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"credvault/internal/credvault"
	"credvault/internal/injector"
)

// Store is what the sender reads and writes.
type Store interface {
	// FindOutgoing loads a delivery with its event and webhook; ENOTFOUND
	// when it or its webhook is gone.
	FindOutgoing(ctx context.Context, deliveryID int64) (*credvault.Outgoing, error)
	// RecordAttempt appends an attempt and sets the delivery's status.
	RecordAttempt(ctx context.Context, deliveryID int64, a credvault.Attempt, status string, next *time.Time) error
}

// Backoff is the retry schedule of a delivery: the n-th failed attempt
// (n from 1) waits First·2^(n-1), at most Max, and a delivery whose event
// is older than GiveUpAfter is failed for good. The defaults (5 s doubling
// to 1 h, for 24 h) follow the Standard Webhooks specification's advice of
// exponential back-off over about a day; they make some 30 attempts.
type Backoff struct {
	First       time.Duration
	Max         time.Duration
	GiveUpAfter time.Duration
}

// DefaultBackoff is the production schedule.
var DefaultBackoff = Backoff{First: 5 * time.Second, Max: time.Hour, GiveUpAfter: 24 * time.Hour}

// Next returns when to try again after the n-th failed attempt of an
// event created at eventAt, or ok false when the 24 h are over.
func (b Backoff) Next(n int, eventAt, now time.Time) (at time.Time, ok bool) {
	d := b.First
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	at = now.Add(d)
	if at.Sub(eventAt) > b.GiveUpAfter {
		return time.Time{}, false
	}
	return at, true
}

// Sender sends deliveries: loads one, signs its body with the webhook's
// secret (decrypted through transit, cached per ciphertext), POSTs it
// through the egress-checked client that never follows a redirect, and
// records the attempt. It is safe for concurrent use.
type Sender struct {
	Store   Store
	Transit credvault.Transit
	Client  *http.Client
	Backoff Backoff
	Log     *slog.Logger
	// Observe, when set, is told each attempt's outcome ("delivered",
	// "retry", "failed") and latency.
	Observe func(outcome string, latency time.Duration)
	Now     func() time.Time

	mu      sync.Mutex
	secrets map[string]credvault.Secret // by ciphertext
}

// Outcome of one Send.
type Outcome struct {
	Done    bool          // delivered, or failed for good, or gone
	RetryIn time.Duration // when not Done: wait this long, then Send again
}

// maxResponse is how much of a receiver's answer is read (and dropped) so
// the connection can be reused; the body is never stored.
const maxResponse = 64 << 10

// Send makes one attempt of a delivery. A 2xx answer delivers it; any
// other answer, a timeout or a refused address is a failed attempt,
// retried on the Backoff schedule. A delivery no longer pending is not
// sent, unless force (a manual redelivery's first run). err is for
// credvault's own trouble (PostgreSQL, Vault): the job is retried as it
// stands.
func (s *Sender) Send(ctx context.Context, deliveryID int64, force bool) (Outcome, error) {
	out, err := s.Store.FindOutgoing(ctx, deliveryID)
	if credvault.ErrorCode(err) == credvault.ENOTFOUND {
		return Outcome{Done: true}, nil // the webhook or the delivery was deleted
	}
	if err != nil {
		return Outcome{}, err
	}
	if out.Delivery.Status != credvault.DeliveryPending && !force {
		return Outcome{Done: true}, nil // delivered (or given up) by an earlier run of this job
	}
	secret, err := s.secret(ctx, out.Webhook)
	if err != nil {
		return Outcome{}, err
	}
	body, err := Body(out.Event)
	if err != nil {
		return Outcome{}, err
	}
	now := s.now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, out.Webhook.URL, bytes.NewReader(body))
	if err != nil {
		return Outcome{}, credvault.Wrap(credvault.EINTERNAL, err, "build webhook request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "credvault-webhooks/1")
	if err := Sign(req.Header, secret, out.Event.MessageID(), now, body); err != nil {
		return Outcome{}, err
	}
	start := time.Now()
	resp, err := s.Client.Do(req)
	a := credvault.Attempt{}
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
		resp.Body.Close()
		a.Status = resp.StatusCode
	} else {
		a.Error = attemptError(err)
	}
	latency := time.Since(start)
	a.LatencyMS = int(latency.Milliseconds())
	if a.Status >= 200 && a.Status < 300 {
		s.observe("delivered", latency)
		return Outcome{Done: true}, s.Store.RecordAttempt(ctx, deliveryID, a, credvault.DeliveryDelivered, nil)
	}
	if a.Error == "" {
		a.Error = "receiver answered " + strconv.Itoa(a.Status)
	}
	next, ok := s.backoff().Next(out.Delivery.Attempts+1, out.Event.CreatedAt, s.now())
	if !ok {
		s.observe("failed", latency)
		return Outcome{Done: true}, s.Store.RecordAttempt(ctx, deliveryID, a, credvault.DeliveryFailed, nil)
	}
	s.observe("retry", latency)
	if err := s.Store.RecordAttempt(ctx, deliveryID, a, credvault.DeliveryPending, &next); err != nil {
		return Outcome{}, err
	}
	return Outcome{RetryIn: max(time.Until(next), time.Millisecond)}, nil
}

// attemptError names what went wrong without a body or secret: timeout,
// refused address, connection failure.
func attemptError(err error) string {
	var ce *credvault.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.As(err, &ce):
		return credvault.ErrorMessage(err)
	case isPrivate(err):
		return "refused: the URL resolves to a private address (egress policy)"
	}
	return "connection failed"
}

func (s *Sender) secret(ctx context.Context, w *credvault.Webhook) (credvault.Secret, error) {
	s.mu.Lock()
	v, ok := s.secrets[w.SecretCiphertext]
	s.mu.Unlock()
	if ok {
		return v, nil
	}
	pt, err := s.Transit.Decrypt(ctx, w.SecretCiphertext, credvault.WebhookContext(w.OrgID, w.ID))
	if err != nil {
		return credvault.Secret{}, err
	}
	v = credvault.NewSecret(string(pt))
	s.mu.Lock()
	if s.secrets == nil || len(s.secrets) > 10000 {
		s.secrets = map[string]credvault.Secret{}
	}
	s.secrets[w.SecretCiphertext] = v
	s.mu.Unlock()
	return v, nil
}

func (s *Sender) backoff() Backoff {
	if s.Backoff.First <= 0 {
		return DefaultBackoff
	}
	return s.Backoff
}

func (s *Sender) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Sender) observe(outcome string, d time.Duration) {
	if s.Observe != nil {
		s.Observe(outcome, d)
	}
}

// isPrivate reports whether err is the dialer refusing a private address.
func isPrivate(err error) bool { return errors.Is(err, injector.ErrPrivateAddress) }
