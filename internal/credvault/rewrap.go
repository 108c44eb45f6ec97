package credvault

import (
	"cmp"
	"context"
	"log/slog"
	"time"
)

// Rewrap batch sizes. One batch of rows is one transit rewrap request, so
// the bounds are the Vault client's (vault.MaxBatch, vault.DefaultBatch):
// an item {ciphertext, context} costs 4 JSON strings, the body 1 more, and
// OpenBao refuses a body with more than 1000 strings by default.
const (
	// MaxRewrapBatch is the most ciphertexts one rewrap batch carries.
	MaxRewrapBatch = 249
	// DefaultRewrapBatch leaves a margin under that limit.
	DefaultRewrapBatch = 200
)

// RewrapService re-encrypts stored ciphertexts (credential values, OAuth
// access and refresh tokens, OAuth app client secrets) under the transit
// key's latest version, in batches, without ever seeing a plaintext. It is
// resumable by construction: each batch is committed on its own, and a
// run only selects rows still below the latest version, so a run after an
// interruption starts where the last one stopped.
type RewrapService struct {
	Store CredentialStore
	Audit AuditStore
	Vault Rewrapper
	Log   *slog.Logger
}

// RewrapOptions shapes a run.
type RewrapOptions struct {
	OrgID     string // "" = every org (the command line); else one org (the API)
	BatchSize int    // 1..MaxRewrapBatch; 0 = DefaultRewrapBatch
	// RaiseMinVersion sets the key's min_decryption_version to the latest
	// version after a complete, failure-free run over every org, so that
	// old key versions can no longer decrypt anything.
	RaiseMinVersion bool
	Progress        func(RewrapProgress)
}

// RewrapProgress is reported after every batch and at the end.
type RewrapProgress struct {
	LatestVersion int           `json:"latest_version"`
	Total         int           `json:"total"` // rows below the latest version at the start
	Rewrapped     int           `json:"rewrapped"`
	Failed        int           `json:"failed"`
	Skipped       int           `json:"skipped"` // changed meanwhile (rotated), left as they are
	Batches       int           `json:"batches"`
	Elapsed       time.Duration `json:"-"`
	MinRaised     bool          `json:"min_decryption_version_raised"`
}

// Rewrap runs the job. Errors: EINVALID (batch size, raising the minimum
// on one org only), EUNAVAILABLE (Vault or PostgreSQL down: rerun to
// resume), ECONFLICT (RaiseMinVersion asked but rows failed or remain).
func (s *RewrapService) Rewrap(ctx context.Context, opts RewrapOptions) (RewrapProgress, error) {
	if opts.BatchSize == 0 {
		opts.BatchSize = DefaultRewrapBatch
	}
	if opts.BatchSize < 1 || opts.BatchSize > MaxRewrapBatch {
		return RewrapProgress{}, Errorf(EINVALID, "batch size must be from 1 to %d", MaxRewrapBatch)
	}
	if opts.RaiseMinVersion && opts.OrgID != "" {
		return RewrapProgress{}, Errorf(EINVALID, "min_decryption_version is global to the transit key: raise it from `credvault rewrap`, which covers every org")
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	pr, runErr := s.run(ctx, opts)
	pr.Elapsed = time.Since(start)
	if pr.LatestVersion == 0 {
		return pr, runErr // nothing started
	}
	// Every run is audited, an interrupted one too (with what it did).
	data := map[string]any{
		"latest_version": pr.LatestVersion, "rewrapped": pr.Rewrapped, "failed": pr.Failed, "skipped": pr.Skipped,
		"min_decryption_version_raised": pr.MinRaised, "completed": runErr == nil,
	}
	ev := newAuditEvent(ctx, opts.OrgID, "credential.rewrap", "transit_key", "", data)
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.Audit.CreateAuditEvent(actx, ev); err != nil && runErr == nil {
		return pr, err
	}
	return pr, runErr
}

func (s *RewrapService) run(ctx context.Context, opts RewrapOptions) (RewrapProgress, error) {
	var pr RewrapProgress
	start := time.Now()
	latest, err := s.Vault.LatestVersion(ctx)
	if err != nil {
		return pr, err
	}
	total, err := s.Store.CountCiphertextsBelow(ctx, opts.OrgID, latest)
	if err != nil {
		return pr, err
	}
	pr.LatestVersion, pr.Total = latest, total
	after := ""
	for {
		rows, err := s.Store.CiphertextsBelow(ctx, opts.OrgID, latest, after, opts.BatchSize)
		if err != nil {
			return pr, err
		}
		if len(rows) == 0 {
			break
		}
		if err := s.batch(ctx, rows, &pr); err != nil {
			return pr, err
		}
		after = rows[len(rows)-1].Cursor()
		pr.Batches++
		pr.Elapsed = time.Since(start)
		if opts.Progress != nil {
			opts.Progress(pr)
		}
	}
	if opts.RaiseMinVersion {
		left, err := s.Store.CountCiphertextsBelow(ctx, "", latest)
		if err != nil {
			return pr, err
		}
		if pr.Failed > 0 || left > 0 {
			return pr, Errorf(ECONFLICT, "not raising min_decryption_version: %d row(s) failed and %d remain below version %d; fix them and run again", pr.Failed, left, latest)
		}
		if err := s.Vault.SetMinDecryptionVersion(ctx, latest); err != nil {
			return pr, err
		}
		pr.MinRaised = true
	}
	return pr, nil
}

// RewrapCallerOrg runs the job over the caller's org (POST
// /v1/admin/rewrap). Errors: EFORBIDDEN (scope admin; owners and admins
// only), then as Rewrap.
func (s *RewrapService) RewrapCallerOrg(ctx context.Context) (RewrapProgress, error) {
	p, err := caller(ctx)
	if err != nil {
		return RewrapProgress{}, err
	}
	if err := requireScope(p, ScopeAdmin); err != nil {
		return RewrapProgress{}, err
	}
	if err := requireManager(p, "run the rewrap job"); err != nil {
		return RewrapProgress{}, err
	}
	return s.Rewrap(ctx, RewrapOptions{OrgID: p.OrgID})
}

// batch rewraps one batch and stores the results in one transaction.
func (s *RewrapService) batch(ctx context.Context, rows []CipherRow, pr *RewrapProgress) error {
	items := make([]TransitItem, len(rows))
	for i, r := range rows {
		items[i] = TransitItem{Ciphertext: r.Ciphertext, Context: r.Context()}
	}
	results, err := s.Vault.RewrapBatch(ctx, items)
	if err != nil {
		return err
	}
	updates := make([]CipherUpdate, 0, len(rows))
	for i, res := range results {
		if res.Err != nil {
			pr.Failed++
			s.Log.Error("rewrap: vault refused a ciphertext; the row keeps its old one", "kind", cmp.Or(rows[i].Kind, CipherValue), "id", rows[i].ID, "error", res.Err.Error())
			continue
		}
		updates = append(updates, CipherUpdate{Kind: rows[i].Kind, ID: rows[i].ID, OldCiphertext: rows[i].Ciphertext, NewCiphertext: res.Ciphertext, KeyVersion: res.KeyVersion})
	}
	n, err := s.Store.UpdateCiphertexts(ctx, updates)
	if err != nil {
		return err
	}
	pr.Rewrapped += n
	pr.Skipped += len(updates) - n
	return nil
}
