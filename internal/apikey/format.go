// Package apikey holds the inbound API key machinery of credvault: the key
// format (generation, structural and checksum validation, hashing, display)
// and the per-key rate limiters used on the verification hot path.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"strings"
	"unsafe"

	"credvault/internal/credvault"
)

// Environments a key belongs to. A test key is never accepted where a live
// one is expected, and the environment is visible in the key itself so a
// leaked key can be triaged at a glance.
const (
	EnvLive = "live"
	EnvTest = "test"
)

// Sentinel errors returned by Parse. They are plain errors, not
// *credvault.Error, because the verification path maps them to its own
// outcome (the verify endpoint answers code MALFORMED for both, forward-auth
// answers 401); compare with errors.Is.
var (
	// ErrMalformed means the presented string does not have the shape of a
	// credvault key for the configured prefix: wrong number of parts, wrong
	// lengths, a character outside the alphabet, an unknown environment or
	// another prefix.
	ErrMalformed = errors.New("apikey: malformed key")
	// ErrChecksum means the key has the right shape but its checksum does
	// not match, so it was mistyped, truncated or made up; it is rejected
	// without touching the cache or the database.
	ErrChecksum = errors.New("apikey: key checksum mismatch")
)

const (
	// maxPrefixLen bounds the configured prefix so keys stay short.
	maxPrefixLen = 16
	// randomBytes is the entropy of a key: 240 bits, well above the 160 the
	// specification asks for.
	randomBytes = 30
	// randomLen is the fixed width of the base62 random part: 62^41 > 2^240
	// > 62^40, so every 30-byte value fits in 41 digits.
	randomLen = 41
	// checksumLen is the fixed width of the base62 CRC32: 62^6 > 2^32.
	checksumLen = 6
	// envLen is the length of both EnvLive and EnvTest.
	envLen = 4
	// fixedLen is the length of a key minus its prefix:
	// "_" env "_" random "_" checksum.
	fixedLen = 1 + envLen + 1 + randomLen + 1 + checksumLen
)

// base62 is the digit alphabet of the random and checksum parts, in value
// order: '0' is 0, 'A' is 10, 'a' is 36, 'z' is 61.
const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// base62Value maps a byte to its digit value, or to invalidDigit when the
// byte is outside the alphabet. A table keeps Parse branch-light.
var base62Value = func() (t [256]byte) {
	for i := range t {
		t[i] = invalidDigit
	}
	for i := 0; i < len(base62); i++ {
		t[base62[i]] = byte(i)
	}
	return t
}()

const invalidDigit = 0xFF

// Generate returns a fresh key for the given prefix (the configured
// CREDVAULT_KEY_PREFIX) and environment. The key is returned as a Secret so
// it cannot leak into logs; the caller stores only Hash(key) and shows the
// key to its owner exactly once.
//
// Errors: EINVALID when prefix is not 1–16 characters of [a-z][a-z0-9]* or
// env is neither EnvLive nor EnvTest; EINTERNAL when the system's random
// source fails.
func Generate(prefix, env string) (credvault.Secret, error) {
	if !validPrefix(prefix) {
		return credvault.Secret{}, credvault.Errorf(credvault.EINVALID,
			"key prefix must be 1 to %d characters: a lowercase letter, then lowercase letters or digits", maxPrefixLen)
	}
	if env != EnvLive && env != EnvTest {
		return credvault.Secret{}, credvault.Errorf(credvault.EINVALID,
			"key environment must be %q or %q", EnvLive, EnvTest)
	}
	var raw [randomBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return credvault.Secret{}, credvault.Wrap(credvault.EINTERNAL, err, "cannot generate an API key")
	}
	key := build(prefix, env, &raw)
	clear(raw[:])
	return credvault.NewSecret(key), nil
}

// build assembles a key from already validated parts and the random bytes.
// It is separate from Generate so tests can pin the exact encoding.
func build(prefix, env string, raw *[randomBytes]byte) string {
	buf := make([]byte, 0, len(prefix)+fixedLen)
	buf = append(buf, prefix...)
	buf = append(buf, '_')
	buf = append(buf, env...)
	buf = append(buf, '_')
	buf = appendRandom(buf, raw)
	sum := crc32.ChecksumIEEE(buf)
	buf = append(buf, '_')
	buf = appendChecksum(buf, sum)
	return string(buf)
}

// appendRandom appends the 30 bytes as a big-endian number in base62,
// left-padded with '0' to randomLen digits.
func appendRandom(dst []byte, raw *[randomBytes]byte) []byte {
	num := *raw // long division works on a copy
	var digits [randomLen]byte
	for i := randomLen - 1; i >= 0; i-- {
		rem := 0
		for j := range num {
			acc := rem<<8 | int(num[j])
			num[j] = byte(acc / 62) // #nosec G115 -- acc < 62*256, so acc/62 < 256
			rem = acc % 62
		}
		digits[i] = base62[rem]
	}
	clear(num[:])
	dst = append(dst, digits[:]...)
	clear(digits[:])
	return dst
}

// appendChecksum appends sum in base62, left-padded with '0' to checksumLen.
func appendChecksum(dst []byte, sum uint32) []byte {
	var digits [checksumLen]byte
	v := uint64(sum)
	for i := checksumLen - 1; i >= 0; i-- {
		digits[i] = base62[v%62]
		v /= 62
	}
	return append(dst, digits[:]...)
}

// Parsed is the public part of a key that passed Parse: enough to pick the
// environment and to log about the key without its secret part.
type Parsed struct {
	Prefix string
	Env    string
}

// Parse checks the structure and checksum of a presented key without any
// I/O, so that typos, truncated keys and random guesses are refused before a
// cache or database lookup. It allocates nothing and uses no regexp because it
// runs on every authenticated request. The returned Parsed holds wantPrefix
// and one of the Env constants, never a substring of key, so keeping it does
// not keep the key's memory alive.
//
// Errors: ErrMalformed when key does not have the shape
// "<wantPrefix>_<live|test>_<41 base62>_<6 base62>" (or wantPrefix itself is
// not a valid prefix); ErrChecksum when the shape is right but the checksum
// does not match. Neither is a *credvault.Error; callers map them.
func Parse(key, wantPrefix string) (Parsed, error) {
	p := len(wantPrefix)
	if len(key) != p+fixedLen || !validPrefix(wantPrefix) || key[:p] != wantPrefix || key[p] != '_' {
		return Parsed{}, ErrMalformed
	}
	var env string
	switch key[p+1 : p+1+envLen] {
	case EnvLive:
		env = EnvLive
	case EnvTest:
		env = EnvTest
	default:
		return Parsed{}, ErrMalformed
	}
	rnd := p + 1 + envLen + 1 // start of the random part
	sep := rnd + randomLen    // index of the last underscore
	if key[rnd-1] != '_' || key[sep] != '_' {
		return Parsed{}, ErrMalformed
	}
	var bad byte
	for i := rnd; i < sep; i++ {
		bad |= base62Value[key[i]] & 0x80
	}
	var want uint64
	for i := sep + 1; i < len(key); i++ {
		d := base62Value[key[i]]
		bad |= d & 0x80
		want = want*62 + uint64(d)
	}
	if bad != 0 {
		return Parsed{}, ErrMalformed
	}
	if uint64(crc32String(key[:sep])) != want {
		return Parsed{}, ErrChecksum
	}
	return Parsed{Prefix: wantPrefix, Env: env}, nil
}

// crc32String is crc32.ChecksumIEEE over a string. hash/crc32 only takes
// byte slices, and converting the key would allocate on every request, so
// it reads the string's bytes in place (ChecksumIEEE neither keeps nor
// writes them). That keeps the package's sliced, vectorized CRC: a byte at
// a time took 3% of /v1/auth/check's CPU (issue 24).
func crc32String(s string) uint32 {
	return crc32.ChecksumIEEE(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// validPrefix reports whether p is 1–16 characters of [a-z][a-z0-9]*.
func validPrefix(p string) bool {
	if len(p) == 0 || len(p) > maxPrefixLen || p[0] < 'a' || p[0] > 'z' {
		return false
	}
	for i := 1; i < len(p); i++ {
		c := p[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// Hash returns the SHA-256 of the full key: the only form credvault stores
// and the value it looks keys up by. Hashing is deterministic and unsalted on
// purpose, because a key carries 240 random bits and must be found by its
// hash alone. It never fails.
func Hash(key string) [sha256.Size]byte {
	// Copy into a stack buffer: converting the string directly would put the
	// key on the heap on every request.
	var buf [128]byte
	if len(key) <= len(buf) {
		b := append(buf[:0], key...)
		sum := sha256.Sum256(b)
		clear(b)
		return sum
	}
	return sha256.Sum256([]byte(key))
}

// Last4 returns the last 4 characters of key (the tail of its checksum), the
// only part of a key credvault keeps besides its hash, for listings shown as
// "cv_live_…a1B2". The result is a copy, so storing it does not keep the
// key's memory alive. A key shorter than 4 characters yields "" rather than
// revealing it whole. It never fails.
func Last4(key string) string {
	if len(key) < 4 {
		return ""
	}
	return strings.Clone(key[len(key)-4:])
}

// Display formats the public parts of a key the way listings and logs show
// it, e.g. Display("cv", "live", "a1B2") is "cv_live_…a1B2". It never fails.
func Display(prefix, env, last4 string) string {
	return prefix + "_" + env + "_…" + last4
}

// hashLong is Hash for JWT keys (about 500 bytes): a larger stack buffer,
// so that hashing a token on every request does not allocate.
func hashLong(key string) [sha256.Size]byte {
	var buf [1024]byte
	if len(key) <= len(buf) {
		b := append(buf[:0], key...)
		sum := sha256.Sum256(b)
		clear(b)
		return sum
	}
	return sha256.Sum256([]byte(key))
}
