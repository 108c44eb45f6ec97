package main

import (
	"fmt"
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

// TestLoopbackPortListDuplicates: a port listed twice (or with spaces)
// in CREDVAULT_EGRESS_ALLOW_LOOPBACK_PORTS is one port: the banner and
// the dialer's list name it once; 0 and 65536 stay refused.
func TestLoopbackPortListDuplicates(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "CREDVAULT_EGRESS_ALLOW_LOOPBACK_PORTS" {
				return v
			}
			return ""
		}
	}
	cfg, err := loadConfig(env(" 9000, 9000 ,9001,9000"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(cfg.EgressLoopbackPorts); got != "[9000 9001]" {
		t.Errorf("ports %s, want [9000 9001]", got)
	}
	for _, bad := range []string{"0", "65536", "9000,,9001", "-1", "9000;9001"} {
		if _, err := loadConfig(env(bad)); err == nil || !strings.Contains(err.Error(), "CREDVAULT_EGRESS_ALLOW_LOOPBACK_PORTS") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
