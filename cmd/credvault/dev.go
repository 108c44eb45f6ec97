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
	"strings"

	"credvault/internal/credvault"
	"credvault/vault/devtransit"
)

// runDev runs the whole service for a laptop or a fresh machine: the
// private PostgreSQL cluster unless DATABASE_URL is set, the built-in dev
// transit server unless VAULT_ADDR is set, then the service itself. On
// Ctrl-C it drains requests and stops what it started, in reverse order.
func runDev(ctx context.Context, cfg Config, log *slog.Logger, stdout io.Writer) (err error) {
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	// As root, PostgreSQL runs as another user, which must be able to pass
	// through (not list) the data directory to reach its cluster.
	mode := os.FileMode(0o700)
	if os.Geteuid() == 0 {
		mode = 0o711
	}
	if err := os.MkdirAll(dataDir, mode); err != nil {
		return &configError{"CREDVAULT_DATA_DIR", fmt.Sprintf("cannot create %s: %v", dataDir, err)}
	}
	if err := os.Chmod(dataDir, mode); err != nil {
		return err
	}

	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()

	pgNote := "from DATABASE_URL"
	if cfg.DatabaseURL.IsZero() {
		pg, err := startPrivatePG(ctx, filepath.Join(dataDir, "pg"), log)
		if err != nil {
			return err
		}
		stops = append(stops, pg.stop)
		cfg.DatabaseURL = credvault.NewSecret(pg.URL())
		pgNote = fmt.Sprintf("%s (private cluster in %s)", pg.URL(), pg.dir)
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

	s, err := startService(ctx, cfg, log, startOptions{createTransitKey: true})
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
	// A fresh one-time console link for the owner at every start (the
	// key above is printed only once; the link never needs the key).
	_, link, err := s.sessions.IssueOwnerSignInLink(ctx, devOrg)
	if err != nil {
		s.close()
		return err
	}
	fmt.Fprintf(stdout, "credvault dev is ready\n  URL:        %s\n  Admin key:  %s\n  Sign in:    %s\n              (console sign-in link for the owner; works once, for 15 minutes)\n  PostgreSQL: %s\n  Vault:      %s\n  Try:        curl -H \"X-API-Key: $(cat %s)\" %s/v1/whoami\nPress Ctrl-C to stop.\n",
		s.URL(), keyNote, s.PublicURL(cfg)+credvault.SignInLinkPath+link.Reveal(), pgNote, vaultNote, keyFile, s.URL())
	fmt.Fprintf(stdout, "credvault listening on %s\n", s.URL())
	return s.serve(ctx)
}

// startDevTransit runs the dev transit server in-process on a loopback
// port, with its keys under dataDir/transit and a root token kept in
// dataDir/vault.token, so that a restart decrypts what was encrypted before.
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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

func readSecretFile(path string) (credvault.Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return credvault.Secret{}, err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return credvault.Secret{}, fmt.Errorf("%s is empty; delete it to create a new one", path)
	}
	return credvault.NewSecret(s), nil
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "cvdev." + hex.EncodeToString(b)
}
