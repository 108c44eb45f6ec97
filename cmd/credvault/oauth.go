package main

import (
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
	}
	s.creds.OAuth = svc
	r := &oauth.Refresher{Service: svc, Interval: cfg.OAuthRefreshInterval, Log: s.log}
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		r.Run(s.loopCtx)
	}()
	return svc
}
