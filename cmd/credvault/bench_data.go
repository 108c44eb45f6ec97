package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"credvault/internal/apikey"
	"credvault/internal/credvault"
)

// COPY statements of the bench's bulk loads (lib/pq runs a prepared
// "COPY ... FROM STDIN" as a copy-in; its CopyIn builder is deprecated).
const (
	copyAPIKeys     = `COPY api_keys (org_id, user_id, kind, name, mode, environment, key_hash, prefix, last4, scopes) FROM STDIN` // #nosec G101 -- column or header names, not a credential
	copyCredentials = `COPY credentials (id, org_id, owner_id, name, service, placement, ciphertext, key_version, hint, allowed_hosts) FROM STDIN`
)

// seedKeys stores n API keys for user (through COPY, the fast path for a
// million rows) and returns up to keep of them, to send in requests.
func seedKeys(ctx context.Context, db *sqlx.DB, orgID, userID string, n, keep int, progress io.Writer) ([]string, error) {
	kept := make([]string, 0, keep)
	const chunk = 50_000
	start := time.Now()
	for done := 0; done < n; done += chunk {
		size := min(chunk, n-done)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return nil, err
		}
		stmt, err := tx.Prepare(copyAPIKeys)
		if err != nil {
			tx.Rollback() // #nosec G104 -- the transaction is abandoned on an error already being returned
			return nil, err
		}
		for range size {
			key, err := apikey.Generate("cv", apikey.EnvLive)
			if err != nil {
				tx.Rollback() // #nosec G104 -- the transaction is abandoned on an error already being returned
				return nil, err
			}
			k := key.Reveal()
			h := apikey.Hash(k)
			if len(kept) < keep {
				kept = append(kept, k)
			}
			if _, err := stmt.ExecContext(ctx, orgID, userID, "user", "bench", apikey.EnvLive, "bench", h[:], "cv_live", apikey.Last4(k), pq.StringArray{"keys:read"}); err != nil {
				tx.Rollback() // #nosec G104 -- the transaction is abandoned on an error already being returned
				return nil, err
			}
		}
		if _, err := stmt.ExecContext(ctx); err != nil {
			tx.Rollback() // #nosec G104 -- the transaction is abandoned on an error already being returned
			return nil, err
		}
		stmt.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
		if err := tx.Commit(); err != nil {
			return nil, err
		}
		fmt.Fprintf(progress, "  seeded %d/%d keys (%.0f keys/s)\n", done+size, n, float64(done+size)/time.Since(start).Seconds())
	}
	if _, err := db.ExecContext(ctx, `ANALYZE api_keys`); err != nil {
		return nil, err
	}
	return kept, nil
}

// seedCredentials stores n credentials of org, their values encrypted
// through Vault in batches, as CreateCredential would.
func seedCredentials(ctx context.Context, db *sqlx.DB, transit interface {
	EncryptBatch(context.Context, []credvault.TransitItem) ([]credvault.TransitResult, error)
}, orgID, ownerID string, n int, progress io.Writer) error {
	// One database transaction per chunk; EncryptBatch sends each chunk in
	// requests sized for the server's JSON limits (vault.DefaultBatch
	// items, split further if a server refuses), like every batch call.
	const chunk = 1000
	start := time.Now()
	for done := 0; done < n; done += chunk {
		size := min(chunk, n-done)
		ids := make([]string, size)
		items := make([]credvault.TransitItem, size)
		for i := range items {
			ids[i] = uuid.NewString()
			items[i] = credvault.TransitItem{Plaintext: []byte(fmt.Sprintf("sk_bench_value_%08d", done+i)), Context: credvault.CredentialContext(orgID, ids[i])}
		}
		res, err := transit.EncryptBatch(ctx, items)
		if err != nil {
			return err
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		stmt, err := tx.Prepare(copyCredentials)
		if err != nil {
			tx.Rollback() // #nosec G104 -- the transaction is abandoned on an error already being returned
			return err
		}
		for i, r := range res {
			if r.Err != nil {
				tx.Rollback() // #nosec G104 -- the transaction is abandoned on an error already being returned
				return r.Err
			}
			if _, err := stmt.ExecContext(ctx, ids[i], orgID, ownerID, "bench", "custom", "bearer", r.Ciphertext, r.KeyVersion, "••••", pq.StringArray{"api.example.com"}); err != nil {
				tx.Rollback() // #nosec G104 -- the transaction is abandoned on an error already being returned
				return err
			}
		}
		if _, err := stmt.ExecContext(ctx); err != nil {
			tx.Rollback() // #nosec G104 -- the transaction is abandoned on an error already being returned
			return err
		}
		stmt.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
		if err := tx.Commit(); err != nil {
			return err
		}
		if (done/chunk)%10 == 9 || done+size == n {
			fmt.Fprintf(progress, "  seeded %d/%d credentials (%.0f rows/s)\n", done+size, n, float64(done+size)/time.Since(start).Seconds())
		}
	}
	return nil
}
