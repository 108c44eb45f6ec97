package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"credvault/internal/credvault"
	"credvault/internal/postgres"
)

// Config is credvault's whole configuration, read from the environment
// once, at start-up, and validated before anything starts.
type Config struct {
	Addr           string
	DatabaseURL    credvault.Secret
	VaultAddr      string
	VaultToken     credvault.Secret
	VaultTokenFile string // VAULT_TOKEN_FILE, read again at each Vault login
	VaultRoleID    string
	VaultSecretID  credvault.Secret
	TransitMount   string
	TransitKey     string
	SigningKey     string // CREDVAULT_SIGNING_KEY: the ed25519 transit key of JWT API keys
	Issuer         string // CREDVAULT_ISSUER: iss of JWT API keys; "" = PublicURL, else the installation's (from the database)
	KeyPrefix      string
	AuthHeaders    []string
	RedisURL       credvault.Secret
	SecretCacheTTL time.Duration
	// RedisTimeout bounds each rate-limit round trip to Redis before the
	// local fallback answers (CREDVAULT_REDIS_TIMEOUT, default 50ms).
	RedisTimeout time.Duration
	// MaxStaleness is how long an instance that cannot read the key state
	// log (no database) keeps /readyz at 200 on its caches
	// (CREDVAULT_MAX_STALENESS, default 60s).
	MaxStaleness       time.Duration
	EgressAllowPrivate bool
	// EgressLoopbackPorts (CREDVAULT_EGRESS_ALLOW_LOOPBACK_PORTS) are the
	// loopback ports the proxy may reach while every other private address
	// stays refused.
	EgressLoopbackPorts []uint16
	// UpstreamCAs is the system's roots plus the certificates of
	// CREDVAULT_UPSTREAM_CA_FILE (PEM), which proxied and tested calls
	// trust; nil when the variable is unset (the system's roots alone).
	UpstreamCAs    *x509.CertPool
	UpstreamCAFile string
	// UpstreamHTTP1Only is CREDVAULT_UPSTREAM_HTTP2=false (default true,
	// so the zero value is the default): every proxied call stays on
	// HTTP/1.1, over the injector's direct transport, even to an https://
	// upstream that offers HTTP/2 in ALPN (injector.ClientOptions.HTTP1Only).
	UpstreamHTTP1Only bool
	LogLevel          slog.Level
	DataDir           string
	// PublicURL is CREDVAULT_PUBLIC_URL: the origin browsers reach the
	// console at. https makes the session cookie Secure and __Host-.
	PublicURL string
	// OAuthRefreshConcurrency bounds the token requests the proactive
	// refresh has in flight per replica (CREDVAULT_OAUTH_REFRESH_CONCURRENCY,
	// default 8); OAuthRefreshInterval is how often it looks for tokens
	// due (CREDVAULT_OAUTH_REFRESH_INTERVAL, default 15s).
	OAuthRefreshConcurrency int
	OAuthRefreshInterval    time.Duration
	// OAuthRefreshBackoff is the first wait after a transient refresh
	// failure, doubled per failure up to 10 minutes
	// (CREDVAULT_OAUTH_REFRESH_BACKOFF, default 5s).
	OAuthRefreshBackoff time.Duration
}

// configError names the variable at fault; its text is the one line that
// start-up prints.
type configError struct {
	Var, Problem string
}

func (e *configError) Error() string { return e.Var + ": " + e.Problem }

var (
	mountPattern  = regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$`)
	keyPattern    = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
	prefixPattern = regexp.MustCompile(`^[a-z][a-z0-9]{0,15}$`)
	headerPattern = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// loadConfig reads and checks every variable. Secrets may come from the
// file named by <VAR>_FILE instead (Docker and Kubernetes secrets).
func loadConfig(getenv func(string) string) (Config, error) {
	env := envReader{getenv: getenv}
	cfg := Config{
		Addr:           env.str("CREDVAULT_ADDR", ":8080"),
		DatabaseURL:    credvault.NewSecret(env.secret("DATABASE_URL")),
		VaultAddr:      env.str("VAULT_ADDR", ""),
		VaultToken:     credvault.NewSecret(env.secret("VAULT_TOKEN")),
		VaultTokenFile: getenv("VAULT_TOKEN_FILE"),
		VaultRoleID:    env.secret("VAULT_ROLE_ID"),
		TransitMount:   strings.Trim(env.str("CREDVAULT_TRANSIT_MOUNT", "transit"), "/"),
		TransitKey:     env.str("CREDVAULT_TRANSIT_KEY", "credvault"),
		SigningKey:     env.str("CREDVAULT_SIGNING_KEY", "credvault-jwt"),
		Issuer:         env.str("CREDVAULT_ISSUER", ""),
		KeyPrefix:      env.str("CREDVAULT_KEY_PREFIX", "cv"),
		RedisURL:       credvault.NewSecret(env.secret("REDIS_URL")),
		DataDir:        env.str("CREDVAULT_DATA_DIR", ".credvault"),
		PublicURL:      strings.TrimRight(env.str("CREDVAULT_PUBLIC_URL", ""), "/"),
	}
	cfg.VaultSecretID = credvault.NewSecret(env.secret("VAULT_SECRET_ID"))
	if env.err != nil {
		return Config{}, env.err
	}

	if err := checkListenAddr(cfg.Addr); err != nil {
		return Config{}, &configError{"CREDVAULT_ADDR", err.Error()}
	}
	if !cfg.DatabaseURL.IsZero() {
		norm, err := postgres.NormalizeURL(cfg.DatabaseURL.Reveal())
		if err != nil {
			return Config{}, &configError{"DATABASE_URL", strings.TrimPrefix(credvault.ErrorMessage(err), "DATABASE_URL ")}
		}
		if err := postgres.CheckURL(norm); err != nil {
			return Config{}, &configError{"DATABASE_URL", "not a valid postgres:// URL (want postgres://user:password@host:5432/dbname?sslmode=..., with an IPv6 address in brackets such as [::1]:5432; for a primary and standbys " + postgres.HostListForm + ")"}
		}
		cfg.DatabaseURL = credvault.NewSecret(norm)
	}
	if cfg.VaultAddr != "" {
		u, err := url.Parse(cfg.VaultAddr)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Config{}, &configError{"VAULT_ADDR", fmt.Sprintf("%q is not an http(s) URL such as https://vault.example.com:8200", cfg.VaultAddr)}
		}
	}
	if (cfg.VaultRoleID == "") != cfg.VaultSecretID.IsZero() {
		return Config{}, &configError{"VAULT_ROLE_ID", "AppRole login needs both VAULT_ROLE_ID and VAULT_SECRET_ID"}
	}
	if !mountPattern.MatchString(cfg.TransitMount) {
		return Config{}, &configError{"CREDVAULT_TRANSIT_MOUNT", fmt.Sprintf("%q is not a mount path (letters, digits, '-', '_', '/')", cfg.TransitMount)}
	}
	if !keyPattern.MatchString(cfg.TransitKey) {
		return Config{}, &configError{"CREDVAULT_TRANSIT_KEY", fmt.Sprintf("%q is not a key name (letters, digits, '-', '_', '.')", cfg.TransitKey)}
	}
	if !keyPattern.MatchString(cfg.SigningKey) || cfg.SigningKey == cfg.TransitKey {
		return Config{}, &configError{"CREDVAULT_SIGNING_KEY", fmt.Sprintf("%q is not a key name (letters, digits, '-', '_', '.') other than CREDVAULT_TRANSIT_KEY", cfg.SigningKey)}
	}
	if cfg.Issuer != "" {
		if u, err := url.Parse(cfg.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Config{}, &configError{"CREDVAULT_ISSUER", fmt.Sprintf("%q is not an http(s) URL such as https://credvault.example.com", cfg.Issuer)}
		}
	}
	if !prefixPattern.MatchString(cfg.KeyPrefix) {
		return Config{}, &configError{"CREDVAULT_KEY_PREFIX", fmt.Sprintf("%q must be 1-16 lowercase letters or digits, starting with a letter", cfg.KeyPrefix)}
	}
	var err error
	if cfg.AuthHeaders, err = parseAuthHeaders(getenv("CREDVAULT_AUTH_HEADERS")); err != nil {
		return Config{}, &configError{"CREDVAULT_AUTH_HEADERS", err.Error()}
	}
	if !cfg.RedisURL.IsZero() {
		if _, err := parseRedisURL(cfg.RedisURL.Reveal()); err != nil {
			return Config{}, &configError{"REDIS_URL", err.Error()}
		}
	}
	if v := env.str("CREDVAULT_REDIS_TIMEOUT", "50ms"); v != "" {
		if cfg.RedisTimeout, err = time.ParseDuration(v); err != nil || cfg.RedisTimeout < time.Millisecond || cfg.RedisTimeout > 10*time.Second {
			return Config{}, &configError{"CREDVAULT_REDIS_TIMEOUT", fmt.Sprintf("%q is not a duration from 1ms to 10s, such as 50ms", v)}
		}
	}
	if v := env.str("CREDVAULT_MAX_STALENESS", "60s"); v != "" {
		if cfg.MaxStaleness, err = time.ParseDuration(v); err != nil || cfg.MaxStaleness < time.Second || cfg.MaxStaleness > 24*time.Hour {
			return Config{}, &configError{"CREDVAULT_MAX_STALENESS", fmt.Sprintf("%q is not a duration from 1s to 24h, such as 60s", v)}
		}
	}
	if cfg.SecretCacheTTL, err = parseTTL(env.str("CREDVAULT_SECRET_CACHE_TTL", "30s")); err != nil {
		return Config{}, &configError{"CREDVAULT_SECRET_CACHE_TTL", err.Error()}
	}
	if v := env.str("CREDVAULT_EGRESS_ALLOW_PRIVATE", "false"); v != "" {
		if cfg.EgressAllowPrivate, err = strconv.ParseBool(v); err != nil {
			return Config{}, &configError{"CREDVAULT_EGRESS_ALLOW_PRIVATE", fmt.Sprintf("%q is not true or false", v)}
		}
	}
	if v := env.str("CREDVAULT_EGRESS_ALLOW_LOOPBACK_PORTS", ""); strings.TrimSpace(v) != "" {
		for _, f := range strings.Split(v, ",") {
			p, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
			if err != nil || p == 0 {
				return Config{}, &configError{"CREDVAULT_EGRESS_ALLOW_LOOPBACK_PORTS", fmt.Sprintf("%q is not a comma-separated list of ports from 1 to 65535, such as 9000,9001", v)}
			}
			if !slices.Contains(cfg.EgressLoopbackPorts, uint16(p)) { // a repeat is the same port: listed once in the banner
				cfg.EgressLoopbackPorts = append(cfg.EgressLoopbackPorts, uint16(p))
			}
		}
	}
	if v := env.str("CREDVAULT_OAUTH_REFRESH_CONCURRENCY", "8"); v != "" {
		if cfg.OAuthRefreshConcurrency, err = strconv.Atoi(v); err != nil || cfg.OAuthRefreshConcurrency < 1 || cfg.OAuthRefreshConcurrency > 256 {
			return Config{}, &configError{"CREDVAULT_OAUTH_REFRESH_CONCURRENCY", fmt.Sprintf("%q is not a whole number from 1 to 256", v)}
		}
	}
	if v := env.str("CREDVAULT_OAUTH_REFRESH_INTERVAL", "15s"); v != "" {
		if cfg.OAuthRefreshInterval, err = time.ParseDuration(v); err != nil || cfg.OAuthRefreshInterval < 100*time.Millisecond || cfg.OAuthRefreshInterval > time.Hour {
			return Config{}, &configError{"CREDVAULT_OAUTH_REFRESH_INTERVAL", fmt.Sprintf("%q is not a duration from 100ms to 1h, such as 15s", v)}
		}
	}
	if v := env.str("CREDVAULT_OAUTH_REFRESH_BACKOFF", "5s"); v != "" {
		if cfg.OAuthRefreshBackoff, err = time.ParseDuration(v); err != nil || cfg.OAuthRefreshBackoff < 100*time.Millisecond || cfg.OAuthRefreshBackoff > 10*time.Minute {
			return Config{}, &configError{"CREDVAULT_OAUTH_REFRESH_BACKOFF", fmt.Sprintf("%q is not a duration from 100ms to 10m, such as 5s", v)}
		}
	}
	if v := env.str("CREDVAULT_UPSTREAM_HTTP2", "true"); v != "" {
		http2, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, &configError{"CREDVAULT_UPSTREAM_HTTP2", fmt.Sprintf("%q is not true or false", v)}
		}
		cfg.UpstreamHTTP1Only = !http2
	}
	if cfg.UpstreamCAFile = getenv("CREDVAULT_UPSTREAM_CA_FILE"); cfg.UpstreamCAFile != "" {
		if cfg.UpstreamCAs, err = loadUpstreamCAs(cfg.UpstreamCAFile); err != nil {
			return Config{}, &configError{"CREDVAULT_UPSTREAM_CA_FILE", err.Error()}
		}
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(env.str("CREDVAULT_LOG_LEVEL", "info"))); err != nil {
		return Config{}, &configError{"CREDVAULT_LOG_LEVEL", "must be debug, info, warn or error"}
	}
	if cfg.DataDir == "" {
		return Config{}, &configError{"CREDVAULT_DATA_DIR", "must not be empty"}
	}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return Config{}, &configError{"CREDVAULT_PUBLIC_URL", fmt.Sprintf("%q is not an origin such as https://vault.example.com (scheme and host, no path)", cfg.PublicURL)}
		}
	}
	return cfg, nil
}

// requireProduction checks what a command that runs against production
// (`credvault serve`, `credvault rewrap`) needs beyond a valid
// configuration: a database and a real Vault with credentials. cmd names
// the command in the message.
func (cfg Config) requireProduction(cmd string) error {
	switch {
	case cfg.DatabaseURL.IsZero():
		return &configError{"DATABASE_URL", "required by `credvault " + cmd + "` (postgres://user:password@host:5432/credvault?sslmode=require); for a local setup run `credvault dev`"}
	case cfg.VaultAddr == "":
		return &configError{"VAULT_ADDR", "required by `credvault " + cmd + "` (the Vault server with the transit engine); for a local setup run `credvault dev`"}
	case cfg.VaultToken.IsZero() && cfg.VaultRoleID == "":
		return &configError{"VAULT_TOKEN", "required by `credvault " + cmd + "`: set VAULT_TOKEN (or VAULT_TOKEN_FILE), or VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole"}
	}
	return nil
}

func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. :8080 or 127.0.0.1:8080)", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if host != "" && net.ParseIP(host) == nil && !headerPattern.MatchString(host) {
		return fmt.Errorf("host %q is not an IP address or host name", host)
	}
	return nil
}

// defaultAuthHeaders are the headers an API key is always read from.
var defaultAuthHeaders = []string{"X-API-Key", "Authorization"}

// parseAuthHeaders reads CREDVAULT_AUTH_HEADERS: header names, comma
// separated, that carry an API key in addition to the defaults (SPEC:
// "add e.g. nected-api-key"). Listing a default again is allowed, so that
// a list written out in full keeps its meaning; the headers are tried in
// the order listed, then the defaults not listed. Names stay as written
// (they show in messages); matching is case-insensitive.
func parseAuthHeaders(v string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, h := range strings.Split(v, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if !headerPattern.MatchString(h) {
			return nil, fmt.Errorf("%q is not a valid header name", h)
		}
		canon := http.CanonicalHeaderKey(h)
		if seen[canon] {
			return nil, fmt.Errorf("header %q is listed twice", h)
		}
		seen[canon] = true
		out = append(out, h)
	}
	if strings.TrimSpace(v) != "" && len(out) == 0 {
		return nil, errors.New("names no header; list headers to add to X-API-Key and Authorization, e.g. nected-api-key")
	}
	for _, h := range defaultAuthHeaders {
		if !seen[http.CanonicalHeaderKey(h)] {
			out = append(out, h)
		}
	}
	return out, nil
}

// loadUpstreamCAs reads CREDVAULT_UPSTREAM_CA_FILE: one or more PEM
// "CERTIFICATE" blocks of CA certificates (a private CA of upstreams that
// are not publicly trusted), added to the system's roots. Anything else in
// the file, a certificate that does not parse or is not a CA, or a file
// without certificates is refused, so that a wrong file is found at start
// and not at the first proxied call.
func loadUpstreamCAs(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("cannot read %s: %v", file, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if len(strings.TrimSpace(string(rest))) > 0 {
				return nil, fmt.Errorf("%s holds something other than PEM blocks", file)
			}
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s holds a PEM %q block; want only CERTIFICATE blocks (CA certificates, no keys)", file, blk.Type)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d of %s does not parse: %v", n+1, file, err)
		}
		if !cert.IsCA {
			return nil, fmt.Errorf("certificate %d of %s (%q) is not a CA certificate; give the CA that signed the upstream's certificate", n+1, file, cert.Subject.CommonName)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

func parseTTL(v string) (time.Duration, error) {
	if v == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration such as 30s or 5m (0 disables the cache)", v)
	}
	if d > 24*time.Hour {
		return 0, fmt.Errorf("%q is longer than 24h; a decrypted secret must not stay in memory that long", v)
	}
	return d, nil
}

// envReader reads variables and remembers the first error, so that
// loadConfig reads like a list.
type envReader struct {
	getenv func(string) string
	err    error
}

func (r *envReader) str(name, def string) string {
	if v := r.getenv(name); v != "" {
		return v
	}
	return def
}

// secret reads name, or the file named by name_FILE (trailing newline
// trimmed). Setting both is an error: which one wins would be a guess.
func (r *envReader) secret(name string) string {
	v, file := r.getenv(name), r.getenv(name+"_FILE")
	if file == "" {
		return v
	}
	if v != "" {
		r.fail(&configError{name + "_FILE", "set either " + name + " or " + name + "_FILE, not both"})
		return ""
	}
	b, err := os.ReadFile(file) // #nosec G304 -- a *_FILE variable names the file holding a secret, by design
	if err != nil {
		var pe *os.PathError
		reason := err.Error()
		if errors.As(err, &pe) {
			reason = pe.Err.Error()
		}
		r.fail(&configError{name + "_FILE", fmt.Sprintf("cannot read %s: %s", file, reason)})
		return ""
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		r.fail(&configError{name + "_FILE", file + " is empty"})
	}
	return s
}

func (r *envReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}
