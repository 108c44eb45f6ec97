package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"credvault/internal/credvault"
	"credvault/vault/devtransit"
)

// devAddr is where `credvault dev` listens unless CREDVAULT_ADDR says
// otherwise: loopback only, since it prints a freshly minted owner key.
const devAddr = "127.0.0.1:8080"

// runDev runs the whole service for a laptop or a fresh machine: the
// private PostgreSQL cluster unless DATABASE_URL is set, the built-in dev
// transit server unless VAULT_ADDR is set, then the service itself. On
// Ctrl-C it drains requests and stops what it started, in reverse order,
// and returns nil.
func runDev(ctx context.Context, cfg Config, log *slog.Logger, stdout io.Writer) (err error) {
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	// Private to this user; only a cluster made by an earlier credvault dev
	// run as root inside the data dir needs its user to pass through.
	mode := os.FileMode(0o700)
	if fi, err := os.Lstat(filepath.Join(dataDir, "pg")); err == nil && fi.IsDir() && os.Geteuid() == 0 {
		mode = 0o711
	}
	if err := os.MkdirAll(dataDir, mode); err != nil {
		return &configError{"CREDVAULT_DATA_DIR", fmt.Sprintf("cannot create %s: %v", dataDir, err)}
	}
	if err := os.Chmod(dataDir, mode); err != nil {
		return err
	}
	unlock, err := lockDataDir(dataDir)
	if err != nil {
		return err
	}
	defer unlock()

	// The port first: when it is taken, say so before starting anything.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return listenError(cfg.Addr, err)
	}
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	stops = append(stops, func() { ln.Close() }) // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add

	pgNote := "from DATABASE_URL"
	if cfg.DatabaseURL.IsZero() {
		pg, err := startPrivatePG(ctx, dataDir, log)
		if err != nil {
			return err
		}
		stops = append(stops, pg.stop)
		cfg.DatabaseURL = credvault.NewSecret(pg.URL())
		pgNote = fmt.Sprintf("%s (private cluster in %s; password in %s)", pg.DisplayURL(), pg.dir, filepath.Join(dataDir, "pg.password"))
	}

	vaultNote := cfg.VaultAddr
	if cfg.VaultAddr == "" {
		addr, tokenFile, stop, err := startDevTransit(ctx, dataDir, log)
		if err != nil {
			return err
		}
		stops = append(stops, stop)
		token, err := readSecretFile(tokenFile)
		if err != nil {
			return err
		}
		cfg.VaultAddr, cfg.VaultToken = addr, token
		cfg.VaultRoleID, cfg.VaultSecretID = "", credvault.Secret{}
		vaultNote = fmt.Sprintf("%s (built-in dev transit server; token in %s)", addr, tokenFile)
	} else if cfg.VaultToken.IsZero() && cfg.VaultRoleID == "" {
		return &configError{"VAULT_TOKEN", "VAULT_ADDR is set, so credvault dev needs VAULT_TOKEN (or AppRole) for it"}
	}

	s, err := startService(ctx, cfg, log, startOptions{createTransitKey: true, ln: ln})
	if err != nil {
		return err
	}
	adminKey, err := bootstrapDev(ctx, s, dataDir)
	if err != nil {
		s.close()
		return err
	}
	keyFile := filepath.Join(dataDir, "admin.key")
	keyNote := "in " + keyFile
	if !adminKey.IsZero() {
		// Printed this once, on the first start; afterwards only the file has it.
		keyNote = adminKey.Reveal() + "\n              (org \"" + devOrg + "\", owner " + devEmail + "; also written to " + keyFile + ")"
	}
	urlNote := s.URL()
	if addr := ln.Addr().(*net.TCPAddr); !addr.IP.IsLoopback() {
		urlNote += " (listening on " + addr.String() + ", as CREDVAULT_ADDR asks: reachable from other machines)"
	}
	// A fresh one-time console link for the owner at every start (the
	// key above is printed only once; the link never needs the key).
	_, link, err := s.sessions.IssueOwnerSignInLink(ctx, devOrg)
	if err != nil {
		s.close()
		return err
	}
	fmt.Fprint(stdout, egressWarning(cfg))
	fmt.Fprintf(stdout, "credvault dev is ready\n  URL:        %s\n  Admin key:  %s\n  Sign in:    %s\n              (console sign-in link for the owner; works once, for 15 minutes)\n  PostgreSQL: %s\n  Vault:      %s\n  Try:        curl -H \"X-API-Key: $(cat %s)\" %s/v1/whoami\nPress Ctrl-C to stop.\n",
		urlNote, keyNote, s.PublicURL(cfg)+credvault.SignInLinkPath+link.Reveal(), pgNote, vaultNote, keyFile, s.URL())
	fmt.Fprintf(stdout, "credvault listening on %s\n", s.URL())
	return s.serve(ctx)
}

// egressWarning is the banner's line about outbound calls to private
// addresses: a warning when CREDVAULT_EGRESS_ALLOW_PRIVATE opens them all
// (a credential could then be sent to anything on the machine's networks,
// cloud metadata included), a note naming the loopback ports
// CREDVAULT_EGRESS_ALLOW_LOOPBACK_PORTS opens; "" when neither is set.
func egressWarning(cfg Config) string {
	if cfg.EgressAllowPrivate {
		return "WARNING: CREDVAULT_EGRESS_ALLOW_PRIVATE=true: the proxy may send credentials to private, loopback and\n" +
			"         link-local addresses (your LAN, cloud metadata). To try a local service, allow only its port:\n" +
			"         CREDVAULT_EGRESS_ALLOW_LOOPBACK_PORTS=9000 instead.\n"
	}
	if len(cfg.EgressLoopbackPorts) > 0 {
		ports := make([]string, len(cfg.EgressLoopbackPorts))
		for i, p := range cfg.EgressLoopbackPorts {
			ports[i] = strconv.Itoa(int(p))
		}
		return "Note: the proxy may reach loopback ports " + strings.Join(ports, ", ") + " (CREDVAULT_EGRESS_ALLOW_LOOPBACK_PORTS); other private addresses stay refused.\n"
	}
	return ""
}

// listenError is the one line for a listen address that cannot be used,
// such as a port another process holds.
func listenError(addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return &configError{"CREDVAULT_ADDR", fmt.Sprintf("%s is already in use (another credvault?); stop that process or set CREDVAULT_ADDR to another address, e.g. 127.0.0.1:8081", addr)}
	}
	return &configError{"CREDVAULT_ADDR", fmt.Sprintf("cannot listen on %s: %v", addr, err)}
}

// lockDataDir holds an exclusive lock on dataDir/dev.lock while dev runs,
// so that two dev processes never share one cluster, and so that a
// cluster found running while the lock is free was left by a crash. The
// kernel drops the lock when the process dies, however it dies.
func lockDataDir(dataDir string) (unlock func(), err error) {
	path := filepath.Join(dataDir, "dev.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) // #nosec G304 -- a path under the dev data directory credvault chose
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid, _ := os.ReadFile(path) // #nosec G304 -- a path under the dev data directory credvault chose
		f.Close()                   // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
		return nil, fmt.Errorf("another credvault dev (pid %s) is using %s; stop it first or set CREDVAULT_DATA_DIR to another directory", strings.TrimSpace(string(pid)), dataDir)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
}

// startDevTransit runs the dev transit server in-process on a loopback
// port, with its keys under dataDir/transit and a root token kept in
// dataDir/vault.token, so that a restart decrypts what was encrypted
// before. Its port is kept in dataDir/vault.addr and reused on the next
// start, so that its address stays the same.
func startDevTransit(ctx context.Context, dataDir string, log *slog.Logger) (addr, tokenFile string, stop func(), err error) {
	tokenFile = filepath.Join(dataDir, "vault.token")
	token, err := readSecretFile(tokenFile)
	if errors.Is(err, os.ErrNotExist) {
		token = credvault.NewSecret(randomToken())
		err = os.WriteFile(tokenFile, []byte(token.Reveal()+"\n"), 0o600)
	}
	if err != nil {
		return "", "", nil, err
	}
	srv, err := devtransit.New(devtransit.Options{
		Token:   token.Reveal(),
		DataDir: filepath.Join(dataDir, "transit"),
		Logger:  log,
	})
	if err != nil {
		return "", "", nil, err
	}
	addrFile := filepath.Join(dataDir, "vault.addr")
	ln, err := listenKept(addrFile, log)
	if err != nil {
		return "", "", nil, err
	}
	srvCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(srvCtx, ln) }()
	stop = func() {
		cancel()
		if err := <-done; err != nil {
			log.Error("dev transit server stopped with an error", "error", err.Error())
		}
	}
	return "http://" + ln.Addr().String(), tokenFile, stop, nil
}

// listenKept listens on the loopback address recorded in file (as
// http://127.0.0.1:PORT), or on a free loopback port that it records
// there; if the recorded port has been taken meanwhile, it says so and
// records a new one.
func listenKept(file string, log *slog.Logger) (net.Listener, error) {
	if b, err := os.ReadFile(file); err == nil { // #nosec G304 -- a path under the dev data directory credvault chose
		hostport := strings.TrimPrefix(strings.TrimSpace(string(b)), "http://")
		if host, _, err := net.SplitHostPort(hostport); err == nil && host == "127.0.0.1" {
			ln, err := net.Listen("tcp", hostport)
			if err == nil {
				return ln, nil
			}
			log.Warn("dev: the dev transit server's port is taken; using a new one", "was", hostport, "error", err.Error())
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(file, []byte("http://"+ln.Addr().String()+"\n"), 0o600); err != nil {
		ln.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
		return nil, err
	}
	return ln, nil
}

func readSecretFile(path string) (credvault.Secret, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- a path under the dev data directory credvault chose
	if err != nil {
		return credvault.Secret{}, err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return credvault.Secret{}, fmt.Errorf("%s is empty; delete it to create a new one", path)
	}
	return credvault.NewSecret(s), nil
}

func randomToken() string { return "cvdev." + randomHex(24) }

// randomHex is n random bytes in hex: tokens and passwords that need no
// quoting anywhere.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
