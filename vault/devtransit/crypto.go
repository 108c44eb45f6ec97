package devtransit

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

const (
	keyTypeAES256 = "aes256-gcm96"
	kdfHKDF       = "hkdf_sha256"
	keyBytes      = 32
	nonceBytes    = 12
	prefix        = "vault:v"

	errMsgMissingContext = "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key"
	errMsgTooOld         = "ciphertext or signature version is disallowed by policy (too old)"
)

// opError is a per-item failure; internal ones make a batch answer 500.
type opError struct {
	msg      string
	internal bool
}

func (e *opError) Error() string { return e.msg }

func userOpErr(msg string) *opError { return &opError{msg: msg} }

// keyVersion is one generation of key material.
type keyVersion struct {
	material []byte
	created  time.Time
}

// key is a named transit key. A published *key is never modified: every
// change builds a copy and swaps it in, so readers need no lock while they
// encrypt.
type key struct {
	name            string
	typ             string // keyTypeAES256, keyTypeEd25519 or keyTypeECDSAP256
	derived         bool
	exportable      bool
	deletionAllowed bool
	plaintextBackup bool
	minDecrypt      int
	minEncrypt      int
	autoRotate      time.Duration
	versions        []keyVersion // versions[i] is version i+1
}

func (k *key) latest() int { return len(k.versions) }

// clone returns a copy that may be changed without touching k.
func (k *key) clone() *key {
	c := *k
	c.versions = append([]keyVersion(nil), k.versions...)
	return &c
}

// newKey generates a key with one random version.
func newKey(name string, derived bool, now time.Time) (*key, error) {
	k := &key{name: name, typ: keyTypeAES256, derived: derived, minDecrypt: 1}
	if err := k.addVersion(now); err != nil {
		return nil, err
	}
	return k, nil
}

// addVersion appends a fresh random version (a rotation).
func (k *key) addVersion(now time.Time) error {
	var m []byte
	if k.signing() {
		var err error
		if m, err = generateSigningMaterial(k.typ); err != nil {
			return err
		}
	} else {
		m = make([]byte, keyBytes)
		if _, err := rand.Read(m); err != nil {
			return fmt.Errorf("generating key material: %w", err)
		}
	}
	k.versions = append(k.versions, keyVersion{material: m, created: now})
	if k.minDecrypt == 0 {
		k.minDecrypt = 1
	}
	return nil
}

// versionKey returns the AES key for a version: the raw material, or for a
// derived key HKDF-SHA256(material, no salt, info = context).
func (k *key) versionKey(ver int, context []byte) ([]byte, *opError) {
	if !k.derived {
		if ver <= 0 || ver > len(k.versions) {
			return nil, userOpErr("no such key version")
		}
		return k.versions[ver-1].material, nil
	}
	if ver <= 0 || ver > k.latest() {
		return nil, userOpErr("invalid key version")
	}
	if len(context) == 0 {
		return nil, userOpErr(errMsgMissingContext)
	}
	out, err := hkdf.Key(sha256.New, k.versions[ver-1].material, nil, string(context), keyBytes)
	if err != nil {
		return nil, &opError{msg: "error reading returned derived bytes: " + err.Error(), internal: true}
	}
	return out, nil
}

func gcmFor(aesKey []byte) (cipher.AEAD, *opError) {
	block, err := aes.NewCipher(aesKey)
	if err != nil {
		return nil, &opError{msg: err.Error(), internal: true}
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, &opError{msg: err.Error(), internal: true}
	}
	return gcm, nil
}

// decodeAAD decodes associated data; Vault reports a bad encoding here as an
// internal error.
func decodeAAD(encoded string) ([]byte, *opError) {
	if encoded == "" {
		return nil, nil
	}
	aad, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil, &opError{msg: fmt.Sprintf("unable to get associated_data/additional_data from factory[0]: %v", err), internal: true}
	}
	return aad, nil
}

// encrypt seals plaintext under version ver (0 = latest) and returns the
// ciphertext string and the version used.
func (k *key) encrypt(ver int, plaintext, context []byte, aadB64 string) (string, int, *opError) {
	if k.signing() {
		// keysutil's Policy.EncryptWithFactory, an item's 400
		// (sdk/helper/keysutil/policy.go in openbao/openbao).
		return "", 0, userOpErr(fmt.Sprintf("message encryption not supported for key type %s", k.typ))
	}
	switch {
	case ver == 0:
		ver = k.latest()
	case ver < 0:
		return "", 0, userOpErr("requested version for encryption is negative")
	case ver > k.latest():
		return "", 0, userOpErr("requested version for encryption is higher than the latest key version")
	case ver < k.minEncrypt:
		return "", 0, userOpErr("requested version for encryption is less than the minimum encryption key version")
	}
	aesKey, oe := k.versionKey(ver, context)
	if oe != nil {
		return "", 0, oe
	}
	aad, oe := decodeAAD(aadB64)
	if oe != nil {
		return "", 0, oe
	}
	gcm, oe := gcmFor(aesKey)
	if oe != nil {
		return "", 0, oe
	}
	nonce := make([]byte, nonceBytes)
	if _, err := rand.Read(nonce); err != nil {
		return "", 0, &opError{msg: err.Error(), internal: true}
	}
	sealed := gcm.Seal(nonce, nonce, plaintext, aad)
	return prefix + strconv.Itoa(ver) + ":" + base64.StdEncoding.EncodeToString(sealed), ver, nil
}

// decrypt opens a "vault:vN:" ciphertext, checking in Vault's order.
func (k *key) decrypt(value string, context []byte, aadB64 string) ([]byte, *opError) {
	if !strings.HasPrefix(value, prefix) {
		return nil, userOpErr("invalid ciphertext: no prefix")
	}
	parts := strings.SplitN(strings.TrimPrefix(value, prefix), ":", 2)
	if len(parts) != 2 {
		return nil, userOpErr("invalid ciphertext: wrong number of fields")
	}
	ver, err := strconv.Atoi(parts[0])
	if err != nil {
		return nil, userOpErr("invalid ciphertext: version number could not be decoded")
	}
	if ver == 0 {
		ver = 1
	}
	if ver > k.latest() {
		return nil, userOpErr("invalid ciphertext: version is too new")
	}
	if k.minDecrypt > 0 && ver < k.minDecrypt {
		return nil, userOpErr(errMsgTooOld)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, userOpErr("invalid ciphertext: could not decode base64")
	}
	aesKey, oe := k.versionKey(ver, context)
	if oe != nil {
		return nil, oe
	}
	aad, oe := decodeAAD(aadB64)
	if oe != nil {
		return nil, oe
	}
	gcm, oe := gcmFor(aesKey)
	if oe != nil {
		return nil, oe
	}
	if len(raw) < nonceBytes {
		return nil, userOpErr("invalid ciphertext length")
	}
	plain, err := gcm.Open(nil, raw[:nonceBytes], raw[nonceBytes:], aad)
	if err != nil {
		return nil, userOpErr(err.Error())
	}
	return plain, nil
}

// keyData is Vault's read shape for a key: for aes256-gcm96 "keys" maps
// each version to its creation time in unix seconds, for signing keys to
// its curve name, public key and creation time.
func (k *key) keyData() map[string]any { return k.keyDataFor(nil) }

// keyDataFor is keyData with the public keys of a derived ed25519 key for
// context (a read's context parameter).
func (k *key) keyDataFor(context []byte) map[string]any {
	// A real server moves the versions below min_decryption_version to its
	// archive and lists only the rest (Vault/OpenBao keysutil
	// handleArchiving); lowering the minimum lists them again.
	var versions any
	if k.signing() {
		versions = k.publicKeys(context)
	} else {
		created := make(map[string]int64, len(k.versions))
		for i, v := range k.versions {
			if i+1 >= k.minDecrypt {
				created[strconv.Itoa(i+1)] = v.created.Unix()
			}
		}
		versions = created
	}
	d := map[string]any{
		"name":                   k.name,
		"type":                   k.typ,
		"derived":                k.derived,
		"deletion_allowed":       k.deletionAllowed,
		"min_available_version":  0,
		"min_decryption_version": k.minDecrypt,
		"min_encryption_version": k.minEncrypt,
		"latest_version":         k.latest(),
		"exportable":             k.exportable,
		"allow_plaintext_backup": k.plaintextBackup,
		"supports_encryption":    !k.signing(),
		"supports_decryption":    !k.signing(),
		"supports_signing":       k.signing(),
		"supports_derivation":    k.typ != keyTypeECDSAP256,
		"auto_rotate_period":     int64(k.autoRotate.Seconds()),
		"imported_key":           false,
		"soft_deleted":           false, // OpenBao's key reads carry it (formatKeyPolicy, builtin/logical/transit/path_keys.go); devtransit never soft-deletes
		"keys":                   versions,
	}
	if k.derived {
		d["kdf"] = kdfHKDF
		d["convergent_encryption"] = false
	}
	return d
}
