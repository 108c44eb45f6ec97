package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"credvault/internal/apikey"
	"credvault/internal/credvault"
	"credvault/internal/postgres"
)

// runBootstrap is `credvault bootstrap --org NAME --email EMAIL`: it creates
// an org with its owner and prints {"org_id","user_id","api_key"}; the key
// is shown this once.
func runBootstrap(ctx context.Context, cfg Config, args []string, log *slog.Logger, stdout, stderr io.Writer) error {
	fs := newFlagSet("bootstrap", args, stdout, stderr)
	org := fs.String("org", "", "name of the new org (required)")
	email := fs.String("email", "", "email of its owner (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *org == "":
		return errors.New("bootstrap: --org is required")
	case *email == "":
		return errors.New("bootstrap: --email is required")
	case fs.NArg() > 0:
		return fmt.Errorf("bootstrap: unexpected argument %q", fs.Arg(0))
	case cfg.DatabaseURL.IsZero():
		return &configError{"DATABASE_URL", "required by `credvault bootstrap`"}
	}
	db, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := credvault.Bootstrap(ctx, postgres.NewStore(db), apikey.Minter{Prefix: cfg.KeyPrefix}, *org, *email)
	if credvault.ErrorCode(err) == credvault.ECONFLICT {
		return fmt.Errorf("bootstrap: org %q already exists; bootstrap creates a new org only (its owner's key was printed when it was created; issue more keys with POST /v1/api-keys)", *org)
	}
	if err != nil {
		return err
	}
	return printBootstrap(stdout, res)
}

func printBootstrap(w io.Writer, res *credvault.BootstrapResult) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(map[string]string{"org_id": res.OrgID, "user_id": res.UserID, "api_key": res.APIKey.Reveal()})
}

// devOrg is the org `credvault dev` creates on its first start.
const (
	devOrg   = "default"
	devEmail = "admin@localhost"
)

// bootstrapDev creates org "default" on the first start of `credvault dev`
// and writes its owner's key to dataDir/admin.key (mode 0600). It returns
// the key on that first start only, for printing once.
func bootstrapDev(ctx context.Context, s *service, dataDir string) (credvault.Secret, error) {
	if _, err := s.store.FindOrgByName(ctx, devOrg); err == nil {
		return credvault.Secret{}, nil
	} else if credvault.ErrorCode(err) != credvault.ENOTFOUND {
		return credvault.Secret{}, err
	}
	res, err := credvault.Bootstrap(ctx, s.store, s.minter, devOrg, devEmail)
	if err != nil {
		return credvault.Secret{}, err
	}
	path := filepath.Join(dataDir, "admin.key")
	if err := os.WriteFile(path, []byte(res.APIKey.Reveal()+"\n"), 0o600); err != nil {
		return credvault.Secret{}, fmt.Errorf("write %s: %w", path, err)
	}
	return res.APIKey, nil
}
