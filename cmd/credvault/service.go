package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"credvault/internal/apikey"
	"credvault/internal/console"
	"credvault/internal/credvault"
	"credvault/internal/events"
	"credvault/internal/httpapi"
	"credvault/internal/injector"
	"credvault/internal/jobs"
	"credvault/internal/postgres"
	"credvault/internal/telemetry"
	"credvault/migrations"
	"credvault/vault"
)

// service is a running credvault: its database, its Vault client, the
// key verifier with its background loops, and its HTTP server.
type service struct {
	db       *sqlx.DB
	store    *postgres.Store
	vault    *vault.Client
	verifier *apikey.Verifier
	minter   apikey.Minter
	signing  *apikey.SigningKeys
	creds    *credvault.CredentialService
	values   *credvault.ValueCache
	usage    *postgres.UsageWriter
	follower *postgres.Follower // key_state_log -> caches
	issuer   string             // iss of JWT API keys
	jobs     *jobs.Runner       // background work once across replicas
	sessions *credvault.SessionService
	console  *console.Console
	http     *httpapi.Server
	ln       net.Listener
	log      *slog.Logger
	registry *prometheus.Registry
	metrics  *telemetry.Metrics
	redis    redis.UniversalClient // nil without REDIS_URL
	fanout   *keyStateFanout       // key state changes through Redis; nil without REDIS_URL

	// The event stream (events.go).
	webhooks     *credvault.WebhookService
	monitors     *credvault.MonitorService
	sender       *events.Sender
	counter      *events.Counter
	eventMetrics *telemetry.EventMetrics
	eventFlush   time.Duration

	oauth *credvault.OAuthService

	loopsCtx  context.Context // ends at close
	stopLoops context.CancelFunc
	loops     sync.WaitGroup
}

// startOptions differ between serve and dev.
type startOptions struct {
	createTransitKey bool             // dev only: enable transit and create the derived key
	disableKeyCache  bool             // bench only: every key verification reads PostgreSQL
	ln               net.Listener     // already listening (dev opens it first); nil: listen on cfg.Addr
	events           eventOptions     // tests shorten the event stream's periods
	now              func() time.Time // tests only: the clock that picks the JWT signing-key version; nil: time.Now
}

// startService connects to PostgreSQL and applies migrations, connects to
// Vault and checks the transit key, and opens the listener. Anything it
// opened is closed again when it fails.
func startService(ctx context.Context, cfg Config, log *slog.Logger, opts startOptions) (_ *service, err error) {
	s := &service{log: log, registry: prometheus.NewRegistry()}
	s.metrics = telemetry.New(s.registry)
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	// The address first: a port in use is one line, before anything starts.
	if s.ln = opts.ln; s.ln == nil {
		if s.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			return nil, listenError(cfg.Addr, err)
		}
	}
	if s.db, err = openDatabase(startCtx, cfg, log); err != nil {
		return nil, err
	}
	vcfg := cfg.vaultConfig(log)
	vcfg.Observe = s.metrics.VaultCall
	if s.vault, err = vault.New(startCtx, vcfg); err != nil {
		return nil, err
	}
	if opts.createTransitKey {
		err = s.vault.EnsureKey(startCtx)
		if err == nil {
			err = s.vault.EnsureSigningKey(startCtx, cfg.SigningKey)
		}
	} else {
		err = s.vault.CheckKey(startCtx)
		if err == nil {
			err = s.vault.CheckSigningKey(startCtx, cfg.SigningKey)
		}
	}
	if err != nil {
		return nil, err
	}
	s.signing = apikey.NewSigningKeys(s.vault.SigningKey(cfg.SigningKey), log)
	if err = s.signing.Refresh(startCtx); err != nil {
		return nil, err
	}
	s.store = postgres.NewStore(s.db)
	// The installation's own name, created once in the database: the same
	// on every replica whatever its configuration. iss: CREDVAULT_ISSUER,
	// else the public URL, else that name.
	installation, err := s.store.InstallationIssuer(startCtx)
	if err != nil {
		return nil, err
	}
	issuer := cmp.Or(cfg.Issuer, cfg.PublicURL, installation)
	s.issuer = issuer

	s.minter = apikey.Minter{Prefix: cfg.KeyPrefix}
	limiter, rdb, err := newLimiter(startCtx, cfg, log)
	if err != nil {
		return nil, err
	}
	s.redis = rdb
	s.verifier = apikey.NewVerifier(s.store, limiter, apikey.VerifierOptions{Prefix: cfg.KeyPrefix, Logger: log, DisableCache: opts.disableKeyCache,
		SigningKeys: s.signing, Issuer: issuer})
	st := s.verifier.Stats()
	s.metrics.WatchVerifier(telemetry.VerifierCounters{
		CacheHits: st.CacheHits.Load, CacheMisses: st.DBLookups.Load, CacheNegative: st.UnknownFast.Load,
		RateAllowed: st.RateAllowed.Load, RateLimited: st.RateLimited.Load,
	})
	s.values = credvault.NewValueCache(cfg.SecretCacheTTL)
	s.usage = postgres.NewUsageWriter(s.store, log, time.Second)
	s.sessions = &credvault.SessionService{Store: s.store, Users: s.store, Audit: s.store, Verifier: s.verifier, Keys: s.store,
		SigningMinVersion: s.signing.MinVersion,
		Limit: func(ctx context.Context, keyID string, rl credvault.RateLimit) (bool, time.Duration) {
			d, err := limiter.Allow(ctx, keyID, apikey.Limit{Requests: rl.Requests, Window: time.Duration(rl.WindowSeconds) * time.Second})
			return err != nil || d.Allowed, d.RetryAfter
		}}
	if s.redis != nil {
		// The channel is named from the installation's name in the
		// database (above), which every instance on it reads alike: an
		// instance with another CREDVAULT_ISSUER or CREDVAULT_PUBLIC_URL
		// (mid-rollout, or set on some instances only) still hears the
		// others. What arrives through Redis only drops cache entries
		// (anyone who reaches Redis can publish): it adds nothing to the
		// known-key set.
		s.fanout = newKeyStateFanout(s.redis, installation, cfg.RedisTimeout, log, func(payload string) {
			s.verifier.Drop(payload)
			s.values.Invalidate(payload)
		}, s.metrics.KeyStateFanout)
	}
	// A commit's changes apply here at once, then go to the other
	// instances through Redis in one round trip (one wait when Redis
	// hangs, however many keys the commit changed).
	s.store.OnInvalidate(func(payloads ...string) {
		for _, p := range payloads {
			s.invalidate(p)
		}
		if s.fanout != nil {
			s.fanout.publish(payloads...)
		}
	})
	s.follower = postgres.NewFollower(s.db, cfg.DatabaseURL.Reveal(), log, cfg.MaxStaleness, s.invalidate, func() {
		s.values.Reset()
		s.verifier.RequestReset()
	}, s.metrics.ListenReconnect)
	s.metrics.WatchKeyState(s.follower.LastSeq, s.follower.Age)
	// The proactive OAuth refresh is a job; polling at least as often as
	// it runs keeps a short CREDVAULT_OAUTH_REFRESH_INTERVAL honest.
	jobPoll := jobs.DefaultPollInterval
	if opts.events.jobPoll > 0 {
		jobPoll = opts.events.jobPoll
	}
	s.jobs = jobs.New(s.db.DB, jobs.Config{Logger: log, PollInterval: min(jobPoll, cfg.OAuthRefreshInterval),
		RescueAfter: jobRescueAfter})
	s.jobs.Every("purge_sessions", sessionPurgeInterval, func(ctx context.Context) error {
		n, err := s.sessions.Purge(ctx)
		if n > 0 {
			log.Debug("purged ended console sessions and sign-in links", "rows", n)
		}
		return err
	})
	s.jobs.Every("prune_key_state_log", postgres.StateLogPruneEvery, s.follower.Prune)
	s.startLoops(cfg)
	// The listener loads the known-key set once LISTEN is in effect; wait
	// for it (about 1 s a million keys, credvault bench --keys), so the
	// instance does not send unknown keys to the database while it loads.
	// /readyz reports the set if the wait runs out.
	if err := s.verifier.WaitLoaded(startCtx); err != nil {
		log.Warn("known API keys not loaded yet; serving while they load (see /readyz)")
	}

	users := &credvault.UserService{Store: s.store}
	keys := &credvault.APIKeyService{Store: s.store, Users: s.store, Minter: s.minter, JWT: &apikey.JWTIssuer{Keys: s.signing, Issuer: issuer, VersionNow: opts.now},
		Integrations: s.store}
	integrations := &credvault.IntegrationService{Store: s.store}
	s.creds = &credvault.CredentialService{Store: s.store, Users: s.store, Audit: s.store, Transit: s.vault, Values: s.values, ReservedHeaders: cfg.AuthHeaders}
	client := injector.NewClient(injector.ClientOptions{AllowPrivate: cfg.EgressAllowPrivate, AllowLoopbackPorts: cfg.EgressLoopbackPorts,
		RootCAs: cfg.UpstreamCAs, HTTP1Only: cfg.UpstreamHTTP1Only})
	proxy := &credvault.ProxyService{Credentials: s.creds, Outbound: outbound{client}, Usage: s.usage, Audit: s.store,
		Observe: s.metrics.ProxyCall}
	s.monitors = &credvault.MonitorService{Store: s.store, Credentials: s.creds, Proxy: proxy}
	s.wireEvents(cfg, opts.events)
	s.oauth = s.newOAuth(cfg, client)
	services := httpapi.Services{
		OAuth:        s.oauth,
		Credentials:  s.creds,
		Proxy:        proxy,
		Webhooks:     s.webhooks,
		Monitors:     s.monitors,
		Audit:        &credvault.AuditService{Store: s.store},
		Rewrap:       &credvault.RewrapService{Store: s.store, Audit: s.store, Vault: s.vault, Log: log},
		Users:        users,
		Keys:         keys,
		Endpoints:    &credvault.EndpointService{Store: s.store},
		Verify:       &credvault.VerifyService{Verifier: s.verifier, Endpoints: s.store},
		Verifier:     s.verifier,
		Sessions:     s.sessions,
		JWKS:         s.signing,
		Integrations: integrations,
	}
	s.console, err = console.New(console.Config{
		Services: console.Services{
			Sessions: s.sessions, Users: users, Keys: keys, Endpoints: services.Endpoints, Credentials: s.creds,
			Proxy: services.Proxy, Audit: services.Audit,
			Stats:    &credvault.StatsService{Keys: keys, Credentials: s.creds, Store: s.store},
			Webhooks: s.webhooks, Monitors: s.monitors,
			Integrations: integrations,
			Activity:     &credvault.ActivityService{Store: s.store, Audit: services.Audit},
			OAuth:        s.oauth,
		},
		PublicURL: cfg.PublicURL,
		Logger:    log,
		RequestID: httpapi.RequestID,
	})
	if err != nil {
		return nil, &configError{"CREDVAULT_PUBLIC_URL", credvault.ErrorMessage(err)}
	}
	s.http = httpapi.NewServer(httpapi.Config{
		Services:    services,
		Console:     s.console,
		PublicURL:   cfg.PublicURL,
		AuthHeaders: cfg.AuthHeaders,
		KeyPrefix:   cfg.KeyPrefix,
		Logger:      log,
		Registry:    s.registry,
		Telemetry:   s.metrics,
		Readiness:   s.readiness(),
		Refusals:    s.counter,
		JWTIssuer:   issuer,
	})
	// Every worker is registered by now: start the jobs that run once
	// across all instances.
	if err = s.jobs.Start(s.loopsCtx); err != nil {
		return nil, err
	}
	s.eventsStarted(s.loopsCtx)
	return s, nil
}

// openDatabase connects to PostgreSQL and applies pending migrations, as
// every command that touches data does first.
func openDatabase(ctx context.Context, cfg Config, log *slog.Logger) (*sqlx.DB, error) {
	db, err := postgres.Open(ctx, cfg.DatabaseURL.Reveal())
	if err != nil {
		return nil, err
	}
	applied, err := postgres.Migrate(ctx, db, migrations.FS)
	if err != nil {
		db.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
		return nil, err
	}
	for _, m := range applied {
		log.Info("migration applied", "version", m.Version, "name", m.Name)
	}
	// The job queue's own tables (internal/jobs), versioned by River.
	if err := jobs.Migrate(ctx, db.DB); err != nil {
		db.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
		return nil, credvault.Wrap(credvault.EUNAVAILABLE, err, "job queue tables could not be migrated")
	}
	return db, nil
}

// vaultConfig is the Vault client's share of the configuration.
func (cfg Config) vaultConfig(log *slog.Logger) vault.Config {
	return vault.Config{
		Addr: cfg.VaultAddr, Token: cfg.VaultToken, TokenFile: cfg.VaultTokenFile, RoleID: cfg.VaultRoleID, SecretID: cfg.VaultSecretID,
		Mount: cfg.TransitMount, Key: cfg.TransitKey, Logger: log,
	}
}

// PublicURL is CREDVAULT_PUBLIC_URL when set, else URL().
func (s *service) PublicURL(cfg Config) string {
	if cfg.PublicURL != "" {
		return cfg.PublicURL
	}
	return s.URL()
}

// URL is the base URL clients use, with a loopback host when the listener
// is on every interface.
func (s *service) URL() string {
	addr := s.ln.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(addr.Port))
}

// serve answers requests until ctx ends, then drains and closes everything.
func (s *service) serve(ctx context.Context) error {
	defer s.close()
	return s.http.Serve(ctx, s.ln)
}

// startLoops runs the background work: the signing key refresh, the
// LISTEN/NOTIFY subscription that keeps every instance's caches current,
// the verifier's write-backs and reloads, the usage writer; and the jobs
// that run once across all instances (s.jobs), started last, once every
// worker is registered.
func (s *service) startLoops(cfg Config) {
	ctx, cancel := context.WithCancel(context.Background())
	s.loopsCtx, s.stopLoops = ctx, cancel
	s.loops.Add(4)
	if s.fanout != nil {
		s.loops.Add(1)
		go func() {
			defer s.loops.Done()
			s.fanout.run(ctx)
		}()
	}
	go func() {
		defer s.loops.Done()
		s.signing.Run(ctx, credvault.SigningKeyRefresh)
	}()
	go func() {
		defer s.loops.Done()
		s.follower.Run(ctx)
	}()
	go func() {
		defer s.loops.Done()
		s.verifier.Run(ctx)
	}()
	go func() {
		defer s.loops.Done()
		s.usage.Run(ctx)
	}()
}

// sessionPurgeInterval is how often ended console sessions and expired
// sign-in links are deleted (once across all instances).
const sessionPurgeInterval = 10 * time.Minute

// invalidate hands one invalidation (from this instance's own commit, from
// LISTEN/NOTIFY or the key state log) to every cache; one from another
// instance through Redis goes to the same caches, but only drops entries
// (see startService).
func (s *service) invalidate(payload string) {
	s.verifier.Invalidate(payload)
	s.values.Invalidate(payload)
}

// outbound adapts the injector to the domain's Outbound interface.
type outbound struct{ client *injector.Client }

func (o outbound) Apply(req *http.Request, c *credvault.Credential, v credvault.Secret) error {
	return injector.Apply(req, c, v)
}

func (o outbound) Send(req *http.Request, c *credvault.Credential, v credvault.Secret) (*http.Response, error) {
	return o.client.Do(req, c, v)
}

func (s *service) close() {
	if s.ln != nil {
		s.ln.Close() // #nosec G104 -- after Serve it is already closed: harmless
	}
	if s.jobs != nil {
		// Jobs first: a job in flight may still use the loops' caches.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.jobs.Stop(ctx)
		cancel()
	}
	if s.stopLoops != nil {
		s.stopLoops()
		s.loops.Wait()
	}
	if s.vault != nil {
		s.vault.Close()
	}
	if s.redis != nil {
		s.redis.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
	}
	if s.db != nil {
		s.db.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
	}
}

func runServe(ctx context.Context, cfg Config, log *slog.Logger, stdout io.Writer) error {
	if err := cfg.requireProduction("serve"); err != nil {
		return err
	}
	s, err := startService(ctx, cfg, log, startOptions{})
	if err != nil {
		return err
	}
	log.Info("credvault serving", "url", s.URL())
	fmt.Fprintf(stdout, "credvault listening on %s\n", s.URL())
	return s.serve(ctx)
}

func runMigrate(ctx context.Context, cfg Config, args []string, stdout io.Writer) error {
	sub := "up"
	if len(args) > 0 {
		sub = args[0]
	}
	if len(args) > 1 || (sub != "up" && sub != "status") {
		return fmt.Errorf("usage: credvault migrate [up|status]")
	}
	if cfg.DatabaseURL.IsZero() {
		return &configError{"DATABASE_URL", "required by `credvault migrate`"}
	}
	db, err := postgres.Open(ctx, cfg.DatabaseURL.Reveal())
	if err != nil {
		return err
	}
	defer db.Close()
	if sub == "status" {
		all, err := postgres.MigrationStatus(ctx, db, migrations.FS)
		if err != nil {
			return err
		}
		for _, m := range all {
			fmt.Fprintln(stdout, m)
		}
		return nil
	}
	applied, err := postgres.Migrate(ctx, db, migrations.FS)
	if err != nil {
		return err
	}
	if err := jobs.Migrate(ctx, db.DB); err != nil {
		return credvault.Wrap(credvault.EUNAVAILABLE, err, "job queue tables could not be migrated")
	}
	for _, m := range applied {
		fmt.Fprintln(stdout, m)
	}
	fmt.Fprintf(stdout, "%d migration(s) applied; database is current\n", len(applied))
	return nil
}

// readiness lists what /readyz checks. The instance cannot serve without
// its known-key set (api_keys) and a recent read of the key state log
// (key_state: without it a revoked key may still be accepted from cache).
// PostgreSQL, Vault and Redis are degradable: while one is down, key
// checks and proxied calls are answered from caches (rate limits fall
// back to per instance without Redis), and writes that need it answer 503
// with Retry-After; /readyz?strict=1 requires them all.
func (s *service) readiness() []httpapi.ReadinessCheck {
	checks := []httpapi.ReadinessCheck{
		{Name: "api_keys", Check: s.verifier.Loaded},
		{Name: "key_state", Check: s.follower.Fresh},
		{Name: "postgres", Check: func(ctx context.Context) error { return postgres.PingWritable(ctx, s.db) }, Degradable: true},
		{Name: "vault", Check: s.vault.Health, Degradable: true},
	}
	if s.redis != nil {
		checks = append(checks, httpapi.ReadinessCheck{Name: "redis", Degradable: true, Check: func(ctx context.Context) error {
			if err := s.redis.Ping(ctx).Err(); err != nil {
				return credvault.Errorf(credvault.EUNAVAILABLE, "redis does not answer; rate limits are per instance until it does")
			}
			return nil
		}})
	}
	return checks
}

// newLimiter is the in-process token bucket, or with REDIS_URL the limiter
// every instance shares (falling back to the local one while Redis is down)
// and its Redis client.
func newLimiter(ctx context.Context, cfg Config, log *slog.Logger) (apikey.Limiter, redis.UniversalClient, error) {
	local := apikey.NewLocalLimiter()
	if cfg.RedisURL.IsZero() {
		return local, nil, nil
	}
	target, err := parseRedisURL(cfg.RedisURL.Reveal())
	if err != nil {
		return nil, nil, &configError{"REDIS_URL", err.Error()}
	}
	setRedisLogger(log)
	rdb := target.client() // abandoned calls end at the limiter's deadline
	if err := rdb.Ping(ctx).Err(); err != nil {
		log.Warn("redis does not answer; rate limits are per instance until it does", "error", err.Error())
	}
	return apikey.NewRedisLimiter(rdb, "credvault:ratelimit:", local, log).WithTimeout(cfg.RedisTimeout), rdb, nil
}
