package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"credvault/internal/credvault"
	"credvault/internal/postgres"
	"credvault/vault"
)

// runRewrap is `credvault rewrap [--batch N] [--raise-min-version]`: it
// re-encrypts every stored ciphertext under the transit key's latest
// version, printing a progress line per batch. Interrupted, it is simply
// run again: it resumes with the rows not yet done.
func runRewrap(ctx context.Context, cfg Config, args []string, log *slog.Logger, stdout, stderr io.Writer) error {
	fs := newFlagSet("rewrap", args, stdout, stderr)
	batch := fs.Int("batch", credvault.DefaultRewrapBatch, fmt.Sprintf("rows per Vault rewrap request (1-%d)", credvault.MaxRewrapBatch))
	raise := fs.Bool("raise-min-version", false, "after a complete run, set the key's min_decryption_version to its latest version")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("rewrap: unexpected argument %q", fs.Arg(0))
	}
	if *batch < 1 || *batch > credvault.MaxRewrapBatch {
		return fmt.Errorf("rewrap: --batch must be from 1 to %d, got %d (one row costs %d JSON strings in a rewrap request and OpenBao refuses more than %d per request by default)",
			credvault.MaxRewrapBatch, *batch, vault.StringsPerItem("rewrap"), vault.DefaultMaxRequestJSONStrings)
	}
	if err := cfg.requireProduction("rewrap"); err != nil {
		return err
	}
	db, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	vcfg := cfg.vaultConfig(log)
	vcfg.BatchSize = *batch // one batch of rows is one request
	vc, err := vault.New(ctx, vcfg)
	if err != nil {
		return err
	}
	defer vc.Close()
	if err := vc.CheckKey(ctx); err != nil {
		return err
	}
	store := postgres.NewStore(db)
	job := &credvault.RewrapService{Store: store, Audit: store, Vault: vc, Log: log}
	res, err := job.Rewrap(ctx, credvault.RewrapOptions{
		BatchSize: *batch, RaiseMinVersion: *raise,
		Progress: func(p credvault.RewrapProgress) { fmt.Fprintln(stdout, progressLine(p)) },
	})
	if err != nil && res.Failed == 0 {
		fmt.Fprintln(stdout, progressLine(res))
		return err
	}
	// Count what is left from the table, not from the run: rows that failed
	// in an earlier run, or were skipped, count too.
	left, cerr := store.CountCiphertextsBelow(ctx, "", res.LatestVersion)
	if cerr != nil {
		return cerr
	}
	if res.Failed > 0 || left > 0 {
		fmt.Fprintf(stdout, "rewrap incomplete: %d rewrapped, %d failed, %d skipped (changed meanwhile); %d row(s) are still on key versions older than %d (see the log for each failed credential id); min_decryption_version not raised\n",
			res.Rewrapped, res.Failed, res.Skipped, left, res.LatestVersion)
		if err == nil {
			err = fmt.Errorf("rewrap: %d row(s) failed, %d still on key versions older than %d", res.Failed, left, res.LatestVersion)
		}
		return &exitError{status: exitRewrapIncomplete, err: err}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rewrap done: %d rewrapped, %d failed, %d skipped (changed meanwhile); every row is on key version %d", res.Rewrapped, res.Failed, res.Skipped, res.LatestVersion)
	if res.MinRaised {
		fmt.Fprintf(stdout, "; min_decryption_version raised to %d", res.LatestVersion)
	}
	fmt.Fprintln(stdout)
	return nil
}

func progressLine(p credvault.RewrapProgress) string {
	done := p.Rewrapped + p.Failed + p.Skipped
	pct := 100.0
	if p.Total > 0 {
		pct = 100 * float64(done) / float64(p.Total)
	}
	rate := 0.0
	if s := p.Elapsed.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	return fmt.Sprintf("rewrap: %d/%d rows (%.1f%%) to v%d, %d failed, %d skipped, %.0f rows/s",
		done, p.Total, pct, p.LatestVersion, p.Failed, p.Skipped, rate)
}
