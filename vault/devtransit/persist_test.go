package devtransit

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPersistenceAcrossRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "transit")
	_, addr := startLocal(t, Options{DataDir: dir})
	c := newClient(t, addr, testRootToken)
	e := setup(t, c)
	ct1 := encrypt(t, e, "d", ptA, ctxA)
	e.mustWrite(t, "keys/d/rotate", nil)
	ct2 := encrypt(t, e, "d", ptA, ctxA)
	e.mustWrite(t, "keys/d/config", map[string]any{"min_decryption_version": 2, "deletion_allowed": true})
	e.mustWrite(t, "config/keys", map[string]any{"disable_upsert": true})

	info, err := os.Stat(filepath.Join(dir, keysFileName))
	if err != nil {
		t.Fatalf("keys file: %v", err)
	}
	if got := info.Mode().Perm(); got != 0o600 {
		t.Errorf("keys file mode: got %v, want 0600", got)
	}
	if dinfo, err := os.Stat(dir); err != nil || dinfo.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode: got %v %v, want 0700", dinfo.Mode().Perm(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only %s (no temp files left)", len(entries), keysFileName)
	}

	// A second server on the same directory sees everything.
	_, addr2 := startLocal(t, Options{DataDir: dir})
	e2 := &tenv{c: newClient(t, addr2, testRootToken), mount: e.mount}
	if got := decrypt(t, e2, "d", ct2, ctxA); got != ptA {
		t.Errorf("after restart: got %q, want %q", got, ptA)
	}
	_, err = e2.write(t, "decrypt/d", map[string]any{"ciphertext": ct1, "context": ctxA})
	wantAPIError(t, err, 400, wantTooOld)
	key, err := e2.c.Logical().Read(e.mount + "/keys/d")
	if err != nil || key.Data["deletion_allowed"] != true || key.Data["derived"] != true {
		t.Errorf("key config after restart: got %v %v", key, err)
	}
	_, err = e2.write(t, "encrypt/other", map[string]any{"plaintext": ptA})
	wantAPIError(t, err, 400, wantKeyNotFound) // disable_upsert persisted
	if sec, err := e2.c.Logical().Read("transit/config/keys"); err != nil || sec.Data["disable_upsert"] != false {
		t.Errorf("default transit mount: got %v %v", sec, err)
	}
}

func TestCorruptKeysFile(t *testing.T) {
	for name, content := range map[string]string{
		"not json":        "{not json",
		"truncated":       `{"format":1,"mounts":{"transit/":{"uuid":"u","keys":{`,
		"short key":       `{"format":1,"mounts":{"transit/":{"uuid":"u","accessor":"a","disable_upsert":false,"keys":{"k":{"type":"aes256-gcm96","derived":false,"exportable":false,"deletion_allowed":false,"allow_plaintext_backup":false,"min_decryption_version":1,"min_encryption_version":0,"auto_rotate_period":0,"versions":{"1":{"key":"AAAA","created":"2024-01-01T00:00:00Z"}}}}}}}`,
		"unknown format":  `{"format":99,"mounts":{}}`,
		"missing version": `{"format":1,"mounts":{"transit/":{"uuid":"u","accessor":"a","disable_upsert":false,"keys":{"k":{"type":"aes256-gcm96","derived":false,"exportable":false,"deletion_allowed":false,"allow_plaintext_backup":false,"min_decryption_version":1,"min_encryption_version":0,"auto_rotate_period":0,"versions":{"2":{"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","created":"2024-01-01T00:00:00Z"}}}}}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, keysFileName)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := New(Options{Token: testRootToken, DataDir: dir})
			if err == nil || !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), path) {
				t.Fatalf("got %v, want an error naming %s as corrupt", err, path)
			}
			if got, _ := os.ReadFile(path); string(got) != content {
				t.Errorf("the corrupt file was rewritten")
			}
		})
	}
}

func TestNewNeedsToken(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without a token succeeded")
	}
	if _, err := New(Options{Token: "t", AppRole: &AppRole{RoleID: "r"}}); err == nil {
		t.Fatal("New with an AppRole lacking a secret ID succeeded")
	}
}

// TestPersistFailureRollsBack: when the keys file cannot be written the
// caller gets a 500 and the in-memory state is unchanged.
func TestPersistFailureRollsBack(t *testing.T) {
	s, addr := startLocal(t, Options{DataDir: t.TempDir()})
	c := newClient(t, addr, testRootToken)
	e := &tenv{c: c, mount: "transit"}
	e.mustWrite(t, "keys/k", nil)
	s.persistHook = func() error { return errors.New("disk full") }
	want := "1 error occurred:\n\t* disk full\n\n"
	for _, tc := range []struct {
		path string
		body map[string]any
	}{
		{"keys/new", nil},
		{"keys/k/rotate", nil},
		{"keys/k/config", map[string]any{"deletion_allowed": true}},
		{"config/keys", map[string]any{"disable_upsert": true}},
		{"encrypt/upserted", map[string]any{"plaintext": ptA}},
	} {
		_, err := e.write(t, tc.path, tc.body)
		wantAPIError(t, err, 500, want)
	}
	res := raw(t, c, "POST", "sys/mounts/extra", map[string]any{"type": "transit"})
	if res.status != 500 {
		t.Errorf("mount with failing storage: got %d %s", res.status, res.text)
	}
	if err := s.ImportKey("transit", "imp", false, map[int][]byte{1: make([]byte, 32)}); err == nil {
		t.Errorf("ImportKey with failing storage succeeded")
	}
	s.persistHook = nil
	key, err := c.Logical().Read("transit/keys/k")
	if err != nil || num(t, key.Data["latest_version"]) != 1 || key.Data["deletion_allowed"] != false {
		t.Errorf("key k changed: %v %v", key, err)
	}
	for _, gone := range []string{"transit/keys/new", "transit/keys/upserted", "transit/keys/imp"} {
		if sec, _ := c.Logical().Read(gone); sec != nil {
			t.Errorf("%s exists after a failed write", gone)
		}
	}
	if sec, _ := c.Logical().Read("transit/config/keys"); sec.Data["disable_upsert"] != false {
		t.Errorf("disable_upsert changed after a failed write")
	}
	if mounts, _ := c.Sys().ListMounts(); mounts["extra/"] != nil {
		t.Errorf("mount extra/ exists after a failed write")
	}
}

// TestConcurrentUse exercises encryption, rotation and upserts at once;
// run with -race.
func TestConcurrentUse(t *testing.T) {
	_, addr := startLocal(t, Options{DataDir: t.TempDir()})
	c := newClient(t, addr, testRootToken)
	e := &tenv{c: c, mount: "transit"}
	e.mustWrite(t, "keys/k", map[string]any{"derived": true})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				sec, err := c.Logical().Write("transit/encrypt/k", map[string]any{"plaintext": ptA, "context": ctxA})
				if err != nil {
					errs <- err
					return
				}
				dec, err := c.Logical().Write("transit/decrypt/k", map[string]any{"ciphertext": sec.Data["ciphertext"], "context": ctxA})
				if err != nil || dec.Data["plaintext"] != ptA {
					errs <- errors.Join(err, errors.New("round trip failed"))
					return
				}
				if i%5 == 0 {
					if _, err := c.Logical().Write("transit/keys/k/rotate", nil); err != nil {
						errs <- err
						return
					}
					if _, err := c.Logical().Write("transit/encrypt/up", map[string]any{"plaintext": ptA}); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestServeShutsDown: Serve answers on its listener and returns nil once
// the context is cancelled.
func TestServeShutsDown(t *testing.T) {
	s, err := New(Options{Token: testRootToken})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	c := newClient(t, "http://"+ln.Addr().String(), testRootToken)
	if h, err := c.Sys().Health(); err != nil || !h.Initialized {
		t.Fatalf("health: %v %v", h, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: got %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}
