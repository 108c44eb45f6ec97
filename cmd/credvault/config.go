package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"credvault/internal/postgres"

	"credvault/internal/credvault"
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
	Issuer         string // CREDVAULT_ISSUER: iss of JWT API keys; "" = PublicURL, else the listener's URL
	KeyPrefix      string
	AuthHeaders    []string
	RedisURL       credvault.Secret
	SecretCacheTTL time.Duration
	// RedisTimeout bounds each rate-limit round trip to Redis before the
	// local fallback answers (CREDVAULT_REDIS_TIMEOUT, default 50ms).
	RedisTimeout       time.Duration
	EgressAllowPrivate bool
	// EgressLoopbackPorts (CREDVAULT_EGRESS_ALLOW_LOOPBACK_PORTS) are the
	// loopback ports the proxy may reach while every other private address
	// stays refused.
	EgressLoopbackPorts []uint16
	LogLevel            slog.Level
	DataDir             string
	// PublicURL is CREDVAULT_PUBLIC_URL: the origin browsers reach the
	// console at. https makes the session cookie Secure and __Host-.
	PublicURL string
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
		if err := postgres.CheckURL(cfg.DatabaseURL.Reveal()); err != nil {
			return Config{}, &configError{"DATABASE_URL", "not a valid postgres:// URL (want postgres://user:password@host:5432/dbname?sslmode=...)"}
		}
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
		u, err := url.Parse(cfg.RedisURL.Reveal())
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			return Config{}, &configError{"REDIS_URL", "not a redis:// or rediss:// URL (want redis://host:6379/0)"}
		}
	}
	if v := env.str("CREDVAULT_REDIS_TIMEOUT", "50ms"); v != "" {
		if cfg.RedisTimeout, err = time.ParseDuration(v); err != nil || cfg.RedisTimeout < time.Millisecond || cfg.RedisTimeout > 10*time.Second {
			return Config{}, &configError{"CREDVAULT_REDIS_TIMEOUT", fmt.Sprintf("%q is not a duration from 1ms to 10s, such as 50ms", v)}
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
			cfg.EgressLoopbackPorts = append(cfg.EgressLoopbackPorts, uint16(p))
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
