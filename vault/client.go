// Package vault is credvault's client for the Vault transit engine. It owns
// the connection to Vault (address, auth, token renewal, health) and the
// transit calls (encrypt, decrypt, rewrap, single and batch). It holds no
// business rules: callers pass the derivation context they need.
package vault

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"

	"credvault/internal/credvault"
)

// Config says where Vault is and how credvault authenticates to it. Exactly
// one of Token or RoleID+SecretID is used; AppRole wins when both are set.
type Config struct {
	Addr  string
	Token credvault.Secret
	// TokenFile, when set, is where Token came from (VAULT_TOKEN_FILE): it is
	// read again at each login, so that a token replaced there is picked up
	// without a restart once the old one is refused or expires.
	TokenFile string
	RoleID    string
	SecretID  credvault.Secret
	Mount     string // transit mount path, e.g. "transit"
	Key       string // transit key name, e.g. "credvault"
	Timeout   time.Duration
	Logger    *slog.Logger
	// BatchSize is the items per transit batch request, 1..MaxBatch;
	// 0 means DefaultBatch.
	BatchSize int
	// Observe, when set, is told of every transit call (op "encrypt",
	// "decrypt", "rewrap", …), its error and how long it took: the metrics
	// hook. It must not block.
	Observe func(op string, err error, elapsed time.Duration)
}

// Client talks to one transit key on one Vault server. It is safe for
// concurrent use; Close stops the token renewal loop.
type Client struct {
	api     *vaultapi.Client
	mount   string
	key     string
	log     *slog.Logger
	observe func(op string, err error, elapsed time.Duration)
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	// kick asks the keep-alive loop to log in again now (the token was
	// refused); buffered, so a pending request is never lost or doubled.
	kick chan struct{}
	// tokenCheck caches the last token self-lookup for readiness.
	tokenMu      sync.Mutex
	tokenChecked time.Time
	tokenErr     error

	// batchSize is the items per batch request; a complexity refusal
	// lowers it (never raises it) for the client's lifetime.
	batchSize atomic.Int64
	splitOnce sync.Once
}

// New connects to Vault, logs in (token or AppRole) and starts keeping the
// token alive. It does not check the transit key: call CheckKey (serve) or
// EnsureKey (dev) for that. Errors: EINVALID for a bad Config, EUNAVAILABLE
// when Vault cannot be reached or refuses the login.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Addr == "" {
		return nil, credvault.Errorf(credvault.EINVALID, "vault address is empty")
	}
	if cfg.Token.IsZero() && (cfg.RoleID == "" || cfg.SecretID.IsZero()) {
		return nil, credvault.Errorf(credvault.EINVALID, "no vault credentials: set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID")
	}
	if cfg.Mount == "" || cfg.Key == "" {
		return nil, credvault.Errorf(credvault.EINVALID, "transit mount and key must be set")
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatch
	}
	if cfg.BatchSize < 1 || cfg.BatchSize > MaxBatch {
		return nil, credvault.Errorf(credvault.EINVALID, "vault batch size must be from 1 to %d (a transit batch item costs %d JSON strings; OpenBao refuses more than %d per request by default)",
			MaxBatch, StringsPerItem("rewrap"), DefaultMaxRequestJSONStrings)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	apiCfg := vaultapi.DefaultConfig()
	if apiCfg.Error != nil {
		return nil, credvault.Wrap(credvault.EINVALID, apiCfg.Error, "vault client configuration")
	}
	apiCfg.Address = cfg.Addr
	apiCfg.Timeout = cfg.Timeout
	apiCfg.MaxRetries = 2
	apiCfg.MinRetryWait = 50 * time.Millisecond
	apiCfg.MaxRetryWait = 500 * time.Millisecond
	apiCfg.CheckRetry = checkRetry
	tr := apiCfg.HttpClient.Transport.(*http.Transport)
	tr.MaxIdleConnsPerHost = 64
	api, err := vaultapi.NewClient(apiCfg)
	if err != nil {
		return nil, credvault.Wrap(credvault.EINVALID, err, "vault client configuration")
	}
	// The environment must not leak into the client behind Config's back.
	api.ClearNamespace()
	api.SetToken("")

	c := &Client{
		api:     api,
		mount:   strings.Trim(cfg.Mount, "/"),
		key:     cfg.Key,
		log:     cfg.Logger,
		kick:    make(chan struct{}, 1),
		observe: cfg.Observe,
	}
	c.batchSize.Store(int64(cfg.BatchSize))
	login := c.loginFunc(cfg)
	secret, err := login(ctx)
	if err != nil {
		return nil, err
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Add(1)
	go c.keepAlive(loopCtx, secret, login)
	return c, nil
}

// checkRetry is the Vault client's retry policy (retry 5xx and 412) except
// for a refusal for JSON complexity, which HashiCorp Vault answers with
// 500: the same body would be refused again, so the batch methods split it
// at once instead. The body read here is put back for the caller.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if err == nil && resp != nil && resp.StatusCode >= 500 && resp.Body != nil {
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
		resp.Body = io.NopCloser(bytes.NewReader(b))
		if rerr == nil && isComplexityRefusal(string(b)) {
			return false, nil
		}
	}
	return vaultapi.DefaultRetryPolicy(ctx, resp, err)
}

// Close stops the token renewal loop. The client must not be used afterwards.
func (c *Client) Close() {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
}

// Mount and Key name the transit key this client uses.
func (c *Client) Mount() string { return c.mount }

// Key returns the transit key name.
func (c *Client) Key() string { return c.key }

// loginFunc returns the function that obtains a token and sets it on the
// client. For a static token it looks the token up, so that a renewable
// token is renewed; for AppRole it performs a fresh login each time.
func (c *Client) loginFunc(cfg Config) func(context.Context) (*vaultapi.Secret, error) {
	if cfg.RoleID != "" && !cfg.SecretID.IsZero() {
		return func(ctx context.Context) (*vaultapi.Secret, error) {
			auth, err := approle.NewAppRoleAuth(cfg.RoleID, &approle.SecretID{FromString: cfg.SecretID.Reveal()})
			if err != nil {
				return nil, credvault.Wrap(credvault.EINVALID, err, "vault approle configuration")
			}
			secret, err := c.api.Auth().Login(ctx, auth)
			if err != nil {
				return nil, translate(err, "vault approle login")
			}
			if secret == nil || secret.Auth == nil {
				return nil, credvault.Errorf(credvault.EUNAVAILABLE, "vault approle login returned no token")
			}
			c.log.Info("vault: logged in with approle", "renewable", secret.Auth.Renewable, "ttl_seconds", secret.Auth.LeaseDuration)
			return secret, nil
		}
	}
	return func(ctx context.Context) (*vaultapi.Secret, error) {
		tok := cfg.Token
		if cfg.TokenFile != "" {
			b, err := os.ReadFile(cfg.TokenFile)
			if err != nil {
				return nil, credvault.Wrap(credvault.EUNAVAILABLE, err, "vault token file %s cannot be read", cfg.TokenFile)
			}
			if t := strings.TrimSpace(string(b)); t != "" {
				tok = credvault.NewSecret(t)
			}
		}
		c.api.SetToken(tok.Reveal())
		secret, err := c.api.Auth().Token().LookupSelfWithContext(ctx)
		if err != nil {
			return nil, translate(err, "vault token lookup")
		}
		renewable, _ := secret.TokenIsRenewable()
		ttl, _ := secret.TokenTTL()
		// Turn the lookup into the shape the lifetime watcher expects.
		out := &vaultapi.Secret{Auth: &vaultapi.SecretAuth{
			ClientToken:   tok.Reveal(),
			Renewable:     renewable,
			LeaseDuration: int(ttl.Seconds()),
		}}
		c.log.Info("vault: using token", "renewable", renewable, "ttl_seconds", int(ttl.Seconds()))
		return out, nil
	}
}

// keepAlive renews the token until it can no longer be renewed, or Vault
// refuses it (a kick from Health), then logs in again (with backoff; a kick
// retries at once) and starts over, until ctx ends. A token without a TTL
// (a root token) is only replaced after a kick. Cycles shorter than a
// second (a token that is about to expire) back off too.
func (c *Client) keepAlive(ctx context.Context, secret *vaultapi.Secret, login func(context.Context) (*vaultapi.Secret, error)) {
	defer c.wg.Done()
	const minCycle = time.Second
	pause := 200 * time.Millisecond
	for {
		cycleStart := time.Now()
		if secret != nil && secret.Auth != nil && secret.Auth.Renewable {
			reason, renewed := c.watch(ctx, secret)
			if renewed != nil {
				secret = renewed // renewed in full: keep watching this token
				continue
			}
			if reason != "" {
				c.log.Warn("vault: " + reason)
			}
		} else {
			// Not renewable: log in again at 90% of its TTL, or when Vault
			// refuses it.
			var due <-chan time.Time
			if secret != nil && secret.Auth != nil && secret.Auth.LeaseDuration > 0 {
				due = time.After(time.Duration(secret.Auth.LeaseDuration) * time.Second * 9 / 10)
			}
			select {
			case <-ctx.Done():
				return
			case <-due:
				c.log.Warn("vault: token is not renewable and nears the end of its TTL; logging in again")
			case <-c.kick:
				c.log.Warn("vault: token refused by vault (invalid or expired); logging in again")
			}
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(cycleStart) < minCycle {
			if !c.wait(ctx, pause) {
				return
			}
			pause = min(pause*2, 30*time.Second)
		} else {
			pause = 200 * time.Millisecond
		}
		backoff := 200 * time.Millisecond
		for {
			var err error
			secret, err = login(ctx)
			if err == nil {
				c.resetTokenCheck()
				c.log.Info("vault: logged in again")
				break
			}
			c.log.Error("vault: login failed; retrying", "error", err.Error(), "retry_in", backoff.String())
			if !c.wait(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, 30*time.Second)
		}
	}
}

// wait sleeps for d, or less when a kick asks for a login now. It reports
// false when ctx ended.
func (c *Client) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-c.kick:
	}
	return true
}

// watch runs one lifetime watcher over secret until it is done or ctx
// ends. It returns either the token renewed in full (keep watching it) or
// why renewal ended, in words fit for the log ("" when shutting down).
func (c *Client) watch(ctx context.Context, secret *vaultapi.Secret) (string, *vaultapi.Secret) {
	w, err := c.api.NewLifetimeWatcher(&vaultapi.LifetimeWatcherInput{Secret: secret})
	if err != nil {
		return "token renewal could not start: " + err.Error() + "; logging in again", nil
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return "", nil
		case <-c.kick:
			return "token refused by vault (invalid or expired) while being renewed; logging in again", nil
		case err := <-w.DoneCh():
			if err != nil {
				return renewalOutcome(err, false), nil
			}
			// The watcher stops without an error both at the max TTL and
			// when the lease ran short: ask Vault once more, to tell which.
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			r, rerr := c.api.Auth().Token().RenewSelfWithContext(rctx, 0)
			cancel()
			if rerr == nil && r != nil && r.Auth != nil && !cappedByMaxTTL(r) {
				return "", r
			}
			return renewalOutcome(rerr, true), nil
		case r := <-w.RenewCh():
			if r.Secret != nil && r.Secret.Auth != nil {
				c.log.Debug("vault: token renewed", "ttl_seconds", r.Secret.Auth.LeaseDuration)
			}
		}
	}
}

// cappedByMaxTTL reports whether a renewal was cut short by the token's
// max TTL: Vault and OpenBao then warn that the TTL "exceeded the
// effective max_ttl" and grant only what is left.
func cappedByMaxTTL(r *vaultapi.Secret) bool {
	if r.Auth.LeaseDuration <= 0 {
		return true
	}
	for _, w := range r.Warnings {
		if strings.Contains(w, "max_ttl") {
			return true
		}
	}
	return false
}

// renewalOutcome words why token renewal ended, for the log: err is the
// last renewal's error, nil when it succeeded but was capped by the
// token's max TTL (capped).
func renewalOutcome(err error, capped bool) string {
	switch {
	case err != nil && strings.Contains(err.Error(), "permission denied"):
		return "token renewal refused: permission denied (the token is expired or revoked, or its policy lacks update on auth/token/renew-self); logging in again"
	case err != nil:
		return "token renewal refused: " + err.Error() + "; logging in again"
	case capped:
		return "token reached its maximum TTL (max_ttl); logging in again"
	}
	return "token renewal ended; logging in again"
}

// tokenCheckTTL is how long readiness trusts a token self-lookup.
const tokenCheckTTL = 2 * time.Second

// Health reports whether credvault can use Vault: the server is reachable,
// initialised and unsealed (sys/health, no token needed), and Vault still
// accepts credvault's token (auth/token/lookup-self, cached tokenCheckTTL).
// A refused token makes the keep-alive loop log in again at once, so
// readiness recovers without a restart when a new token or login works.
// Errors: EUNAVAILABLE whose message names the reason: unreachable, not
// initialised, sealed, or token invalid or expired (cause
// ErrPermissionDenied).
func (c *Client) Health(ctx context.Context) error {
	h, err := c.api.Sys().HealthWithContext(ctx)
	if err != nil {
		return translate(err, "vault health")
	}
	switch {
	case !h.Initialized:
		return &credvault.Error{Code: credvault.EUNAVAILABLE, Message: "vault is not initialised", Err: ErrUnavailable}
	case h.Sealed:
		return &credvault.Error{Code: credvault.EUNAVAILABLE, Message: "vault is sealed", Err: ErrUnavailable}
	}
	return c.checkToken(ctx)
}

// checkToken looks the token up, or returns the cached answer.
func (c *Client) checkToken(ctx context.Context) error {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if !c.tokenChecked.IsZero() && time.Since(c.tokenChecked) < tokenCheckTTL {
		return c.tokenErr
	}
	_, err := c.api.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		err = translate(err, "vault token lookup")
		if ErrorIs(err, ErrPermissionDenied) {
			err = &credvault.Error{Code: credvault.EUNAVAILABLE, Err: ErrPermissionDenied,
				Message: "vault token is invalid or expired (vault refused it); credvault is logging in again: put a new token in VAULT_TOKEN_FILE, or check the AppRole"}
			select {
			case c.kick <- struct{}{}:
			default:
			}
		}
	}
	c.tokenChecked, c.tokenErr = time.Now(), err
	return err
}

// resetTokenCheck forgets the cached lookup after a new login.
func (c *Client) resetTokenCheck() {
	c.tokenMu.Lock()
	c.tokenChecked, c.tokenErr = time.Time{}, nil
	c.tokenMu.Unlock()
}

func (c *Client) path(op string) string {
	return fmt.Sprintf("/v1/%s/%s/%s", c.mount, op, c.key)
}
