package devtransit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	keysFileName   = "keys.json"
	keysFileFormat = 1
)

// mount is one enabled transit engine. Its keys map and config are guarded
// by Server.mu; the *key values in it are immutable.
type mount struct {
	path          string // with trailing slash, e.g. "transit/"
	uuid          string
	accessor      string
	description   string
	disableUpsert bool
	keys          map[string]*key
}

func newMount(path, description string) *mount {
	return &mount{
		path:        path,
		uuid:        newUUID(),
		accessor:    "transit_" + newUUID()[:8],
		description: description,
		keys:        map[string]*key{},
	}
}

// The keys file: plain JSON holding raw key material, which is why it is
// written with mode 0600 and why devtransit is for development only.
type fileState struct {
	Format int                  `json:"format"`
	Mounts map[string]fileMount `json:"mounts"`
}

type fileMount struct {
	UUID          string             `json:"uuid"`
	Accessor      string             `json:"accessor"`
	Description   string             `json:"description,omitempty"`
	DisableUpsert bool               `json:"disable_upsert"`
	Keys          map[string]fileKey `json:"keys"`
}

type fileKey struct {
	Type                 string                 `json:"type"`
	Derived              bool                   `json:"derived"`
	KDF                  string                 `json:"kdf,omitempty"`
	Exportable           bool                   `json:"exportable"`
	DeletionAllowed      bool                   `json:"deletion_allowed"`
	AllowPlaintextBackup bool                   `json:"allow_plaintext_backup"`
	MinDecryptionVersion int                    `json:"min_decryption_version"`
	MinEncryptionVersion int                    `json:"min_encryption_version"`
	AutoRotateSeconds    int64                  `json:"auto_rotate_period"`
	Versions             map[string]fileVersion `json:"versions"`
}

type fileVersion struct {
	Key     []byte    `json:"key"`
	Created time.Time `json:"created"`
}

// snapshot converts the in-memory mounts to the file form. Caller holds mu.
func snapshot(mounts map[string]*mount) fileState {
	st := fileState{Format: keysFileFormat, Mounts: make(map[string]fileMount, len(mounts))}
	for path, m := range mounts {
		fm := fileMount{UUID: m.uuid, Accessor: m.accessor, Description: m.description, DisableUpsert: m.disableUpsert, Keys: make(map[string]fileKey, len(m.keys))}
		for name, k := range m.keys {
			fk := fileKey{
				Type: k.typ, Derived: k.derived, Exportable: k.exportable,
				DeletionAllowed: k.deletionAllowed, AllowPlaintextBackup: k.plaintextBackup,
				MinDecryptionVersion: k.minDecrypt, MinEncryptionVersion: k.minEncrypt,
				AutoRotateSeconds: int64(k.autoRotate.Seconds()),
				Versions:          make(map[string]fileVersion, len(k.versions)),
			}
			if k.derived {
				fk.KDF = kdfHKDF
			}
			for i, v := range k.versions {
				fk.Versions[strconv.Itoa(i+1)] = fileVersion{Key: v.material, Created: v.created}
			}
			fm.Keys[name] = fk
		}
		st.Mounts[path] = fm
	}
	return st
}

// restore validates a decoded keys file and rebuilds the mounts from it.
func restore(st fileState) (map[string]*mount, error) {
	if st.Format != keysFileFormat {
		return nil, fmt.Errorf("unknown format %d (want %d)", st.Format, keysFileFormat)
	}
	mounts := make(map[string]*mount, len(st.Mounts))
	for path, fm := range st.Mounts {
		if !strings.HasSuffix(path, "/") || !validMountPath(strings.TrimSuffix(path, "/")) {
			return nil, fmt.Errorf("invalid mount path %q", path)
		}
		m := &mount{path: path, uuid: fm.UUID, accessor: fm.Accessor, description: fm.Description, disableUpsert: fm.DisableUpsert, keys: make(map[string]*key, len(fm.Keys))}
		for name, fk := range fm.Keys {
			k, err := restoreKey(name, fk)
			if err != nil {
				return nil, fmt.Errorf("mount %q key %q: %w", path, name, err)
			}
			m.keys[name] = k
		}
		mounts[path] = m
	}
	return mounts, nil
}

func restoreKey(name string, fk fileKey) (*key, error) {
	if !validName(name) {
		return nil, errors.New("invalid key name")
	}
	if fk.Type != keyTypeAES256 && fk.Type != keyTypeEd25519 && fk.Type != keyTypeECDSAP256 {
		return nil, fmt.Errorf("unsupported key type %q", fk.Type)
	}
	if fk.Derived && fk.KDF != kdfHKDF {
		return nil, fmt.Errorf("unsupported kdf %q", fk.KDF)
	}
	n := len(fk.Versions)
	if n == 0 {
		return nil, errors.New("no key versions")
	}
	k := &key{
		name: name, typ: fk.Type, derived: fk.Derived, exportable: fk.Exportable, deletionAllowed: fk.DeletionAllowed,
		plaintextBackup: fk.AllowPlaintextBackup, minDecrypt: fk.MinDecryptionVersion,
		minEncrypt: fk.MinEncryptionVersion, autoRotate: time.Duration(fk.AutoRotateSeconds) * time.Second,
		versions: make([]keyVersion, n),
	}
	for i := 1; i <= n; i++ {
		v, ok := fk.Versions[strconv.Itoa(i)]
		if !ok {
			return nil, fmt.Errorf("key version %d missing", i)
		}
		if err := checkMaterial(fk.Type, v.Key); err != nil {
			return nil, fmt.Errorf("key version %d: %w", i, err)
		}
		k.versions[i-1] = keyVersion{material: v.Key, created: v.Created}
	}
	if k.minDecrypt < 1 || k.minDecrypt > n || k.minEncrypt < 0 || k.minEncrypt > n {
		return nil, errors.New("min_decryption_version or min_encryption_version out of range")
	}
	return k, nil
}

// loadState reads dir/keys.json. A missing file is an empty state; a file
// that cannot be read or decoded is an error, never a silent reset.
func loadState(dir string) (map[string]*mount, error) {
	path := filepath.Join(dir, keysFileName)
	raw, err := os.ReadFile(path) // #nosec G304 -- the dev transit server reads its own data directory (--data)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*mount{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("devtransit: reading keys file: %w", err)
	}
	var st fileState
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("devtransit: keys file %s is corrupt (refusing to start rather than lose keys): %w", path, err)
	}
	mounts, err := restore(st)
	if err != nil {
		return nil, fmt.Errorf("devtransit: keys file %s is corrupt (refusing to start rather than lose keys): %w", path, err)
	}
	return mounts, nil
}

// saveState writes the keys file atomically: a temporary file in the same
// directory, fsync, rename over keys.json, then fsync of the directory.
func saveState(dir string, st fileState) error {
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("devtransit: encoding keys file: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("devtransit: creating data dir: %w", err)
	}
	tmp, err := os.CreateTemp(dir, keysFileName+".*.tmp")
	if err != nil {
		return fmt.Errorf("devtransit: creating temp keys file: %w", err)
	}
	tmpName := tmp.Name()
	committed := false
	defer func() {
		if !committed {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("devtransit: chmod temp keys file: %w", err)
	}
	if _, err := tmp.Write(raw); err != nil {
		return fmt.Errorf("devtransit: writing temp keys file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("devtransit: syncing temp keys file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("devtransit: closing temp keys file: %w", err)
	}
	if err := os.Rename(tmpName, filepath.Join(dir, keysFileName)); err != nil {
		return fmt.Errorf("devtransit: replacing keys file: %w", err)
	}
	committed = true
	d, err := os.Open(dir) // #nosec G304 -- the dev transit server reads its own data directory (--data)
	if err != nil {
		return fmt.Errorf("devtransit: opening data dir for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("devtransit: syncing data dir: %w", err)
	}
	return nil
}

// persist writes the current state when a DataDir is set. Caller holds mu
// for writing, so saves are serialised and always reflect the latest state.
func (s *Server) persist() error {
	if s.persistHook != nil {
		if err := s.persistHook(); err != nil {
			return err
		}
	}
	if s.dataDir == "" {
		return nil
	}
	return saveState(s.dataDir, snapshot(s.mounts))
}
