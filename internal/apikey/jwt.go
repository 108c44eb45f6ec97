package apikey

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"credvault/internal/credvault"
)

// JWT API keys are compact JWS tokens (RFC 7515/7519), EdDSA over Ed25519
// (RFC 8037), signed by a Vault transit key whose private half never
// leaves Vault. The header's kid names the transit key and version
// ("credvault-jwt:v2", see Kid); the claims are RFC 7519's iss, sub, jti,
// iat, nbf and exp plus org, agent, scope (space-separated, as RFC 8693
// writes it) and env.

// nbfLeeway tolerates clocks of instances that disagree a little about
// the moment a key was issued.
const nbfLeeway = time.Minute

// SigningKeySource is the transit signing key: its public keys and the
// signing operation. vault.SigningKey implements it.
type SigningKeySource interface {
	// Name is the transit key's name (CREDVAULT_SIGNING_KEY).
	Name() string
	// PublicKeys returns every version's Ed25519 public key and creation
	// time, and the lowest version still allowed to verify
	// (min_decryption_version).
	PublicKeys(ctx context.Context) (keys map[int]credvault.SigningKeyVersion, minVersion int, err error)
	// Sign signs input with the given version and returns the raw
	// 64-byte signature.
	Sign(ctx context.Context, input []byte, version int) ([]byte, error)
}

// Kid is the JWS key id of a version of the signing key: "<name>:v<N>",
// the way transit prefixes its own signatures.
func Kid(name string, version int) string { return name + ":v" + strconv.Itoa(version) }

// parseKid returns the version of a kid of signing key name.
func parseKid(kid, name string) (int, bool) {
	rest, ok := strings.CutPrefix(kid, name+":v")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n > 0 && strconv.Itoa(n) == rest
}

// keySnapshot is one read of the signing key; it is never changed after
// it is published.
type keySnapshot struct {
	keys    map[int]ed25519.PublicKey
	created map[int]time.Time
	min     int
	latest  int
}

// signingVersion is the version new keys are signed with at now: the
// newest version allowed to verify that every JWKS has published for
// delay (credvault.SigningPublishDelay). When none has (a new signing key,
// or min_decryption_version raised to a fresh version), it is the oldest
// version allowed to verify, the one published longest. 0: no version.
func (s *keySnapshot) signingVersion(now time.Time, delay time.Duration) int {
	best, oldest := 0, 0
	for v := range s.keys {
		if v < s.min {
			continue
		}
		if oldest == 0 || v < oldest {
			oldest = v
		}
		if v > best && !now.Before(s.created[v].Add(delay)) {
			best = v
		}
	}
	if best == 0 {
		return oldest
	}
	return best
}

// SigningKeys caches the signing key's public keys for verification and
// for GET /.well-known/jwks.json. It is refreshed every RefreshEvery by
// Run, at once when a key is minted (so that a rotation is used at once),
// and on demand, at most once a second, when a token names a version it
// does not know.
type SigningKeys struct {
	src    SigningKeySource
	log    *slog.Logger
	snap   atomic.Pointer[keySnapshot]
	flight singleflight.Group
	miss   *rate.Limiter
}

// NewSigningKeys returns the cache; call Refresh once before use (start-up
// checks that the key can be read).
func NewSigningKeys(src SigningKeySource, log *slog.Logger) *SigningKeys {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	k := &SigningKeys{src: src, log: log, miss: rate.NewLimiter(1, 1)}
	k.snap.Store(&keySnapshot{})
	return k
}

// Name is the transit signing key's name.
func (k *SigningKeys) Name() string { return k.src.Name() }

// Refresh reads the signing key from Vault. Errors: those of the source
// (EUNAVAILABLE when Vault is down); the previous keys stay in use.
func (k *SigningKeys) Refresh(ctx context.Context) error {
	_, err, _ := k.flight.Do("refresh", func() (any, error) {
		versions, minVersion, err := k.src.PublicKeys(ctx)
		if err != nil {
			return nil, err
		}
		s := &keySnapshot{keys: make(map[int]ed25519.PublicKey, len(versions)), created: make(map[int]time.Time, len(versions)),
			min: max(minVersion, 1)}
		for v, kv := range versions {
			s.keys[v], s.created[v] = kv.Public, kv.Created
			s.latest = max(s.latest, v)
		}
		k.snap.Store(s)
		return nil, nil
	})
	return err
}

// Run refreshes the keys every every until ctx ends; a failed refresh is
// logged and the keys read before stay in use.
func (k *SigningKeys) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := k.Refresh(ctx); err != nil && ctx.Err() == nil {
				k.log.Warn("refreshing the JWT signing key failed; using the keys read before", "error", err.Error())
			}
		}
	}
}

// MinVersion is the lowest signing key version whose keys still verify.
func (k *SigningKeys) MinVersion() int { return k.snap.Load().min }

// publicKey returns version's key, refreshing once (rate-limited) when it
// is unknown: a rotation made elsewhere shows up as a newer kid.
func (k *SigningKeys) publicKey(ctx context.Context, version int) (ed25519.PublicKey, int) {
	s := k.snap.Load()
	if pub, ok := s.keys[version]; ok || version <= s.latest || !k.miss.Allow() {
		return pub, s.min
	}
	if err := k.Refresh(ctx); err != nil {
		k.log.Warn("refreshing the JWT signing key for an unknown kid failed", "error", err.Error())
	}
	s = k.snap.Load()
	return s.keys[version], s.min
}

// JWKS is the JSON Web Key Set (RFC 7517) of every version still allowed
// to verify, newest first: OKP keys on Ed25519 (RFC 8037) with their kid,
// "alg": "EdDSA" and "use": "sig".
func (k *SigningKeys) JWKS() jose.JSONWebKeySet {
	s := k.snap.Load()
	versions := make([]int, 0, len(s.keys))
	for v := range s.keys {
		if v >= s.min {
			versions = append(versions, v)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(versions)))
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(versions))}
	for _, v := range versions {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: s.keys[v], KeyID: Kid(k.Name(), v), Algorithm: string(jose.EdDSA), Use: "sig"})
	}
	return set
}

// Claims are the claims of a credvault JWT API key.
type Claims struct {
	jwt.Claims
	Org   string `json:"org"`
	Agent string `json:"agent,omitempty"`
	Scope string `json:"scope"`
	Env   string `json:"env"` // the key's mode, "live" or "test"
}

// JWTIssuer mints JWT API keys; it implements credvault.JWTMinter.
type JWTIssuer struct {
	Keys   *SigningKeys
	Issuer string // CREDVAULT_ISSUER
	Now    func() time.Time
	// PublishDelay is how long a signing-key version is in the JWKS
	// before it signs; 0 means credvault.SigningPublishDelay.
	PublishDelay time.Duration
	// VersionNow is the clock that picks the signing-key version (tests
	// move it past PublishDelay); nil means Now.
	VersionNow func() time.Time
}

// MintJWT signs k's claims with the newest signing-key version published
// in the JWKS for PublishDelay (the key is read from Vault first, so a
// rotation is published at once and signs once that delay has passed)
// and returns the token, shown once, with its SHA-256. Errors:
// EUNAVAILABLE when Vault cannot be read or cannot sign; EINTERNAL
// otherwise.
func (j *JWTIssuer) MintJWT(ctx context.Context, k *credvault.APIKey) (credvault.MintedKey, error) {
	if err := j.Keys.Refresh(ctx); err != nil {
		return credvault.MintedKey{}, err
	}
	now := time.Now
	if j.Now != nil {
		now = j.Now
	}
	delay, versionNow := j.PublishDelay, now
	if delay == 0 {
		delay = credvault.SigningPublishDelay
	}
	if j.VersionNow != nil {
		versionNow = j.VersionNow
	}
	s := j.Keys.snap.Load()
	version := s.signingVersion(versionNow(), delay)
	if version == 0 {
		return credvault.MintedKey{}, credvault.Errorf(credvault.EUNAVAILABLE, "the JWT signing key has no version allowed to sign")
	}
	pub := &jose.JSONWebKey{Key: s.keys[version], KeyID: Kid(j.Keys.Name(), version), Algorithm: string(jose.EdDSA)}
	ts := &transitSigner{ctx: ctx, src: j.Keys.src, version: version, pub: pub}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: ts}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return credvault.MintedKey{}, credvault.Wrap(credvault.EINTERNAL, err, "cannot build the JWT signer")
	}
	issued := jwt.NewNumericDate(now().Truncate(time.Second))
	c := Claims{
		Claims: jwt.Claims{Issuer: j.Issuer, ID: k.ID, IssuedAt: issued, NotBefore: issued},
		Org:    k.OrgID, Scope: strings.Join(k.Scopes, " "), Env: k.Mode,
	}
	if k.UserID != nil {
		c.Subject = *k.UserID
	} else {
		c.Subject = "service:" + k.ID
	}
	if k.Agent != nil {
		c.Agent = *k.Agent
	}
	if k.ExpiresAt != nil {
		c.Expiry = jwt.NewNumericDate(*k.ExpiresAt)
	}
	token, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		if ts.err != nil {
			return credvault.MintedKey{}, ts.err
		}
		return credvault.MintedKey{}, credvault.Wrap(credvault.EINTERNAL, err, "cannot sign the JWT")
	}
	return credvault.MintedKey{
		Key: credvault.NewSecret(token), Hash: Hash(token), Prefix: "jwt_" + k.Mode,
		Last4: Last4(token), SigningVersion: version,
	}, nil
}

// transitSigner is a jose.OpaqueSigner that signs through Vault with one
// version of the transit key.
type transitSigner struct {
	ctx     context.Context
	src     SigningKeySource
	version int
	pub     *jose.JSONWebKey
	err     error // the source's error, kept whole for the caller
}

func (t *transitSigner) Public() *jose.JSONWebKey { return t.pub }
func (t *transitSigner) Algs() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.EdDSA}
}

func (t *transitSigner) SignPayload(payload []byte, _ jose.SignatureAlgorithm) ([]byte, error) {
	sig, err := t.src.Sign(t.ctx, payload, t.version)
	t.err = err
	return sig, err
}

// checkJWT is the full verification of a JWT key the cache does not hold:
// header (EdDSA only), kid, signature, then iss, nbf and exp. It returns a
// verification code ("" when the token is good) and the claims.
func (v *Verifier) checkJWT(ctx context.Context, token string, now time.Time) (string, *Claims) {
	v.stats.JWTSignatureChecks.Add(1)
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil || len(tok.Headers) != 1 {
		return credvault.VerifyMalformed, nil
	}
	version, ok := parseKid(tok.Headers[0].KeyID, v.opts.SigningKeys.Name())
	if !ok {
		return credvault.VerifyUnknownKid, nil
	}
	pub, minVersion := v.opts.SigningKeys.publicKey(ctx, version)
	switch {
	case version < minVersion: // listed or already trimmed from the key
		return credvault.VerifyKeyRetired, nil
	case pub == nil:
		return credvault.VerifyUnknownKid, nil
	}
	var c Claims
	if err := tok.Claims(pub, &c); err != nil {
		return credvault.VerifyBadSignature, nil
	}
	switch {
	case c.Issuer != v.opts.Issuer:
		return credvault.VerifyWrongIssuer, &c
	case c.NotBefore != nil && now.Add(nbfLeeway).Before(c.NotBefore.Time()):
		return credvault.VerifyNotYetValid, &c
	case c.Expiry != nil && !now.Before(c.Expiry.Time()):
		return credvault.VerifyExpired, &c
	case c.ID == "":
		return credvault.VerifyMalformed, &c
	}
	return "", &c
}
