// Package vault is credvault's client for the Vault transit engine. It owns
// the connection to Vault (address, auth, token renewal, health) and the
// transit calls (encrypt, decrypt, rewrap, single and batch). It holds no
// business rules: callers pass the derivation context they need.
package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"

	"credvault/internal/credvault"
)

// Config says where Vault is and how credvault authenticates to it. Exactly
// one of Token or RoleID+SecretID is used; AppRole wins when both are set.
type Config struct {
	Addr     string
	Token    credvault.Secret
	RoleID   string
	SecretID credvault.Secret
	Mount    string // transit mount path, e.g. "transit"
	Key      string // transit key name, e.g. "credvault"
	Timeout  time.Duration
	Logger   *slog.Logger
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
		observe: cfg.Observe,
	}
	login := c.loginFunc(cfg)
	secret, err := login(ctx)
	if err != nil {
		return nil, err
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	if secret != nil && secret.Auth != nil && secret.Auth.Renewable {
		c.wg.Add(1)
		go c.keepAlive(loopCtx, secret, login)
	}
	return c, nil
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
		c.api.SetToken(cfg.Token.Reveal())
		secret, err := c.api.Auth().Token().LookupSelfWithContext(ctx)
		if err != nil {
			return nil, translate(err, "vault token lookup")
		}
		renewable, _ := secret.TokenIsRenewable()
		ttl, _ := secret.TokenTTL()
		// Turn the lookup into the shape the lifetime watcher expects.
		out := &vaultapi.Secret{Auth: &vaultapi.SecretAuth{
			ClientToken:   cfg.Token.Reveal(),
			Renewable:     renewable,
			LeaseDuration: int(ttl.Seconds()),
		}}
		c.log.Info("vault: using token", "renewable", renewable, "ttl_seconds", int(ttl.Seconds()))
		return out, nil
	}
}

// keepAlive renews the token until it can no longer be renewed, then logs
// in again (with backoff) and starts over, until ctx ends.
func (c *Client) keepAlive(ctx context.Context, secret *vaultapi.Secret, login func(context.Context) (*vaultapi.Secret, error)) {
	defer c.wg.Done()
	for {
		if secret != nil && secret.Auth != nil && secret.Auth.Renewable {
			if err := c.watch(ctx, secret); err != nil {
				c.log.Warn("vault: token renewal stopped", "error", err.Error())
			}
		} else {
			// A non-renewable token after a re-login: wait out its TTL.
			ttl := time.Duration(0)
			if secret != nil && secret.Auth != nil {
				ttl = time.Duration(secret.Auth.LeaseDuration) * time.Second
			}
			if ttl <= 0 {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(ttl * 9 / 10):
			}
		}
		if ctx.Err() != nil {
			return
		}
		backoff := 200 * time.Millisecond
		for {
			var err error
			secret, err = login(ctx)
			if err == nil {
				break
			}
			c.log.Error("vault: login failed; retrying", "error", err.Error(), "retry_in", backoff.String())
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 30*time.Second)
		}
	}
}

// watch runs one lifetime watcher over secret until it is done (the token
// reached its max TTL or renewal failed) or ctx ends.
func (c *Client) watch(ctx context.Context, secret *vaultapi.Secret) error {
	w, err := c.api.NewLifetimeWatcher(&vaultapi.LifetimeWatcherInput{Secret: secret})
	if err != nil {
		return err
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-w.DoneCh():
			if err == nil {
				return errors.New("token reached its maximum lifetime")
			}
			return err
		case r := <-w.RenewCh():
			c.log.Debug("vault: token renewed", "ttl_seconds", r.Secret.Auth.LeaseDuration)
		}
	}
}

// Health reports whether Vault is usable: initialised and unsealed. Errors:
// EUNAVAILABLE when it is unreachable, sealed or not initialised.
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
	return nil
}

func (c *Client) path(op string) string {
	return fmt.Sprintf("/v1/%s/%s/%s", c.mount, op, c.key)
}
