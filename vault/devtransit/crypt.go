package devtransit

import (
	"crypto/rand"
	"encoding/base64"
)

const (
	msgMixedContext   = "context should be set either in all the request blocks or in none"
	msgKeyNotFound    = "encryption key not found"
	msgNonceForbidden = "provided nonce not allowed for this key"
)

var encryptFields = []string{"name", "plaintext", "padding_scheme", "context", "nonce", "type", "convergent_encryption",
	"key_version", "partial_failure_response_code", "associated_data", "batch_input", "iv"}

func (s *Server) encrypt(m *mount, name string, req *request) (*response, error) {
	d := req.data
	batchRaw, isBatch := d["batch_input"]
	isBatch = isBatch && batchRaw != nil
	var items []item
	var err error
	if isBatch {
		if items, err = decodeBatch(batchRaw, "plaintext"); err != nil {
			return nil, err
		}
	} else {
		if _, ok := d["plaintext"]; !ok {
			return nil, userError("missing plaintext to encrypt")
		}
		it, err := singleItem(d, "plaintext", "context", "nonce", "key_version", "associated_data")
		if err != nil {
			return nil, err
		}
		items = []item{it}
	}
	errs := make([]string, len(items))
	userBad, err := checkItems(items, true, errs)
	if err != nil {
		return nil, err
	}
	resp := &response{warnings: unknownParams(d, encryptFields...)}
	k := s.getKey(m, name)
	if k == nil { // Vault's create operation: the key may be upserted.
		contextSet := items[0].context != ""
		convergent, _, err := boolean(d, "convergent_encryption")
		if err != nil {
			return nil, err
		}
		if convergent && !contextSet {
			return nil, userError("convergent encryption requires derivation to be enabled, so context is required")
		}
		typ, _, err := str(d, "type")
		if err != nil {
			return nil, err
		}
		if err := checkKeyType(typ); err != nil {
			return nil, err
		}
		if convergent {
			return nil, userError("devtransit does not support convergent encryption")
		}
		var created bool
		if k, created, err = s.upsertKey(m, name, contextSet); err != nil {
			return nil, err
		}
		if k != nil && !created {
			resp.warn("Attempted creation of the key during the encrypt operation, but it was created beforehand")
		}
	}
	if k == nil {
		return nil, userError(msgKeyNotFound)
	}
	results := make([]encResult, len(items))
	success, internalBad := false, false
	for i, it := range items {
		results[i].Reference = it.reference
		if errs[i] != "" {
			results[i].Error, userBad = errs[i], true
			continue
		}
		if it.nonce != "" {
			results[i].Error, userBad = msgNonceForbidden, true
			continue
		}
		ct, ver, oe := k.encrypt(it.keyVersion, it.pt, it.ctx, it.aad)
		if oe != nil {
			results[i].Error = oe.msg
			internalBad, userBad = internalBad || oe.internal, userBad || !oe.internal
			continue
		}
		results[i].Ciphertext, results[i].KeyVersion, success = ct, ver, true
	}
	if !isBatch {
		if results[0].Error != "" {
			if internalBad {
				return nil, internalError(results[0].Error)
			}
			return nil, userError("%s", results[0].Error)
		}
		resp.data = map[string]any{"ciphertext": results[0].Ciphertext, "key_version": results[0].KeyVersion}
		return resp, nil
	}
	resp.data = map[string]any{"batch_results": results}
	return resp, batchStatus(d, resp, success, userBad, internalBad)
}

// upsertKey creates a key for encrypt unless it exists or upsert is
// disabled on the mount; it returns the key (nil when not allowed) and
// whether this call created it.
func (s *Server) upsertKey(m *mount, name string, derived bool) (*key, bool, error) {
	var out *key
	created := false
	err := s.changeKeys(m, func() (bool, error) {
		if k := m.keys[name]; k != nil {
			out = k
			return false, nil
		}
		if m.disableUpsert {
			return false, nil
		}
		k, err := newKey(name, derived, s.now())
		if err != nil {
			return false, internalError(err.Error())
		}
		m.keys[name], out, created = k, k, true
		return true, nil
	})
	if err != nil {
		return nil, false, err
	}
	if created {
		s.log.Info("devtransit: key created by encrypt (upsert)", "mount", m.path, "key", name, "derived", derived)
	}
	return out, created, nil
}

func (s *Server) decrypt(m *mount, name string, req *request) (*response, error) {
	d := req.data
	items, isBatch, err := cipherItems(d, "ciphertext", "ciphertext", "context", "nonce", "associated_data")
	if err != nil {
		return nil, err
	}
	errs := make([]string, len(items))
	userBad, err := checkItems(items, false, errs)
	if err != nil {
		return nil, err
	}
	k := s.getKey(m, name)
	if k == nil {
		return nil, userError(msgKeyNotFound)
	}
	if k.signing() {
		return nil, userError("key type %s does not support decryption", k.typ)
	}
	results := make([]decResult, len(items))
	success, internalBad := false, false
	for i, it := range items {
		results[i].Reference = it.reference
		if errs[i] != "" {
			results[i].Error = errs[i]
			continue
		}
		pt, oe := k.decrypt(it.ciphertext, it.ctx, it.aad)
		if oe != nil {
			results[i].Error = oe.msg
			internalBad, userBad = internalBad || oe.internal, userBad || !oe.internal
			continue
		}
		results[i].Plaintext, success = base64.StdEncoding.EncodeToString(pt), true
	}
	resp := &response{warnings: unknownParams(d, "name", "ciphertext", "padding_scheme", "context", "nonce",
		"partial_failure_response_code", "associated_data", "batch_input")}
	if !isBatch {
		if results[0].Error != "" {
			if internalBad {
				return nil, internalError(results[0].Error)
			}
			return nil, userError("%s", results[0].Error)
		}
		resp.data = map[string]any{"plaintext": results[0].Plaintext}
		return resp, nil
	}
	resp.data = map[string]any{"batch_results": results}
	return resp, batchStatus(d, resp, success, userBad, internalBad)
}

func (s *Server) rewrap(m *mount, name string, req *request) (*response, error) {
	d := req.data
	items, isBatch, err := cipherItems(d, "", "ciphertext", "context", "nonce", "key_version")
	if err != nil {
		return nil, err
	}
	errs := make([]string, len(items))
	if _, err := checkItems(items, false, errs); err != nil {
		return nil, err
	}
	k := s.getKey(m, name)
	if k == nil {
		return nil, userError(msgKeyNotFound)
	}
	if k.signing() {
		return nil, userError("key type %s does not support decryption", k.typ)
	}
	results := make([]encResult, len(items))
	for i, it := range items {
		results[i].Reference = it.reference
		if errs[i] != "" {
			results[i].Error = errs[i]
			continue
		}
		if it.nonce != "" {
			results[i].Error = msgNonceForbidden
			continue
		}
		// Rewrap carries no associated data: Vault ignores it here.
		pt, oe := k.decrypt(it.ciphertext, it.ctx, "")
		if oe == nil {
			results[i].Ciphertext, results[i].KeyVersion, oe = k.encrypt(it.keyVersion, pt, it.ctx, "")
		}
		if oe != nil {
			if oe.internal {
				return nil, internalError(oe.msg)
			}
			results[i].Error = oe.msg
		}
	}
	resp := &response{warnings: unknownParams(d, "name", "ciphertext", "encrypt_padding_scheme",
		"decrypt_padding_scheme", "context", "nonce", "key_version", "batch_input")}
	if !isBatch {
		if results[0].Error != "" {
			return nil, userError("%s", results[0].Error)
		}
		resp.data = map[string]any{"ciphertext": results[0].Ciphertext, "key_version": results[0].KeyVersion}
		return resp, nil
	}
	resp.data = map[string]any{"batch_results": results}
	return resp, nil
}

func (s *Server) datakey(m *mount, kind, name string, req *request) (*response, error) {
	d := req.data
	ver, _, err := integer(d, "key_version")
	if err != nil {
		return nil, err
	}
	var context []byte
	if c, _, err := str(d, "context"); err != nil {
		return nil, err
	} else if c != "" {
		if context, err = base64.StdEncoding.DecodeString(c); err != nil {
			return nil, userError("failed to base64-decode context")
		}
	}
	nonce, _, err := str(d, "nonce")
	if err != nil {
		return nil, err
	}
	if nonce != "" {
		if _, err := base64.StdEncoding.DecodeString(nonce); err != nil {
			return nil, userError("failed to base64-decode nonce")
		}
	}
	bits, ok, err := integer(d, "bits")
	if err != nil {
		return nil, err
	}
	if !ok {
		bits = 256
	}
	if bits != 128 && bits != 256 && bits != 512 {
		return nil, userError("invalid bit length")
	}
	if kind != "plaintext" && kind != "wrapped" {
		return nil, userError("Invalid path, must be 'plaintext' or 'wrapped'")
	}
	k := s.getKey(m, name)
	if k == nil {
		return nil, userError(msgKeyNotFound)
	}
	if k.signing() {
		return nil, userError("key type %s does not support decryption", k.typ)
	}
	if nonce != "" {
		return nil, internalError(msgNonceForbidden)
	}
	dk := make([]byte, bits/8)
	if _, err := rand.Read(dk); err != nil {
		return nil, internalError(err.Error())
	}
	ct, used, oe := k.encrypt(ver, dk, context, "")
	if oe != nil {
		if oe.internal {
			return nil, internalError(oe.msg)
		}
		return nil, userError("%s", oe.msg)
	}
	data := map[string]any{"ciphertext": ct, "key_version": used}
	if kind == "plaintext" {
		data["plaintext"] = base64.StdEncoding.EncodeToString(dk)
	}
	return &response{data: data, warnings: unknownParams(d, "name", "plaintext", "padding_scheme", "context",
		"nonce", "bits", "key_version")}, nil
}

// cipherItems reads the items of a decrypt or rewrap request: batch_input
// when present, else the single-item fields, which must hold a ciphertext.
func cipherItems(d map[string]any, batchField string, fields ...string) ([]item, bool, error) {
	if raw, ok := d["batch_input"]; ok && raw != nil {
		items, err := decodeBatch(raw, batchField)
		return items, true, err
	}
	it, err := singleItem(d, fields...)
	if err != nil {
		return nil, false, err
	}
	if it.ciphertext == "" {
		return nil, false, userError("missing ciphertext to decrypt")
	}
	return []item{it}, false, nil
}
