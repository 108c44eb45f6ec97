package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// devStateFiles are the entries `credvault dev` creates in its data
// directory; --reset removes these and no others, so that a data
// directory set by mistake to $HOME or / loses nothing else.
var devStateFiles = []string{"pg", "pg.password", "transit", "vault.token", "vault.addr", "admin.key", "dev.lock"}

// resetDev removes everything `credvault dev` (and so `make dev`) created
// for the data directory: it stops the private cluster if one is still
// running, removes the cluster kept under rootClusterBase/<hash> when dev
// ran as root, the files of devStateFiles, and the data directory itself
// once empty. It refuses while a credvault dev uses the directory (the
// same lock dev takes). It prints each path it removed to stdout.
func resetDev(dataDir string, stdout io.Writer) error {
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dataDir); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stdout, "nothing to remove: %s does not exist\n", dataDir)
		return removeRootClusterDir(dataDir, stdout)
	}
	unlock, err := lockDataDir(dataDir)
	if err != nil {
		return err
	}
	defer unlock()
	cluster := filepath.Join(dataDir, "pg")
	if target, err := os.Readlink(cluster); err == nil {
		cluster = target
	}
	if _, err := os.Stat(filepath.Join(cluster, "PG_VERSION")); err == nil {
		if err := stopDevCluster(cluster); err != nil {
			return err
		}
	}
	if err := removeRootClusterDir(dataDir, stdout); err != nil {
		return err
	}
	for _, name := range devStateFiles {
		p := filepath.Join(dataDir, name)
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove %s: %w", p, err)
		}
		if name != "dev.lock" {
			fmt.Fprintf(stdout, "removed %s\n", p)
		}
	}
	if err := os.Remove(dataDir); err == nil {
		fmt.Fprintf(stdout, "removed %s\n", dataDir)
	} else if left, _ := os.ReadDir(dataDir); len(left) > 0 {
		names := make([]string, len(left))
		for i, e := range left {
			names[i] = e.Name()
		}
		fmt.Fprintf(stdout, "kept %s: it holds files credvault dev did not create (%s)\n", dataDir, strings.Join(names, ", "))
	}
	return nil
}

// stopDevCluster stops a private cluster left running (a credvault dev
// that was killed); the lock proves no live dev owns it.
func stopDevCluster(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "postmaster.pid")); err != nil {
		return nil
	}
	bin, err := findPGBin()
	if err != nil {
		return err
	}
	runAs, err := unprivilegedUser()
	if err != nil {
		return err
	}
	pg := &privatePG{bin: bin, runAs: runAs, dir: dir}
	if pg.pgctl("status") != nil {
		return nil
	}
	if err := pg.pgctl("stop", "-m", "fast", "-w", "-t", "60"); err != nil {
		return fmt.Errorf("the private postgres in %s is running and did not stop: %w", dir, err)
	}
	return nil
}

// removeRootClusterDir removes rootClusterBase/<hash>, where dev run as
// root keeps dataDir's cluster, and rootClusterBase itself once empty.
func removeRootClusterDir(dataDir string, stdout io.Writer) error {
	dir := filepath.Dir(rootClusterDir(dataDir))
	if _, err := os.Lstat(dir); err != nil {
		return nil
	}
	if err := stopDevCluster(filepath.Join(dir, "pg")); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	fmt.Fprintf(stdout, "removed %s\n", dir)
	if os.Remove(rootClusterBase) == nil {
		fmt.Fprintf(stdout, "removed %s\n", rootClusterBase)
	}
	return nil
}
