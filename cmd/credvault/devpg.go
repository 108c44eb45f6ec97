package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
)

// privatePG is the PostgreSQL cluster `credvault dev` keeps under
// .credvault/pg when no DATABASE_URL is given: created with the machine's
// initdb, listening on a loopback TCP port only, trust auth for the
// superuser "credvault" (nothing but this machine can reach it).
type privatePG struct {
	dir     string
	bin     string // directory holding initdb and pg_ctl
	port    int
	runAs   *syscall.Credential // set when credvault runs as root
	started bool                // true when this process started it (and so stops it)
	log     *slog.Logger
}

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
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root, but there is no unprivileged user (postgres or nobody) to run PostgreSQL as; run credvault dev as a normal user or set DATABASE_URL")
}

// startPrivatePG creates the cluster on first use and starts it unless it
// is already running. Errors say what to install or fix.
func startPrivatePG(ctx context.Context, dir string, log *slog.Logger) (*privatePG, error) {
	bin, err := findPGBin()
	if err != nil {
		return nil, err
	}
	runAs, err := unprivilegedUser()
	if err != nil {
		return nil, err
	}
	pg := &privatePG{dir: dir, bin: bin, runAs: runAs, log: log}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := pg.initdb(); err != nil {
			return nil, err
		}
	}
	if pg.port, err = readPort(filepath.Join(dir, "postgresql.conf")); err != nil {
		return nil, err
	}
	if pg.pgctl("status") != nil {
		log.Info("dev: starting private postgres", "dir", dir, "port", pg.port)
		if err := pg.pgctl("start", "-w", "-t", "60", "-l", filepath.Join(dir, "server.log")); err != nil {
			return nil, fmt.Errorf("private postgres did not start (see %s): %w", filepath.Join(dir, "server.log"), err)
		}
		pg.started = true
	} else {
		log.Info("dev: private postgres already running; using it", "dir", dir, "port", pg.port)
	}
	if err := pg.createDatabase(ctx); err != nil {
		pg.stop()
		return nil, err
	}
	return pg, nil
}

// URL is the DATABASE_URL of the dev database (no password: trust auth on
// loopback).
func (pg *privatePG) URL() string {
	return fmt.Sprintf("postgres://credvault@127.0.0.1:%d/credvault?sslmode=disable", pg.port)
}

func (pg *privatePG) dbURL(name string) string {
	return fmt.Sprintf("postgres://credvault@127.0.0.1:%d/%s?sslmode=disable", pg.port, name)
}

func (pg *privatePG) initdb() error {
	pg.log.Info("dev: creating private postgres cluster", "dir", pg.dir)
	if err := os.MkdirAll(pg.dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", pg.dir, err)
	}
	if pg.runAs != nil {
		if err := os.Chown(pg.dir, int(pg.runAs.Uid), int(pg.runAs.Gid)); err != nil {
			return fmt.Errorf("chown %s: %w", pg.dir, err)
		}
	}
	out, err := pg.command("initdb", "-D", pg.dir, "-U", "credvault", "-A", "trust", "-E", "UTF8", "--no-locale").CombinedOutput()
	if err != nil {
		hint := ""
		if pg.runAs != nil && bytes.Contains(out, []byte("ermission denied")) {
			hint = " (as root, PostgreSQL runs as an unprivileged user, which must be able to reach " + pg.dir + "; run as a normal user or set DATABASE_URL)"
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
		f.Close()
		return err
	}
	return f.Close()
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
	cmd := exec.Command(filepath.Join(pg.bin, name), args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=" + pg.bin + ":/usr/bin:/bin", "LC_ALL=C", "LANG=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: pg.runAs}
	return cmd
}

func readPort(conf string) (int, error) {
	f, err := os.Open(conf)
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
