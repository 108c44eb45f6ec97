package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"

	"credvault/internal/credvault"
)

// privatePG is the PostgreSQL cluster `credvault dev` keeps when no
// DATABASE_URL is given: created with the machine's initdb, listening on a
// loopback TCP port only, with password (SCRAM-SHA-256) authentication for
// its one superuser "credvault". The password is random, kept in
// <data dir>/pg.password (mode 0600), so that another local user cannot
// connect and, say, mint an owner key with one INSERT.
//
// Run as a normal user, the cluster is <data dir>/pg and PostgreSQL runs
// as that user. Run as root, PostgreSQL runs as the postgres user (it
// refuses root), which often cannot reach the data dir (a checkout under
// /root, mode 0700); the cluster then lives under rootClusterBase, and
// <data dir>/pg is a symbolic link to it.
type privatePG struct {
	dir      string // the cluster's data directory (holds PG_VERSION)
	bin      string // directory holding initdb and pg_ctl
	port     int
	password credvault.Secret
	runAs    *syscall.Credential // set when credvault runs as root
	started  bool                // true while this process runs it (and so stops it)
	log      *slog.Logger
}

// rootClusterBase is where the clusters of `credvault dev` run as root
// live, one directory per data dir (named by a hash of its path).
var rootClusterBase = "/var/lib/credvault-dev"

const pgInstallHint = "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql/*/bin: " +
	"install them (Debian/Ubuntu: `sudo apt-get install postgresql`) or set DATABASE_URL to an existing database"

// findPGBin returns the directory holding initdb and pg_ctl: from PATH, or
// else the newest /usr/lib/postgresql/<version>/bin (where Debian installs
// them without putting them on PATH).
func findPGBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New(pgInstallHint)
}

func pgVersion(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

// unprivilegedUser returns the credentials initdb and postgres run under
// when credvault runs as root (both refuse to run as root).
func unprivilegedUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil // #nosec G115 -- uid/gid come from os/user and fit in uint32 on every supported OS
	}
	return nil, errors.New("running as root, but there is no unprivileged user (postgres or nobody) to run PostgreSQL as; run credvault dev as a normal user or set DATABASE_URL")
}

// startPrivatePG creates the cluster on first use and starts it. A
// cluster still running from a credvault dev that crashed (the caller
// holds the data dir's lock, so no live one uses it) is stopped first, so
// that this process owns the one it runs and stops it on exit. Errors say
// what to install or fix.
func startPrivatePG(ctx context.Context, dataDir string, log *slog.Logger) (*privatePG, error) {
	bin, err := findPGBin()
	if err != nil {
		return nil, err
	}
	runAs, err := unprivilegedUser()
	if err != nil {
		return nil, err
	}
	pg := &privatePG{bin: bin, runAs: runAs, log: log}
	if pg.dir, err = pg.clusterDir(dataDir); err != nil {
		return nil, err
	}
	pwFile := filepath.Join(dataDir, "pg.password")
	legacy := false // a cluster from before password authentication
	if _, err := os.Stat(filepath.Join(pg.dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		pg.password = credvault.NewSecret(randomHex(24))
		if err := os.WriteFile(pwFile, []byte(pg.password.Reveal()+"\n"), 0o600); err != nil {
			return nil, err
		}
		if err := pg.initdb(); err != nil {
			return nil, err
		}
	} else if pg.password, err = readSecretFile(pwFile); errors.Is(err, os.ErrNotExist) {
		legacy = true
		pg.password = credvault.NewSecret(randomHex(24))
	} else if err != nil {
		return nil, err
	}
	if pg.port, err = readPort(filepath.Join(pg.dir, "postgresql.conf")); err != nil {
		return nil, err
	}
	if pg.pgctl("status") == nil {
		log.Warn("dev: private postgres was left running (credvault dev did not stop cleanly); stopping it", "dir", pg.dir)
		if err := pg.pgctl("stop", "-m", "fast", "-w", "-t", "60"); err != nil {
			return nil, fmt.Errorf("private postgres in %s was left running and did not stop: %w", pg.dir, err)
		}
	}
	if !legacy {
		if err := pg.writeHBA(); err != nil {
			return nil, err
		}
	}
	log.Info("dev: starting private postgres", "dir", pg.dir, "port", pg.port)
	if err := pg.pgctl("start", "-w", "-t", "60", "-l", filepath.Join(pg.dir, "server.log")); err != nil {
		return nil, fmt.Errorf("private postgres did not start (see %s): %w", filepath.Join(pg.dir, "server.log"), err)
	}
	pg.started = true
	if legacy {
		err = pg.setPassword(ctx, pwFile)
	}
	if err == nil {
		err = pg.createDatabase(ctx)
	}
	if err != nil {
		pg.stop()
		return nil, err
	}
	return pg, nil
}

// clusterDir is where the cluster of dataDir lives: <dataDir>/pg, or the
// target of that symbolic link. As root, a new cluster goes under
// rootClusterBase, which the postgres user can reach wherever dataDir is.
func (pg *privatePG) clusterDir(dataDir string) (string, error) {
	link := filepath.Join(dataDir, "pg")
	fi, err := os.Lstat(link)
	switch {
	case err == nil && fi.Mode()&os.ModeSymlink != 0:
		return os.Readlink(link)
	case err == nil || pg.runAs == nil:
		return link, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", err
	}
	dir := rootClusterDir(dataDir)
	parent := filepath.Dir(dir)
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err == nil {
		// Left by a data dir that was deleted to start afresh.
		pg.dir = dir
		_ = pg.pgctl("stop", "-m", "immediate", "-w")
		if err := os.RemoveAll(dir); err != nil {
			return "", err
		}
	}
	// Only the postgres user may enter the cluster; others pass through.
	for _, d := range []string{rootClusterBase, parent} {
		if err := os.MkdirAll(d, 0o711); err != nil { // #nosec G301 -- the parent must be traversable (x only) by the postgres user that runs the private cluster
			return "", fmt.Errorf("create %s for the private cluster: %w", d, err)
		}
		if err := os.Chmod(d, 0o711); err != nil { // #nosec G302 -- the parent must be traversable (x only) by the postgres user that runs the private cluster
			return "", err
		}
	}
	if err := os.Symlink(dir, link); err != nil {
		return "", err
	}
	return dir, nil
}

// rootClusterDir is where a cluster for dataDir (an absolute path) goes
// when credvault dev runs as root.
func rootClusterDir(dataDir string) string {
	sum := sha256.Sum256([]byte(dataDir))
	return filepath.Join(rootClusterBase, hex.EncodeToString(sum[:8]), "pg")
}

// URL is the DATABASE_URL of the dev database, password included (it is
// wrapped in a Secret by the caller and never printed).
func (pg *privatePG) URL() string { return pg.dbURL("credvault") }

// DisplayURL is URL without the password, for the start-up banner.
func (pg *privatePG) DisplayURL() string {
	return fmt.Sprintf("postgres://credvault@127.0.0.1:%d/credvault?sslmode=disable", pg.port)
}

func (pg *privatePG) dbURL(name string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword("credvault", pg.password.Reveal()),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(pg.port)), Path: "/" + name, RawQuery: "sslmode=disable"}
	return u.String()
}

func (pg *privatePG) initdb() error {
	pg.log.Info("dev: creating private postgres cluster", "dir", pg.dir)
	if err := os.MkdirAll(pg.dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", pg.dir, err)
	}
	if err := pg.chown(pg.dir); err != nil {
		return err
	}
	// initdb reads the password from a file its user can read; it lives
	// next to the cluster only while initdb runs.
	pwFile := filepath.Join(filepath.Dir(pg.dir), ".initdb-pw-"+randomHex(4))
	if err := pg.writeFile(pwFile, pg.password.Reveal()+"\n"); err != nil {
		return err
	}
	defer os.Remove(pwFile)
	out, err := pg.command("initdb", "-D", pg.dir, "-U", "credvault", "--auth=scram-sha-256", "--pwfile="+pwFile,
		"-E", "UTF8", "--no-locale").CombinedOutput()
	if err != nil {
		hint := ""
		if pg.runAs != nil && bytes.Contains(out, []byte("ermission denied")) {
			hint = " (as root, PostgreSQL runs as an unprivileged user, which must be able to reach " + pg.dir + ")"
		}
		return fmt.Errorf("initdb failed%s: %w: %s", hint, err, lastLine(out))
	}
	port, err := freeLoopbackPort()
	if err != nil {
		return err
	}
	conf := fmt.Sprintf("\n# credvault dev: loopback TCP only\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = ''\n", port)
	f, err := os.OpenFile(filepath.Join(pg.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(conf); err != nil {
		f.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
		return err
	}
	return f.Close()
}

// hbaConf admits the credvault user with its password over loopback TCP,
// and nothing else.
const hbaConf = "# credvault dev: password (SCRAM-SHA-256) over loopback TCP only\n" +
	"host all credvault 127.0.0.1/32 scram-sha-256\n"

func (pg *privatePG) writeHBA() error {
	return pg.writeFile(filepath.Join(pg.dir, "pg_hba.conf"), hbaConf)
}

// setPassword moves a cluster created with trust authentication (by an
// earlier credvault dev) to a password: it sets one while trust still
// admits the connection, then switches pg_hba.conf and reloads.
func (pg *privatePG) setPassword(ctx context.Context, pwFile string) error {
	pg.log.Info("dev: private postgres used trust authentication; setting a password", "file", pwFile)
	trust := *pg
	trust.password = credvault.Secret{}
	u := strings.Replace(trust.dbURL("postgres"), "credvault:@", "credvault@", 1)
	db, err := sqlx.Open("postgres", u)
	if err != nil {
		return err
	}
	defer db.Close()
	// The password is hex: nothing in it needs quoting.
	if _, err := db.ExecContext(ctx, "ALTER ROLE credvault PASSWORD '"+pg.password.Reveal()+"'"); err != nil {
		return fmt.Errorf("private postgres: set password: %w", err)
	}
	if err := os.WriteFile(pwFile, []byte(pg.password.Reveal()+"\n"), 0o600); err != nil {
		return err
	}
	if err := pg.writeHBA(); err != nil {
		return err
	}
	return pg.pgctl("reload")
}

// writeFile writes a file PostgreSQL's user owns (mode 0600).
func (pg *privatePG) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	return pg.chown(path)
}

func (pg *privatePG) chown(path string) error {
	if pg.runAs == nil {
		return nil
	}
	if err := os.Chown(path, int(pg.runAs.Uid), int(pg.runAs.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	return nil
}

func (pg *privatePG) createDatabase(ctx context.Context) error {
	db, err := sqlx.Open("postgres", pg.dbURL("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var exists bool
	if err := db.GetContext(ctx, &exists, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'credvault')`); err != nil {
		return fmt.Errorf("private postgres: %w", err)
	}
	if !exists {
		if _, err := db.ExecContext(ctx, `CREATE DATABASE credvault`); err != nil {
			return fmt.Errorf("private postgres: create database: %w", err)
		}
	}
	return nil
}

// stop shuts the cluster down if this process started it.
func (pg *privatePG) stop() {
	if !pg.started {
		return
	}
	if err := pg.pgctl("stop", "-m", "fast", "-w", "-t", "60"); err != nil {
		pg.log.Error("dev: stopping private postgres failed", "error", err.Error())
		return
	}
	pg.started = false
	pg.log.Info("dev: private postgres stopped")
}

func (pg *privatePG) pgctl(args ...string) error {
	args = append([]string{args[0], "-D", pg.dir, "-s"}, args[1:]...)
	out, err := pg.command("pg_ctl", args...).CombinedOutput()
	if err != nil && len(out) > 0 {
		return fmt.Errorf("%w: %s", err, lastLine(out))
	}
	return err
}

// command runs a PostgreSQL program as the unprivileged user when needed,
// in its own process group so that a Ctrl-C reaches credvault first and
// credvault stops PostgreSQL in order, after draining its requests.
func (pg *privatePG) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(pg.bin, name), args...) // #nosec G204 -- the binary path is found by credvault (PATH or the PostgreSQL bin dir), arguments are built here, not user input
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=" + pg.bin + ":/usr/bin:/bin", "LC_ALL=C", "LANG=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: pg.runAs}
	return cmd
}

func readPort(conf string) (int, error) {
	f, err := os.Open(conf) // #nosec G304 -- postgresql.conf of the private cluster credvault dev created
	if err != nil {
		return 0, err
	}
	defer f.Close()
	port := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "port = "); ok {
			v, _, _ = strings.Cut(v, "#")
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				port = n
			}
		}
	}
	if port == 0 {
		return 0, fmt.Errorf("%s sets no port; delete %s to let credvault dev create a fresh cluster", conf, filepath.Dir(conf))
	}
	return port, sc.Err()
}

func freeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
