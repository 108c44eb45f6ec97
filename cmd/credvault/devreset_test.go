package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDevResetKeepsSymlinkedDataDir: a data directory that is a symlink the
// user made (CREDVAULT_DATA_DIR=~/link -> ~/elsewhere) loses dev's files,
// but --reset neither removes the user's link nor the files beside dev's
// in the directory it points to.
func TestDevResetKeepsSymlinkedDataDir(t *testing.T) {
	base := t.TempDir()
	target := filepath.Join(base, "elsewhere")
	if err := os.MkdirAll(target, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"vault.token": "tok", "admin.key": "key", "notes.txt": "mine"} {
		if err := os.WriteFile(filepath.Join(target, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := resetDev(link, &out); err != nil {
		t.Fatalf("reset: %v", err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("reset removed the user's symlink %s (%v); printed:\n%s", link, err, out.String())
	}
	if _, err := os.Stat(filepath.Join(target, "notes.txt")); err != nil {
		t.Errorf("reset removed a file it did not create: %v", err)
	}
	for _, name := range []string{"vault.token", "admin.key"} {
		if _, err := os.Lstat(filepath.Join(target, name)); err == nil {
			t.Errorf("%s survived the reset", name)
		}
	}

	// An empty target: the link still stays (dev did not make it).
	if err := os.Remove(filepath.Join(target, "notes.txt")); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := resetDev(link, &out); err != nil {
		t.Fatalf("second reset: %v", err)
	}
	if _, err := os.Lstat(link); err != nil {
		t.Errorf("reset removed the user's symlink %s: %v; printed:\n%s", link, err, out.String())
	}
}
