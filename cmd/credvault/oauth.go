package main

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"credvault/internal/credvault"
	"credvault/internal/injector"
	"credvault/internal/oauth"
)

// newOAuth wires OAuth connections: the x/oauth2 client on the egress-safe
// transport, the refresh metrics, and the proactive refresh loop.
func (s *service) newOAuth(cfg Config, client *injector.Client) *credvault.OAuthService {
	refreshes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "credvault_oauth_token_requests_total",
		Help: "OAuth token requests (exchanges and refreshes) by outcome: ok, refused (needs a reconnect), failed (transient).",
	}, []string{"outcome"})
	s.registry.MustRegister(refreshes)
	svc := &credvault.OAuthService{
		Store: s.store, Credentials: s.creds, Transit: s.vault, Audit: s.store,
		Provider:  &oauth.Client{HTTP: client.HTTPClient()},
		PublicURL: s.PublicURL(cfg),
		Refresh:   credvault.RefreshPolicy{Concurrency: cfg.OAuthRefreshConcurrency, BackoffBase: cfg.OAuthRefreshBackoff},
		OnRefresh: func(outcome string) { refreshes.WithLabelValues(outcome).Inc() },
		Events:    s.store,
	}
	s.creds.OAuth = svc
	// Once across all replicas (internal/jobs); each refresh also holds its
	// credential's lock, so a run that overlaps another never sends a
	// token request twice.
	r := &oauth.Refresher{Service: svc}
	s.jobs.Every("oauth_refresh", cfg.OAuthRefreshInterval, func(ctx context.Context) error {
		_, err := r.RunOnce(ctx)
		return err
	})
	return svc
}
