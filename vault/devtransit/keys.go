package devtransit

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"
)

// nameRe is Vault's GenericNameRegex for key names.
var nameRe = regexp.MustCompile(`^\w(?:[\w\-.]*\w)?$`)

func validName(s string) bool { return nameRe.MatchString(s) }

// handleTransit routes a call below a transit mount, like Vault's transit
// backend paths.
func (s *Server) handleTransit(m *mount, req *request) (*response, error) {
	parts := strings.Split(req.path, "/")
	only := func(op string, h func() (*response, error)) (*response, error) {
		if req.op != op {
			return nil, errUnsupportedOp
		}
		return h()
	}
	switch {
	case req.path == "keys" || req.path == "keys/":
		return only("list", func() (*response, error) { return s.listKeys(m) })
	case len(parts) == 2 && parts[0] == "keys" && validName(parts[1]):
		switch req.op {
		case "read":
			return s.readKey(m, parts[1], req)
		case "update":
			return s.createKey(m, parts[1], req)
		case "delete":
			return s.deleteKey(m, parts[1])
		}
		return nil, errUnsupportedOp
	case len(parts) == 3 && parts[0] == "keys" && validName(parts[1]) && parts[2] == "config":
		return only("update", func() (*response, error) { return s.configKey(m, parts[1], req) })
	case len(parts) == 3 && parts[0] == "keys" && validName(parts[1]) && parts[2] == "rotate":
		return only("update", func() (*response, error) { return s.rotateKey(m, parts[1], req) })
	case req.path == "config/keys":
		return s.configKeys(m, req)
	case len(parts) == 2 && validName(parts[1]) && (parts[0] == "encrypt" || parts[0] == "decrypt" || parts[0] == "rewrap"):
		return only("update", func() (*response, error) {
			switch parts[0] {
			case "encrypt":
				return s.encrypt(m, parts[1], req)
			case "decrypt":
				return s.decrypt(m, parts[1], req)
			}
			return s.rewrap(m, parts[1], req)
		})
	case (len(parts) == 2 || len(parts) == 3) && (parts[0] == "sign" || parts[0] == "verify") && validName(parts[1]):
		return only("update", func() (*response, error) {
			if len(parts) == 3 {
				req.data = withURLAlgorithm(req.data, parts[2])
			}
			if parts[0] == "sign" {
				return s.sign(m, parts[1], req)
			}
			return s.verify(m, parts[1], req)
		})
	case len(parts) == 3 && parts[0] == "datakey" && validName(parts[1]) && validName(parts[2]):
		return only("update", func() (*response, error) { return s.datakey(m, parts[1], parts[2], req) })
	}
	return nil, errUnsupported
}

// getKey returns the current version of a key, or nil.
func (s *Server) getKey(m *mount, name string) *key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return m.keys[name]
}

// changeKeys runs fn with the write lock held on a mount that is still
// enabled; fn changes m.keys or the mount config and reports whether it
// changed anything, which is then persisted. If persisting fails, the
// previous keys and config are restored and a 500 is returned.
func (s *Server) changeKeys(m *mount, fn func() (bool, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mounts[m.path] != m {
		return errStatus(http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", m.path))
	}
	before := make(map[string]*key, len(m.keys))
	for n, k := range m.keys {
		before[n] = k
	}
	upsertBefore := m.disableUpsert
	changed, err := fn()
	if err != nil || !changed {
		return err
	}
	if err := s.persist(); err != nil {
		m.keys = before
		m.disableUpsert = upsertBefore
		s.log.Error("devtransit: persisting keys failed; change rolled back", "mount", m.path, "error", err)
		return internalError(err.Error())
	}
	return nil
}

func (s *Server) listKeys(m *mount) (*response, error) {
	s.mu.RLock()
	names := make([]string, 0, len(m.keys))
	for n := range m.keys {
		names = append(names, n)
	}
	s.mu.RUnlock()
	if len(names) == 0 {
		return nil, nil
	}
	sort.Strings(names)
	return &response{data: map[string]any{"keys": names}}, nil
}

func (s *Server) readKey(m *mount, name string, req *request) (*response, error) {
	k := s.getKey(m, name)
	if k == nil {
		return nil, nil
	}
	var context []byte
	if c, _, _ := str(req.data, "context"); c != "" {
		var err error
		if context, err = base64.StdEncoding.DecodeString(c); err != nil {
			return nil, userError("failed to base64-decode context")
		}
	}
	return &response{data: k.keyDataFor(context), warnings: unknownParams(req.data, "name", "context")}, nil
}

var keyCreateFields = []string{"name", "type", "derived", "convergent_encryption", "exportable", "allow_plaintext_backup",
	"context", "auto_rotate_period", "key_size", "managed_key_name", "managed_key_id", "parameter_set",
	"hybrid_key_type_pqc", "hybrid_key_type_ec"}

// checkKeyType answers for a key type: nil for aes256-gcm96, ed25519 and
// ecdsa-p256, Vault's text for an unknown type, and a clear refusal for
// types Vault has but devtransit does not implement.
func checkKeyType(t string) error {
	switch t {
	case "", keyTypeAES256, keyTypeEd25519, keyTypeECDSAP256:
		return nil
	case "aes128-gcm96", "chacha20-poly1305", "ecdsa-p384", "ecdsa-p521", "rsa-2048",
		"rsa-3072", "rsa-4096", "hmac", "managed_key", "aes128-cmac", "aes192-cmac", "aes256-cmac", "ml-dsa",
		"hybrid", "slh-dsa", "aes128-cbc", "aes256-cbc":
		return userError("devtransit supports only key types %s, %s and %s, not %s", keyTypeAES256, keyTypeEd25519, keyTypeECDSAP256, t)
	}
	return userError("unknown key type %v", t)
}

func (s *Server) createKey(m *mount, name string, req *request) (*response, error) {
	d := req.data
	derived, _, err := boolean(d, "derived")
	if err != nil {
		return nil, err
	}
	convergent, _, err := boolean(d, "convergent_encryption")
	if err != nil {
		return nil, err
	}
	exportable, _, err := boolean(d, "exportable")
	if err != nil {
		return nil, err
	}
	backup, _, err := boolean(d, "allow_plaintext_backup")
	if err != nil {
		return nil, err
	}
	rotate, _, err := seconds(d, "auto_rotate_period")
	if err != nil {
		return nil, err
	}
	typ, _, err := str(d, "type")
	if err != nil {
		return nil, err
	}
	keySize, _, err := integer(d, "key_size")
	if err != nil {
		return nil, err
	}
	if rotate != 0 && rotate < time.Hour {
		return nil, userError("auto rotate period must be 0 to disable or at least an hour")
	}
	if !derived && convergent {
		return nil, userError("convergent encryption requires derivation to be enabled")
	}
	if err := checkKeyType(typ); err != nil {
		return nil, err
	}
	if typ == "" {
		typ = keyTypeAES256
	}
	if keySize != 0 {
		return nil, userError("key_size is not valid for algorithm %s", typ)
	}
	if derived && typ == keyTypeECDSAP256 {
		return nil, userError("key derivation and convergent encryption not supported for keys of type %s", typ)
	}
	if convergent {
		return nil, userError("devtransit does not support convergent encryption")
	}
	var out *key
	created := false
	err = s.changeKeys(m, func() (bool, error) {
		if k := m.keys[name]; k != nil {
			out = k
			return false, nil
		}
		k := &key{name: name, typ: typ, derived: derived, minDecrypt: 1}
		if err := k.addVersion(s.now()); err != nil {
			return false, internalError(err.Error())
		}
		k.exportable, k.plaintextBackup, k.autoRotate = exportable, backup, rotate
		m.keys[name] = k
		out, created = k, true
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	resp := &response{data: out.keyData(), warnings: unknownParams(d, keyCreateFields...)}
	if !created {
		resp.warn("key %s already existed", name)
	} else {
		s.log.Info("devtransit: key created", "mount", m.path, "key", name, "derived", derived)
	}
	return resp, nil
}

func (s *Server) deleteKey(m *mount, name string) (*response, error) {
	err := s.changeKeys(m, func() (bool, error) {
		k := m.keys[name]
		if k == nil {
			return false, userError("error deleting policy %s: could not delete key; not found", name)
		}
		if !k.deletionAllowed {
			return false, userError("error deleting policy %s: deletion is not allowed for this key", name)
		}
		delete(m.keys, name)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("devtransit: key deleted", "mount", m.path, "key", name)
	return nil, nil
}

func (s *Server) rotateKey(m *mount, name string, req *request) (*response, error) {
	var out *key
	err := s.changeKeys(m, func() (bool, error) {
		k := m.keys[name]
		if k == nil {
			return false, userError("key not found")
		}
		c := k.clone()
		if err := c.addVersion(s.now()); err != nil {
			return false, internalError(err.Error())
		}
		m.keys[name], out = c, c
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("devtransit: key rotated", "mount", m.path, "key", name, "latest_version", out.latest())
	return &response{data: out.keyData(), warnings: unknownParams(req.data, "name", "managed_key_name", "managed_key_id")}, nil
}

func (s *Server) configKey(m *mount, name string, req *request) (*response, error) {
	d := req.data
	var out *key
	var warning string
	err := s.changeKeys(m, func() (bool, error) {
		k := m.keys[name]
		if k == nil {
			return false, userError("no existing key named %s could be found", name)
		}
		c := k.clone()
		if v, ok, err := integer(d, "min_decryption_version"); err != nil {
			return false, err
		} else if ok {
			if v < 0 {
				return false, userError("min decryption version cannot be negative")
			}
			if v == 0 {
				v = 1
				warning = "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1"
			}
			if v != c.minDecrypt && v > c.latest() {
				return false, userError("cannot set min decryption version of %d, latest key version is %d", v, c.latest())
			}
			c.minDecrypt = v
		}
		if v, ok, err := integer(d, "min_encryption_version"); err != nil {
			return false, err
		} else if ok {
			if v < 0 {
				return false, userError("min encryption version cannot be negative")
			}
			if v != c.minEncrypt && v > c.latest() {
				return false, userError("cannot set min encryption version of %d, latest key version is %d", v, c.latest())
			}
			c.minEncrypt = v
		}
		if c.minEncrypt > 0 && c.minEncrypt < c.minDecrypt {
			return false, userError("cannot set min encryption/decryption values; min encryption version of %d must be greater than or equal to min decryption version of %d", c.minEncrypt, c.minDecrypt)
		}
		if v, ok, err := boolean(d, "deletion_allowed"); err != nil {
			return false, err
		} else if ok {
			c.deletionAllowed = v
		}
		if v, ok, err := boolean(d, "exportable"); err != nil {
			return false, err
		} else if ok && v {
			c.exportable = true
		}
		if v, ok, err := boolean(d, "allow_plaintext_backup"); err != nil {
			return false, err
		} else if ok && v {
			c.plaintextBackup = true
		}
		if v, ok, err := seconds(d, "auto_rotate_period"); err != nil {
			return false, err
		} else if ok {
			if v != 0 && v < time.Hour {
				return false, userError("auto rotate period must be 0 to disable or at least an hour")
			}
			c.autoRotate = v
		}
		changed := c.minDecrypt != k.minDecrypt || c.minEncrypt != k.minEncrypt || c.deletionAllowed != k.deletionAllowed ||
			c.exportable != k.exportable || c.plaintextBackup != k.plaintextBackup || c.autoRotate != k.autoRotate
		m.keys[name], out = c, c
		return changed, nil
	})
	if err != nil {
		return nil, err
	}
	resp := &response{data: out.keyData(), warnings: unknownParams(d, "name", "min_decryption_version",
		"min_encryption_version", "deletion_allowed", "exportable", "allow_plaintext_backup", "auto_rotate_period")}
	if warning != "" {
		resp.warn("%s", warning)
	}
	return resp, nil
}

func (s *Server) configKeys(m *mount, req *request) (*response, error) {
	switch req.op {
	case "read":
		s.mu.RLock()
		v := m.disableUpsert
		s.mu.RUnlock()
		return &response{data: map[string]any{"disable_upsert": v}}, nil
	case "update":
		v, _, err := boolean(req.data, "disable_upsert")
		if err != nil {
			return nil, err
		}
		if err := s.changeKeys(m, func() (bool, error) {
			changed := m.disableUpsert != v
			m.disableUpsert = v
			return changed, nil
		}); err != nil {
			return nil, err
		}
		return &response{data: map[string]any{"disable_upsert": v}, warnings: unknownParams(req.data, "disable_upsert")}, nil
	}
	return nil, errUnsupportedOp
}

// ImportKey loads raw 32-byte AES-256 key material, one entry per version
// (the latest version is the highest; versions must run 1..N), as key name
// on the transit mount at mountPath, replacing any key of that name, and
// persists it. Test hook: it lets recorded vectors be decrypted.
func (s *Server) ImportKey(mountPath, name string, derived bool, versions map[int][]byte) error {
	if !validName(name) {
		return fmt.Errorf("devtransit: invalid key name %q", name)
	}
	if len(versions) == 0 {
		return errors.New("devtransit: ImportKey needs at least one version")
	}
	k := &key{name: name, typ: keyTypeAES256, derived: derived, minDecrypt: 1, versions: make([]keyVersion, len(versions))}
	now := s.now()
	for v := 1; v <= len(versions); v++ {
		material, ok := versions[v]
		if !ok {
			return fmt.Errorf("devtransit: ImportKey: version %d missing (versions must run 1..%d)", v, len(versions))
		}
		if len(material) != keyBytes {
			return fmt.Errorf("devtransit: ImportKey: version %d has %d bytes, want %d", v, len(material), keyBytes)
		}
		k.versions[v-1] = keyVersion{material: append([]byte(nil), material...), created: now}
	}
	path := strings.Trim(mountPath, "/") + "/"
	s.mu.RLock()
	m := s.mounts[path]
	s.mu.RUnlock()
	if m == nil {
		return fmt.Errorf("devtransit: ImportKey: no transit mount at %q", path)
	}
	if err := s.changeKeys(m, func() (bool, error) { m.keys[name] = k; return true, nil }); err != nil {
		return fmt.Errorf("devtransit: ImportKey: %w", err)
	}
	return nil
}
