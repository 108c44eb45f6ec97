package devtransit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha1" // #nosec G505 -- Vault offers sha1 as a signing hash; so must its stand-in
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Signing key types: the transit engine's names.
const (
	keyTypeEd25519   = "ed25519"
	keyTypeECDSAP256 = "ecdsa-p256"
)

// signFields are the parameters transit/sign and transit/verify know.
var signFields = []string{"name", "input", "context", "hash_algorithm", "algorithm", "urlalgorithm", "key_version",
	"prehashed", "signature_algorithm", "marshaling_algorithm", "salt_length", "batch_input", "signature", "hmac"}

// hashFuncs is the transit engine's hash_algorithm table; "none" hashes
// nothing.
var hashFuncs = map[string]func() hash.Hash{
	"none":     nil,
	"sha1":     sha1.New,
	"sha2-224": sha256.New224,
	"sha2-256": sha256.New,
	"sha2-384": sha512.New384,
	"sha2-512": sha512.New,
	"sha3-224": func() hash.Hash { return sha3.New224() },
	"sha3-256": func() hash.Hash { return sha3.New256() },
	"sha3-384": func() hash.Hash { return sha3.New384() },
	"sha3-512": func() hash.Hash { return sha3.New512() },
}

// signing reports whether k is a signing (asymmetric) key.
func (k *key) signing() bool { return k.typ == keyTypeEd25519 || k.typ == keyTypeECDSAP256 }

// generateSigningMaterial makes one version of a signing key: for ed25519
// the 64-byte private key (seed and public key), for ecdsa-p256 the SEC 1
// DER private key.
func generateSigningMaterial(typ string) ([]byte, error) {
	switch typ {
	case keyTypeEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generating ed25519 key: %w", err)
		}
		return priv, nil
	case keyTypeECDSAP256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generating P-256 key: %w", err)
		}
		return x509.MarshalECPrivateKey(priv)
	}
	return nil, fmt.Errorf("no signing material for key type %q", typ)
}

// checkMaterial validates one stored version of a key of type typ.
func checkMaterial(typ string, m []byte) error {
	switch typ {
	case keyTypeAES256:
		if len(m) != keyBytes {
			return fmt.Errorf("%d bytes, want %d", len(m), keyBytes)
		}
	case keyTypeEd25519:
		if len(m) != ed25519.PrivateKeySize {
			return fmt.Errorf("%d bytes, want %d", len(m), ed25519.PrivateKeySize)
		}
	case keyTypeECDSAP256:
		priv, err := x509.ParseECPrivateKey(m)
		if err != nil || priv.Curve != elliptic.P256() {
			return errors.New("not a P-256 private key")
		}
	default:
		return fmt.Errorf("unknown key type %q", typ)
	}
	return nil
}

// signer returns version ver's private key.
//
// A derived ed25519 key signs with a key per context, as OpenBao derives
// it (Policy.GetKey, sdk/helper/keysutil/policy.go in openbao/openbao):
// HKDF-SHA256 over the version's 64-byte private key, no salt, the context
// as info, 32 bytes read as the Ed25519 seed. Without a context that is
// OpenBao's missing-context error, which its SignWithOptions and
// VerifySignatureWithOptions wrap as "error deriving key: ..." (an
// internal error: a single request answers 500).
func (k *key) signer(ver int, context []byte) (crypto.Signer, error) {
	m := k.versions[ver-1].material
	if k.typ == keyTypeEd25519 {
		if !k.derived {
			return ed25519.PrivateKey(m), nil
		}
		if len(context) == 0 {
			return nil, errors.New("error deriving key: " + errMsgMissingContext)
		}
		seed, err := hkdf.Key(sha256.New, m, nil, string(context), ed25519.SeedSize)
		if err != nil {
			return nil, fmt.Errorf("error deriving key: error generating derived key: %w", err)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	return x509.ParseECPrivateKey(m)
}

// publicKeyText is the transit engine's public_key of a version: standard
// base64 of the raw key for ed25519, a PKIX PEM block for ECDSA. A derived
// ed25519 key has one only for a context ("" without, as OpenBao answers).
func (k *key) publicKeyText(ver int, context []byte) (string, error) {
	if k.derived && len(context) == 0 {
		return "", nil
	}
	s, err := k.signer(ver, context)
	if err != nil {
		return "", err
	}
	if k.typ == keyTypeEd25519 {
		return base64.StdEncoding.EncodeToString(s.Public().(ed25519.PublicKey)), nil
	}
	der, err := x509.MarshalPKIXPublicKey(s.Public())
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

// publicKeys is the "keys" object of a signing key's read: per version its
// curve name, public key and creation time.
func (k *key) publicKeys(context []byte) map[string]map[string]any {
	out := make(map[string]map[string]any, len(k.versions))
	name := "ed25519"
	if k.typ == keyTypeECDSAP256 {
		name = elliptic.P256().Params().Name
	}
	for i, v := range k.versions {
		if i+1 < k.minDecrypt {
			continue // archived, as on a real server (see the key read)
		}
		pub, _ := k.publicKeyText(i+1, context) // material was validated when stored
		out[strconv.Itoa(i+1)] = map[string]any{
			"name": name, "public_key": pub, "certificate_chain": "",
			"creation_time": v.created.UTC().Format(time.RFC3339Nano),
		}
	}
	return out
}

// withURLAlgorithm records the hash algorithm given in the path
// (transit/sign/<key>/<algorithm>), which wins over the body's.
func withURLAlgorithm(data map[string]any, alg string) map[string]any {
	if data == nil {
		data = map[string]any{}
	}
	data["urlalgorithm"] = alg
	return data
}

// signOptions are the parameters transit/sign and transit/verify share,
// resolved and checked in the transit engine's order.
type signOptions struct {
	hash      string
	jws       bool
	prehashed bool
	sigAlg    string
}

func parseSignOptions(d map[string]any) (signOptions, error) {
	var o signOptions
	for _, f := range []string{"urlalgorithm", "hash_algorithm", "algorithm"} {
		v, _, err := str(d, f)
		if err != nil {
			return o, err
		}
		if v != "" {
			o.hash = v
			break
		}
	}
	if o.hash == "" {
		o.hash = "sha2-256"
	}
	if _, ok := hashFuncs[o.hash]; !ok {
		return o, userError("invalid hash algorithm %q", o.hash)
	}
	marshaling, _, err := str(d, "marshaling_algorithm")
	if err != nil {
		return o, err
	}
	switch marshaling {
	case "", "asn1":
	case "jws":
		o.jws = true
	default:
		return o, userError("invalid marshaling type %q", marshaling)
	}
	if o.prehashed, _, err = boolean(d, "prehashed"); err != nil {
		return o, err
	}
	if o.sigAlg, _, err = str(d, "signature_algorithm"); err != nil {
		return o, err
	}
	return o, nil
}

// checkHashNone is the engine's rule for hash_algorithm=none.
func (o signOptions) checkHashNone() error {
	if o.hash == "none" && (!o.prehashed || o.sigAlg != "pkcs1v15") {
		return userError("hash_algorithm=none requires both prehashed=true and signature_algorithm=pkcs1v15")
	}
	return nil
}

// digest is what an ECDSA key signs: the input hashed with the chosen
// algorithm unless the caller prehashed it. Ed25519 signs the input itself.
func (o signOptions) digest(k *key, input []byte) []byte {
	if k.typ != keyTypeECDSAP256 || o.prehashed {
		return input
	}
	if f := hashFuncs[o.hash]; f != nil {
		h := f()
		h.Write(input)
		return h.Sum(nil)
	}
	return input
}

// signItems reads batch_input (each item a string map) or the single
// input; fields lists what a single call carries.
func signItems(d map[string]any, fields ...string) ([]map[string]string, bool, error) {
	raw, isBatch := d["batch_input"]
	if isBatch && raw != nil {
		list, ok := raw.([]any)
		if !ok {
			return nil, true, internalError(fmt.Sprintf("failed to parse batch input: '' source data must be an array or slice, got %T", raw))
		}
		if len(list) == 0 {
			return nil, true, userError("missing batch input to process")
		}
		items := make([]map[string]string, len(list))
		for i, it := range list {
			m, ok := it.(map[string]any)
			if !ok {
				return nil, true, internalError(fmt.Sprintf("failed to parse batch input: '[%d]' expected a map, got '%T'", i, it))
			}
			items[i] = map[string]string{}
			for k, v := range m {
				sv, ok := v.(string)
				if !ok {
					return nil, true, internalError(fmt.Sprintf("failed to parse batch input: '[%d][%s]' expected type 'string', got unconvertible type '%T'", i, k, v))
				}
				items[i][k] = sv
			}
		}
		return items, true, nil
	}
	it := map[string]string{}
	for _, f := range fields {
		v, ok, err := str(d, f)
		if err != nil {
			return nil, false, err
		}
		if ok || f == "input" || f == "context" {
			it[f] = v
		}
	}
	return []map[string]string{it}, false, nil
}

// sign is transit/sign/<name>[/<hash>]: a signature "vault:v<N>:<base64>"
// per input, made with version key_version (0 = latest).
func (s *Server) sign(m *mount, name string, req *request) (*response, error) {
	d := req.data
	ver, _, err := integer(d, "key_version")
	if err != nil {
		return nil, err
	}
	o, err := parseSignOptions(d)
	if err != nil {
		return nil, err
	}
	k := s.getKey(m, name)
	if k == nil {
		return nil, userError("signing key not found")
	}
	if !k.signing() {
		return nil, userError("key type %s does not support signing", k.typ)
	}
	if err := o.checkHashNone(); err != nil {
		return nil, err
	}
	items, isBatch, err := signItems(d, "input", "context")
	if err != nil {
		return nil, err
	}
	results := make([]map[string]any, len(items))
	for i, it := range items {
		res := map[string]any{"key_version": 0}
		results[i] = res
		if isBatch {
			res["reference"] = it["reference"]
		}
		sig, used, msg, signing := k.signOne(ver, it, o)
		if msg != "" {
			switch {
			case !isBatch && signing:
				return nil, internalError(msg)
			case !isBatch:
				return nil, userError("%s", msg)
			}
			res["error"] = msg
			continue
		}
		res["signature"], res["key_version"] = sig, used
	}
	resp := &response{warnings: unknownParams(d, signFields...)}
	if isBatch {
		resp.data = map[string]any{"batch_results": results}
	} else {
		resp.data = map[string]any{"signature": results[0]["signature"], "key_version": results[0]["key_version"]}
	}
	return resp, nil
}

// signOne signs one item; msg is the error, if any. signing reports an
// error of the signing step itself (keysutil's Policy.SignWithOptions:
// the version checks, the key, the Ed25519 options), which OpenBao's
// single sign returns as a plain error, not an invalid request, so its
// HTTP layer answers 500 with the message wrapped ("1 error occurred:");
// the item checks before it are 400s (builtin/logical/transit/
// path_sign_verify.go, pathSignWrite, in openbao/openbao).
func (k *key) signOne(ver int, it map[string]string, o signOptions) (sig string, used int, msg string, signing bool) {
	rawInput, ok := it["input"]
	if !ok {
		return "", 0, "missing input", false
	}
	input, err := base64.StdEncoding.DecodeString(rawInput)
	if err != nil {
		return "", 0, fmt.Sprintf("unable to decode input as base64: %s", err), false
	}
	input = o.digest(k, input)
	var context []byte
	if c := it["context"]; c != "" {
		if context, err = base64.StdEncoding.DecodeString(c); err != nil {
			return "", 0, "failed to base64-decode context", false
		}
	}
	switch {
	case ver == 0:
		ver = k.latest()
	case ver < 0:
		return "", 0, "requested version for signing is negative", true
	case ver > k.latest():
		return "", 0, "requested version for signing is higher than the latest key version", true
	case k.minEncrypt > 0 && ver < k.minEncrypt:
		return "", 0, "requested version for signing is less than the minimum encryption key version", true
	}
	signer, err := k.signer(ver, context)
	if err != nil {
		return "", 0, err.Error(), true
	}
	var raw []byte
	if k.typ == keyTypeEd25519 {
		if o.hash == "sha2-512" {
			return "", 0, "error generating Ed25519 options: hash algorithm of SHA2 512 is not supported feature", true
		}
		raw = ed25519.Sign(signer.(ed25519.PrivateKey), input)
	} else if raw, err = signECDSA(signer.(*ecdsa.PrivateKey), input, o.jws); err != nil {
		return "", 0, err.Error(), true
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	if o.jws {
		enc = base64.RawURLEncoding.EncodeToString(raw)
	}
	return prefix + strconv.Itoa(ver) + ":" + enc, ver, "", false
}

// ecdsaSig is the ASN.1 form of an ECDSA signature.
type ecdsaSig struct{ R, S *big.Int }

// signECDSA signs a digest: ASN.1 DER, or for JWS the fixed-width r‖s.
func signECDSA(priv *ecdsa.PrivateKey, digest []byte, jws bool) ([]byte, error) {
	r, s, err := ecdsa.Sign(rand.Reader, priv, digest)
	if err != nil {
		return nil, err
	}
	if !jws {
		return asn1.Marshal(ecdsaSig{R: r, S: s})
	}
	const n = 32
	out := make([]byte, 2*n)
	r.FillBytes(out[:n])
	s.FillBytes(out[n:])
	return out, nil
}

// verify is transit/verify/<name>[/<hash>]: {"valid": bool} per input.
func (s *Server) verify(m *mount, name string, req *request) (*response, error) {
	d := req.data
	items, isBatch, err := signItems(d, "input", "signature", "hmac", "context")
	if err != nil {
		return nil, err
	}
	var sigFound, hmacFound, missing bool
	for _, it := range items {
		if _, ok := it["signature"]; ok {
			sigFound = true
		} else if _, ok := it["hmac"]; ok {
			hmacFound = true
		} else {
			missing = true
		}
	}
	switch {
	case !isBatch && sigFound && hmacFound:
		return nil, userError("provide one of 'signature' or 'hmac'")
	case !isBatch && !sigFound && !hmacFound:
		return nil, userError("neither a 'signature' nor an 'hmac' were given to verify")
	case sigFound && hmacFound:
		return nil, userError("elements of batch_input must all provide 'signature' or all provide 'hmac'")
	case missing && sigFound:
		return nil, userError("some elements of batch_input are missing 'signature'")
	case missing && hmacFound:
		return nil, userError("some elements of batch_input are missing 'hmac'")
	case missing:
		return nil, userError("no batch_input elements have 'signature' or 'hmac'")
	case hmacFound:
		return nil, userError("devtransit does not support HMAC verification")
	}
	o, err := parseSignOptions(d)
	if err != nil {
		return nil, err
	}
	k := s.getKey(m, name)
	if k == nil {
		return nil, userError("signature verification key not found")
	}
	if !k.signing() {
		return nil, userError("key type %s does not support verification", k.typ)
	}
	if err := o.checkHashNone(); err != nil {
		return nil, err
	}
	results := make([]map[string]any, len(items))
	for i, it := range items {
		res := map[string]any{"valid": false}
		results[i] = res
		if isBatch {
			res["reference"] = it["reference"]
		}
		valid, msg, internal := k.verifyOne(it, o)
		if msg != "" {
			switch {
			case !isBatch && internal:
				return nil, internalError(msg)
			case !isBatch:
				return nil, userError("%s", msg)
			}
			res["error"] = msg
			continue
		}
		res["valid"] = valid
	}
	resp := &response{warnings: unknownParams(d, signFields...)}
	if isBatch {
		resp.data = map[string]any{"batch_results": results}
	} else {
		resp.data = map[string]any{"valid": results[0]["valid"]}
	}
	return resp, nil
}

// verifyOne checks one item in the engine's order: input, signature
// prefix, version (too new, too old), encoding, then the signature.
// internal reports an error of the key itself (a derived key without a
// context), which OpenBao's single verify answers 500 rather than 400.
func (k *key) verifyOne(it map[string]string, o signOptions) (valid bool, msg string, internal bool) {
	rawInput, ok := it["input"]
	if !ok {
		return false, "missing input", false
	}
	input, err := base64.StdEncoding.DecodeString(rawInput)
	if err != nil {
		return false, fmt.Sprintf("unable to decode input as base64: %s", err), false
	}
	sig, ok := it["signature"]
	if !ok {
		return false, "missing signature", false
	}
	input = o.digest(k, input)
	var context []byte
	if c := it["context"]; c != "" {
		if context, err = base64.StdEncoding.DecodeString(c); err != nil {
			return false, "failed to base64-decode context", false
		}
	}
	if !strings.HasPrefix(sig, prefix) {
		return false, "invalid signature: no prefix", false
	}
	parts := strings.SplitN(strings.TrimPrefix(sig, prefix), ":", 2)
	if len(parts) != 2 {
		return false, "invalid signature: wrong number of fields", false
	}
	ver, err := strconv.Atoi(parts[0])
	if err != nil {
		return false, "invalid signature: version number could not be decoded", false
	}
	if ver > k.latest() {
		return false, "invalid signature: version is too new", false
	}
	if k.minDecrypt > 0 && ver < k.minDecrypt {
		return false, errMsgTooOld, false
	}
	var raw []byte
	if o.jws {
		raw, err = base64.RawURLEncoding.DecodeString(parts[1])
	} else {
		raw, err = base64.StdEncoding.DecodeString(parts[1])
	}
	if err != nil {
		return false, "invalid base64 signature value", false
	}
	signer, err := k.signer(ver, context)
	if err != nil {
		return false, err.Error(), true
	}
	if k.typ == keyTypeEd25519 {
		if o.hash == "sha2-512" {
			return false, "error generating Ed25519 options: hash algorithm of SHA2 512 is not supported feature", false
		}
		return ed25519.Verify(signer.Public().(ed25519.PublicKey), input, raw), "", false
	}
	var es ecdsaSig
	if o.jws {
		half := len(raw) / 2
		es.R, es.S = new(big.Int).SetBytes(raw[:half]), new(big.Int).SetBytes(raw[half:])
	} else {
		rest, err := asn1.Unmarshal(raw, &es)
		if err != nil {
			return false, "supplied signature is invalid", false
		}
		if len(rest) != 0 {
			return false, "supplied signature contains extra data", false
		}
	}
	return ecdsa.Verify(signer.Public().(*ecdsa.PublicKey), input, es.R, es.S), "", false
}

// ImportSigningKey loads signing keys (ed25519.PrivateKey or a P-256
// *ecdsa.PrivateKey), one per version running 1..N, as key name on the
// transit mount at mountPath, replacing any key of that name, and persists
// it. Test hook: it lets signatures recorded from a real server be
// reproduced.
func (s *Server) ImportSigningKey(mountPath, name string, versions map[int]crypto.Signer) error {
	if !validName(name) || len(versions) == 0 {
		return fmt.Errorf("devtransit: ImportSigningKey: invalid name %q or no versions", name)
	}
	k := &key{name: name, minDecrypt: 1, versions: make([]keyVersion, len(versions))}
	now := s.now()
	for v := 1; v <= len(versions); v++ {
		var typ string
		var material []byte
		switch priv := versions[v].(type) {
		case ed25519.PrivateKey:
			typ, material = keyTypeEd25519, append([]byte(nil), priv...)
		case *ecdsa.PrivateKey:
			der, err := x509.MarshalECPrivateKey(priv)
			if err != nil || priv.Curve != elliptic.P256() {
				return fmt.Errorf("devtransit: ImportSigningKey: version %d is not a P-256 key", v)
			}
			typ, material = keyTypeECDSAP256, der
		default:
			return fmt.Errorf("devtransit: ImportSigningKey: version %d missing or of an unsupported type", v)
		}
		if k.typ != "" && k.typ != typ {
			return fmt.Errorf("devtransit: ImportSigningKey: versions mix key types")
		}
		k.typ = typ
		k.versions[v-1] = keyVersion{material: material, created: now}
	}
	path := strings.Trim(mountPath, "/") + "/"
	s.mu.RLock()
	m := s.mounts[path]
	s.mu.RUnlock()
	if m == nil {
		return fmt.Errorf("devtransit: ImportSigningKey: no transit mount at %q", path)
	}
	if err := s.changeKeys(m, func() (bool, error) { m.keys[name] = k; return true, nil }); err != nil {
		return fmt.Errorf("devtransit: ImportSigningKey: %w", err)
	}
	return nil
}
