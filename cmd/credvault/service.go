package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"credvault/internal/apikey"
	"credvault/internal/credvault"
	"credvault/internal/httpapi"
	"credvault/internal/injector"
	"credvault/internal/postgres"
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
	creds    *credvault.CredentialService
	values   *credvault.ValueCache
	usage    *postgres.UsageWriter
	http     *httpapi.Server
	ln       net.Listener
	log      *slog.Logger

	stopLoops context.CancelFunc
	loops     sync.WaitGroup
}

// startOptions differ between serve and dev.
type startOptions struct {
	createTransitKey bool // dev only: enable transit and create the derived key
	disableKeyCache  bool // bench only: every key verification reads PostgreSQL
}

// startService connects to PostgreSQL and applies migrations, connects to
// Vault and checks the transit key, and opens the listener. Anything it
// opened is closed again when it fails.
func startService(ctx context.Context, cfg Config, log *slog.Logger, opts startOptions) (_ *service, err error) {
	s := &service{log: log}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	if s.db, err = openDatabase(startCtx, cfg, log); err != nil {
		return nil, err
	}
	if s.vault, err = vault.New(startCtx, cfg.vaultConfig(log)); err != nil {
		return nil, err
	}
	if opts.createTransitKey {
		err = s.vault.EnsureKey(startCtx)
	} else {
		err = s.vault.CheckKey(startCtx)
	}
	if err != nil {
		return nil, err
	}

	s.store = postgres.NewStore(s.db)
	s.minter = apikey.Minter{Prefix: cfg.KeyPrefix}
	limiter, err := newLimiter(startCtx, cfg, log)
	if err != nil {
		return nil, err
	}
	s.verifier = apikey.NewVerifier(s.store, limiter, apikey.VerifierOptions{Prefix: cfg.KeyPrefix, Logger: log, DisableCache: opts.disableKeyCache})
	s.values = credvault.NewValueCache(cfg.SecretCacheTTL)
	s.usage = postgres.NewUsageWriter(s.store, log, time.Second)
	s.store.OnInvalidate(s.invalidate)
	s.startLoops(cfg)

	users := &credvault.UserService{Store: s.store}
	s.creds = &credvault.CredentialService{Store: s.store, Users: s.store, Transit: s.vault, Values: s.values, ReservedHeaders: cfg.AuthHeaders}
	client := injector.NewClient(injector.ClientOptions{AllowPrivate: cfg.EgressAllowPrivate})
	s.http = httpapi.NewServer(httpapi.Config{
		Services: httpapi.Services{
			Credentials: s.creds,
			Proxy:       &credvault.ProxyService{Credentials: s.creds, Outbound: outbound{client}, Usage: s.usage, Audit: s.store},
			Audit:       &credvault.AuditService{Store: s.store},
			Rewrap:      &credvault.RewrapService{Store: s.store, Audit: s.store, Vault: s.vault, Log: log},
			Users:       users,
			Keys:        &credvault.APIKeyService{Store: s.store, Users: s.store, Minter: s.minter},
			Endpoints:   &credvault.EndpointService{Store: s.store},
			Verify:      &credvault.VerifyService{Verifier: s.verifier, Endpoints: s.store},
			Verifier:    s.verifier,
		},
		AuthHeaders: cfg.AuthHeaders,
		KeyPrefix:   cfg.KeyPrefix,
		Logger:      log,
		Readiness: []httpapi.ReadinessCheck{
			{Name: "postgres", Check: func(ctx context.Context) error { return postgres.Ping(ctx, s.db) }},
			{Name: "vault", Check: s.vault.Health},
		},
	})
	if s.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return nil, fmt.Errorf("CREDVAULT_ADDR: cannot listen on %s: %w", cfg.Addr, err)
	}
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
		db.Close()
		return nil, err
	}
	for _, m := range applied {
		log.Info("migration applied", "version", m.Version, "name", m.Name)
	}
	return db, nil
}

// vaultConfig is the Vault client's share of the configuration.
func (cfg Config) vaultConfig(log *slog.Logger) vault.Config {
	return vault.Config{
		Addr: cfg.VaultAddr, Token: cfg.VaultToken, RoleID: cfg.VaultRoleID, SecretID: cfg.VaultSecretID,
		Mount: cfg.TransitMount, Key: cfg.TransitKey, Logger: log,
	}
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

// startLoops runs the verifier's background work: the LISTEN/NOTIFY
// subscription that keeps every instance's key cache current, and the
// batched last_used_at write-back.
func (s *service) startLoops(cfg Config) {
	ctx, cancel := context.WithCancel(context.Background())
	s.stopLoops = cancel
	s.loops.Add(3)
	go func() {
		defer s.loops.Done()
		reset := func() {
			s.values.Reset()
			s.verifier.Reset(ctx)
		}
		if err := postgres.Listen(ctx, cfg.DatabaseURL.Reveal(), s.log, s.invalidate, reset); err != nil {
			s.log.Error("invalidation listener stopped", "error", err.Error())
		}
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

// invalidate hands one invalidation (from this instance's own commit or
// from LISTEN/NOTIFY) to every cache.
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
	if s.stopLoops != nil {
		s.stopLoops()
		s.loops.Wait()
	}
	if s.vault != nil {
		s.vault.Close()
	}
	if s.db != nil {
		s.db.Close()
	}
}

func runServe(ctx context.Context, cfg Config, log *slog.Logger, stdout io.Writer) error {
	if err := cfg.requireProduction(); err != nil {
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
	for _, m := range applied {
		fmt.Fprintln(stdout, m)
	}
	fmt.Fprintf(stdout, "%d migration(s) applied; database is current\n", len(applied))
	return nil
}

// newLimiter is the in-process token bucket, or with REDIS_URL the limiter
// every instance shares (falling back to the local one while Redis is down).
func newLimiter(ctx context.Context, cfg Config, log *slog.Logger) (apikey.Limiter, error) {
	local := apikey.NewLocalLimiter()
	if cfg.RedisURL.IsZero() {
		return local, nil
	}
	opts, err := redis.ParseURL(cfg.RedisURL.Reveal())
	if err != nil {
		return nil, &configError{"REDIS_URL", "not a valid redis:// URL"}
	}
	opts.ContextTimeoutEnabled = true // abandoned calls end at the limiter's deadline
	rdb := redis.NewClient(opts)
	if err := rdb.Ping(ctx).Err(); err != nil {
		log.Warn("redis does not answer; rate limits are per instance until it does", "error", err.Error())
	}
	return apikey.NewRedisLimiter(rdb, "credvault:ratelimit:", local, log), nil
}
