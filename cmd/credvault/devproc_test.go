package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"credvault/internal/postgres/pgtest"
	"credvault/vault/vaulttest"
)

// TestDevProcessHelper is not a test: the tests below run the test binary
// again with CREDVAULT_TEST_DEV_PROCESS=1 to get a real `credvault dev`
// process (as another user, killed with SIGKILL, stopped with SIGINT).
//
// CREDVAULT_TEST_DEV_PROCESS=serve runs `credvault serve` instead, for
// TestKillBetweenCommitAndDelivery.
func TestDevProcessHelper(t *testing.T) {
	command := map[string]string{"1": "dev", "serve": "serve"}[os.Getenv("CREDVAULT_TEST_DEV_PROCESS")]
	if command == "" {
		t.Skip("helper process for the credvault dev process tests")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, []string{"credvault", command}, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "credvault: "+cliMessage(err))
		os.Exit(1)
	}
	os.Exit(0)
}

// devProc is a `credvault dev` process.
type devProc struct {
	cmd    *exec.Cmd
	url    string
	stdout *lineBuffer
	stderr *lineBuffer
	done   chan error
}

// startDevProcess runs `credvault dev` in dir (its data dir is the default
// ./.credvault there) as cred (nil: as this process's user).
func startDevProcess(t *testing.T, exe, dir string, cred *syscall.Credential) *devProc {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^TestDevProcessHelper$", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = []string{"CREDVAULT_TEST_DEV_PROCESS=1", "CREDVAULT_ADDR=127.0.0.1:0", "PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	p := &devProc{cmd: cmd, stdout: &lineBuffer{}, stderr: &lineBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-p.done:
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
			}
		}
	})
	p.url = p.stdout.waitFor(t, listeningRe, p.done)
	return p
}

// interrupt sends SIGINT (Ctrl-C) and returns the exit code.
func (p *devProc) interrupt(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("credvault dev did not stop within 60s of SIGINT")
	}
	return p.cmd.ProcessState.ExitCode()
}

// listeners returns the local addresses of the TCP sockets in LISTEN
// state that the processes pids hold, read from /proc.
func listeners(t *testing.T, pids ...int) []string {
	t.Helper()
	inodes := map[string]bool{}
	for _, pid := range pids {
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatalf("pid %d: %v", pid, err)
		}
		for _, fd := range fds {
			link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if ino, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
				inodes[strings.TrimSuffix(ino, "]")] = true
			}
		}
	}
	var out []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] { // 0A: LISTEN
				continue
			}
			out = append(out, procAddr(t, fields[1]))
		}
		f.Close()
	}
	return out
}

// procAddr decodes /proc/net/tcp's "0100007F:1F90" (address in host byte
// order, 32-bit words) into "127.0.0.1:8080".
func procAddr(t *testing.T, s string) string {
	t.Helper()
	hexIP, hexPort, _ := strings.Cut(s, ":")
	raw, err := hex.DecodeString(hexIP)
	if err != nil {
		t.Fatal(err)
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 { // each word is little-endian on the machines we test on
		ip[i], ip[i+1], ip[i+2], ip[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, _ := strconv.ParseUint(hexPort, 16, 16)
	return net.JoinHostPort(ip.String(), strconv.Itoa(int(port)))
}

// checkDevProcess: /readyz is 200, and every listening socket of credvault
// and of its PostgreSQL is on loopback (at least three: API, transit,
// PostgreSQL).
func checkDevProcess(t *testing.T, p *devProc, pgDir string) {
	t.Helper()
	if code, body := get(t, p.url+"/readyz"); code != 200 {
		t.Fatalf("readyz %d %s", code, body)
	}
	pidFile, err := os.ReadFile(filepath.Join(pgDir, "postmaster.pid"))
	if err != nil {
		t.Fatalf("private postgres not running: %v", err)
	}
	pgPid, _ := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
	addrs := listeners(t, p.cmd.Process.Pid, pgPid)
	if len(addrs) < 3 {
		t.Fatalf("listeners %v: want the API, the transit server and postgres", addrs)
	}
	for _, a := range addrs {
		host, _, _ := net.SplitHostPort(a)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			t.Errorf("listens on %s: beyond loopback (all: %v)", a, addrs)
		}
	}
	// Another local user cannot walk in: the cluster wants the password.
	m := pgURLRe.FindStringSubmatch(p.stdout.String())
	if m == nil {
		t.Fatalf("no PostgreSQL URL in the banner:\n%s", p.stdout.String())
	}
	if strings.Contains(m[0], ":@") || strings.Count(m[0], ":") > 2 {
		t.Errorf("the banner shows a password: %s", m[0])
	}
	if db, err := sqlOpenPing(m[0]); err == nil {
		db.Close()
		t.Error("the private cluster accepts a connection without the password")
	}
}

var pgURLRe = regexp.MustCompile(`postgres://credvault@127\.0\.0\.1:\d+/credvault\?sslmode=disable`)

func pgRunning(pgDir string) bool {
	_, err := os.Stat(filepath.Join(pgDir, "postmaster.pid"))
	return err == nil
}

func skipWithoutPG(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("creates a PostgreSQL cluster")
	}
	if _, err := findPGBin(); err != nil {
		t.Skipf("no PostgreSQL server binaries: %v", err)
	}
}

// removeRootCluster removes, when the test ends, the cluster a credvault
// dev run as root keeps outside dataDir. Call it before starting dev, so
// that it runs after dev has stopped.
func removeRootCluster(t *testing.T, dataDir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	dir := rootClusterDir(dataDir)
	t.Cleanup(func() {
		if pgRunning(dir) {
			pg := &privatePG{dir: dir}
			pg.bin, _ = findPGBin()
			pg.runAs, _ = unprivilegedUser()
			_ = pg.pgctl("stop", "-m", "immediate", "-w")
		}
		_ = os.RemoveAll(filepath.Dir(dir))
	})
}

// TestDevAsRootFrom0700Dir is `make dev` in a checkout under /root: run as
// root from a directory the postgres user cannot enter, dev places its
// cluster where that user can, answers /readyz, listens on loopback only;
// after a SIGKILL the next start stops the cluster left running and runs
// its own, and Ctrl-C exits 0 and stops it.
func TestDevAsRootFrom0700Dir(t *testing.T) {
	skipWithoutPG(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root: this is the root-in-a-0700-directory case")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, ".credvault")
	removeRootCluster(t, dataDir)

	p := startDevProcess(t, exe, dir, nil)
	pgDir, err := filepath.EvalSymlinks(filepath.Join(dataDir, "pg"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.stdout.String(), "private cluster in "+pgDir) {
		t.Errorf("dev does not say where the cluster is (%s):\n%s", pgDir, p.stdout.String())
	}
	checkDevProcess(t, p, pgDir)
	vaultAddr, _ := os.ReadFile(filepath.Join(dataDir, "vault.addr"))

	// A crash leaves PostgreSQL running; the next start takes it over.
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	if !pgRunning(pgDir) {
		t.Fatal("postgres stopped with the killed dev; the crash case is not exercised")
	}
	p = startDevProcess(t, exe, dir, nil)
	if !strings.Contains(p.stderr.String(), "left running") {
		t.Errorf("second start does not report the cluster left running:\n%s", p.stderr.String())
	}
	checkDevProcess(t, p, pgDir)
	if again, _ := os.ReadFile(filepath.Join(dataDir, "vault.addr")); string(again) != string(vaultAddr) || !strings.Contains(p.stdout.String(), strings.TrimSpace(string(vaultAddr))) {
		t.Errorf("transit address changed across restarts: %q then %q", vaultAddr, again)
	}
	if code := p.interrupt(t); code != 0 {
		t.Errorf("exit code after SIGINT %d, want 0; stderr:\n%s", code, p.stderr.String())
	}
	if pgRunning(pgDir) {
		t.Error("private postgres still runs after Ctrl-C")
	}
}

// TestDevAsUnprivilegedUser: a normal user runs dev; PostgreSQL runs as
// that user in ./.credvault/pg. As root, the test runs it as nobody.
func TestDevAsUnprivilegedUser(t *testing.T) {
	skipWithoutPG(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var cred *syscall.Credential
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Skipf("running as root and there is no user nobody to run dev as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// nobody needs its own copy of the binary and a directory it can reach.
		base, err := os.MkdirTemp("", "credvault-devtest-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(base) })
		if err := os.Chmod(base, 0o755); err != nil {
			t.Fatal(err)
		}
		exe = copyExecutable(t, exe, filepath.Join(base, "credvault.test"))
		dir = filepath.Join(base, "home")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	p := startDevProcess(t, exe, dir, cred)
	pgDir := filepath.Join(dir, ".credvault", "pg")
	if fi, err := os.Lstat(pgDir); err != nil || !fi.IsDir() {
		t.Fatalf("cluster not in %s: %v", pgDir, err)
	}
	checkDevProcess(t, p, pgDir)
	if fi, err := os.Stat(filepath.Join(dir, ".credvault", "pg.password")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("pg.password: %v %v, want mode 0600", fi, err)
	}
	if code := p.interrupt(t); code != 0 {
		t.Errorf("exit code after SIGINT %d, want 0; stderr:\n%s", code, p.stderr.String())
	}
	if pgRunning(pgDir) {
		t.Error("private postgres still runs after Ctrl-C")
	}
}

func copyExecutable(t *testing.T, from, to string) string {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return to
}

// TestDevPortTaken: a listen address in use is one line naming
// CREDVAULT_ADDR, before anything starts or logs an error.
func TestDevPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, cmd := range []string{"dev", "serve"} {
		var stderr lineBuffer
		env := map[string]string{"CREDVAULT_ADDR": ln.Addr().String(), "CREDVAULT_DATA_DIR": t.TempDir(),
			"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": "x"}
		err := run(context.Background(), []string{"credvault", cmd}, envOf(env), io.Discard, &stderr)
		msg := cliMessage(err)
		if err == nil || !strings.HasPrefix(msg, "CREDVAULT_ADDR: "+ln.Addr().String()+" is already in use") || strings.Contains(msg, "\n") {
			t.Errorf("%s: %q, want one line saying the address is in use", cmd, msg)
		}
		if strings.Contains(stderr.String(), `"level":"ERROR"`) || strings.Contains(stderr.String(), "context canceled") {
			t.Errorf("%s: error lines before the real one:\n%s", cmd, stderr.String())
		}
	}
}

// TestDevDefaultAddrIsLoopback: with no CREDVAULT_ADDR, dev listens on
// 127.0.0.1:8080 (it prints an owner key); serve keeps :8080.
func TestDevDefaultAddrIsLoopback(t *testing.T) {
	if devAddr != "127.0.0.1:8080" {
		t.Fatalf("devAddr %q", devAddr)
	}
	ln, err := net.Listen("tcp", devAddr)
	if err != nil {
		t.Skipf("%s is taken on this machine: %v", devAddr, err)
	}
	defer ln.Close()
	// With 8080 held on loopback, dev without CREDVAULT_ADDR reports that
	// address as in use: proof that it asked for 127.0.0.1:8080.
	err = run(context.Background(), []string{"credvault", "dev"}, envOf(map[string]string{"CREDVAULT_DATA_DIR": t.TempDir(),
		"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}), io.Discard, io.Discard)
	if msg := cliMessage(err); !strings.HasPrefix(msg, "CREDVAULT_ADDR: 127.0.0.1:8080 is already in use") {
		t.Errorf("dev without CREDVAULT_ADDR: %q", msg)
	}
	var ae *configError
	if !errors.As(err, &ae) {
		t.Errorf("error %T, want a configError", err)
	}
}

// TestDevMovesTrustClusterToPassword: a cluster an earlier credvault dev
// created with trust authentication gets a password on the next start;
// afterwards a connection without it is refused.
func TestDevMovesTrustClusterToPassword(t *testing.T) {
	skipWithoutPG(t)
	dataDir := t.TempDir()
	pg := &privatePG{dir: filepath.Join(dataDir, "pg")}
	var err error
	if pg.bin, err = findPGBin(); err != nil {
		t.Fatal(err)
	}
	if pg.runAs, err = unprivilegedUser(); err != nil {
		t.Fatal(err)
	}
	if pg.runAs != nil { // the old layout: the cluster inside the data dir
		for _, d := range []string{filepath.Dir(dataDir), dataDir} {
			if err := os.Chmod(d, 0o711); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Mkdir(pg.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := pg.chown(pg.dir); err != nil {
		t.Fatal(err)
	}
	if out, err := pg.command("initdb", "-D", pg.dir, "-U", "credvault", "-A", "trust", "-E", "UTF8", "--no-locale").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v %s", err, out)
	}
	port, _ := freeLoopbackPort()
	f, err := os.OpenFile(filepath.Join(pg.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = ''\n", port)
	f.Close()

	s := startRun(t, map[string]string{"CREDVAULT_ADDR": "127.0.0.1:0", "CREDVAULT_DATA_DIR": dataDir}, "dev")
	if code, body := get(t, s.url+"/readyz"); code != 200 {
		t.Fatalf("readyz %d %s", code, body)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "pg.password")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("pg.password: %v, want mode 0600", err)
	}
	hba, _ := os.ReadFile(filepath.Join(pg.dir, "pg_hba.conf"))
	if strings.Contains(string(hba), "trust") || !strings.Contains(string(hba), "scram-sha-256") {
		t.Errorf("pg_hba.conf still admits without a password:\n%s", hba)
	}
	db, err := sqlOpenPing(fmt.Sprintf("postgres://credvault@127.0.0.1:%d/credvault?sslmode=disable", port))
	if err == nil {
		db.Close()
		t.Error("a connection without the password is accepted")
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
}

func sqlOpenPing(url string) (*sqlx.DB, error) {
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		return nil, err
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// TestDevRefusesSecondOnOneDataDir: while one dev runs, a second on the
// same data dir is refused (it would share, and then stop, the first one's
// cluster).
func TestDevRefusesSecondOnOneDataDir(t *testing.T) {
	_, dbURL := pgtest.New(t)
	dataDir := t.TempDir()
	env := map[string]string{"CREDVAULT_ADDR": "127.0.0.1:0", "DATABASE_URL": dbURL, "CREDVAULT_DATA_DIR": dataDir}
	s := startRun(t, env, "dev")
	err := run(context.Background(), []string{"credvault", "dev"}, envOf(env), io.Discard, io.Discard)
	if msg := cliMessage(err); !strings.HasPrefix(msg, fmt.Sprintf("another credvault dev (pid %d) is using %s", os.Getpid(), dataDir)) {
		t.Errorf("second dev: %q", msg)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	// Once the first has stopped, the data dir is free again.
	s = startRun(t, env, "dev")
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
}

// TestDevBannerWarnsOfPrivateEgress: with CREDVAULT_EGRESS_ALLOW_PRIVATE
// the banner says that the proxy may reach private addresses and names the
// narrower loopback-ports setting; with only that setting it names the
// ports; with neither it says nothing of egress. A bad port list stops
// start-up with one line naming the variable.
func TestDevBannerWarnsOfPrivateEgress(t *testing.T) {
	t.Parallel() // waits on processes and a browser more than the CPU: overlaps with the other slow ones
	if vaulttest.Real() {
		t.Skip("runs credvault dev with its built-in transit server")
	}
	_, dbURL := pgtest.New(t)
	dir := t.TempDir() // one data directory: each start is a restart
	for _, c := range []struct {
		env        map[string]string
		want, none string
	}{
		{map[string]string{"CREDVAULT_EGRESS_ALLOW_PRIVATE": "true"}, "WARNING: CREDVAULT_EGRESS_ALLOW_PRIVATE=true", "Note: the proxy"},
		{map[string]string{"CREDVAULT_EGRESS_ALLOW_LOOPBACK_PORTS": "9000, 9001"}, "may reach loopback ports 9000, 9001", "WARNING"},
		{map[string]string{}, "credvault dev is ready", "EGRESS"},
	} {
		env := map[string]string{"CREDVAULT_ADDR": "127.0.0.1:0", "DATABASE_URL": dbURL, "CREDVAULT_DATA_DIR": dir}
		for k, v := range c.env {
			env[k] = v
		}
		s := startRun(t, env, "dev")
		out := s.stdout.String()
		if !strings.Contains(out, c.want) || strings.Contains(out, c.none) {
			t.Errorf("%v: banner\n%s\nwant %q and not %q", c.env, out, c.want, c.none)
		}
		if err := s.stop(); err != nil {
			t.Fatal(err)
		}
	}
	err := run(context.Background(), []string{"credvault", "dev"}, envOf(map[string]string{"CREDVAULT_DATA_DIR": t.TempDir(),
		"CREDVAULT_EGRESS_ALLOW_LOOPBACK_PORTS": "9000,http"}), io.Discard, io.Discard)
	if msg := cliMessage(err); !strings.HasPrefix(msg, "CREDVAULT_EGRESS_ALLOW_LOOPBACK_PORTS: ") {
		t.Errorf("bad port list: %q", msg)
	}
}

// TestDevReset: `credvault dev --reset` (make dev-clean) is refused while
// dev runs on the directory; once dev has stopped it removes the data
// directory and, as root, the cluster under /var/lib/credvault-dev/<hash>;
// files dev did not create are kept, and named.
func TestDevReset(t *testing.T) {
	t.Parallel() // waits on processes and a browser more than the CPU: overlaps with the other slow ones
	skipWithoutPG(t)
	if vaulttest.Real() {
		t.Skip("runs credvault dev with its built-in transit server")
	}
	dataDir := filepath.Join(t.TempDir(), ".credvault")
	removeRootCluster(t, dataDir)
	env := map[string]string{"CREDVAULT_ADDR": "127.0.0.1:0", "CREDVAULT_DATA_DIR": dataDir}
	reset := func() (string, error) {
		var out strings.Builder
		err := run(context.Background(), []string{"credvault", "dev", "--reset"}, envOf(env), &out, io.Discard)
		return out.String(), err
	}
	s := startRun(t, env, "dev")
	if _, err := reset(); err == nil || !strings.Contains(err.Error(), "another credvault dev") {
		t.Fatalf("reset while dev runs: %v", err)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	rootDir := filepath.Dir(rootClusterDir(dataDir))
	if os.Geteuid() == 0 {
		if _, err := os.Stat(rootDir); err != nil {
			t.Fatalf("as root, dev made no cluster under %s: %v", rootDir, err)
		}
	}
	out, err := reset()
	if err != nil {
		t.Fatalf("reset: %v", err)
	}
	if _, err := os.Lstat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after reset (%v); printed:\n%s", dataDir, err, out)
	}
	if _, err := os.Lstat(rootDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after reset (%v); printed:\n%s", rootDir, err, out)
	}
	if !strings.Contains(out, "removed "+dataDir) {
		t.Errorf("reset printed:\n%s", out)
	}

	// A file of the user's own in the directory stays, and is named.
	if err := os.MkdirAll(filepath.Join(dataDir, "transit"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err = reset(); err != nil || !strings.Contains(out, "kept "+dataDir) || !strings.Contains(out, "notes.txt") {
		t.Errorf("reset with a foreign file: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "notes.txt")); err != nil {
		t.Errorf("reset removed a file it did not create: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "transit")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("transit survived the reset: %v", err)
	}
}

// TestMakeSaysFirstBuildIsSlow: `make dev` (through `make build`) says that
// the first build downloads the modules before it starts compiling, so a
// fresh checkout does not sit silent for minutes; `make dev-clean` runs
// `credvault dev --reset`. Read with `make -n`, which runs nothing.
func TestMakeSaysFirstBuildIsSlow(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	cmd := exec.Command("make", "-n", "--no-print-directory", "dev", "dev-clean")
	cmd.Dir = filepath.Join("..", "..")
	// Under `make test`, the outer make's settings would reach this one.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MAKEFLAGS=") && !strings.HasPrefix(kv, "MAKELEVEL=") && !strings.HasPrefix(kv, "MFLAGS=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "echo ") || !strings.Contains(lines[0], "first build downloads") ||
		!strings.Contains(lines[1], "go build") {
		t.Errorf("make dev does not announce the slow first build before compiling:\n%s", out)
	}
	if !strings.Contains(string(out), "dev --reset") {
		t.Errorf("make dev-clean does not run credvault dev --reset:\n%s", out)
	}
}
