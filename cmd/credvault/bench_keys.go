package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"credvault/internal/apikey"
	"credvault/internal/credvault"
)

// keyScaleTimeout bounds how long `credvault bench --keys` may seed; what
// is seeded by then is measured (and said so).
const keyScaleSeedTimeout = 15 * time.Minute

// keyScale is `credvault bench --keys N`: it seeds N API keys through COPY,
// then starts a fresh instance and reports how long it takes to answer
// /readyz 200 (the known-key filter loaded), the memory the filter holds
// and the process's resident memory growth, and how many database queries
// a flood of well-formed unknown keys costs per second (the miss budget,
// apikey.DefaultMissBudget, is the ceiling).
func (bn *benchRun) keyScale(ctx context.Context, env benchEnv, n int) ([]scenarioResult, error) {
	seeder, err := bn.instance(ctx, env.cfg, startOptions{createTransitKey: true})
	if err != nil {
		return nil, err
	}
	res, err := credvault.Bootstrap(ctx, seeder.store, seeder.minter, "bench", "bench@localhost")
	if err != nil {
		return nil, err
	}
	seeded, err := seedKeyHashes(ctx, seeder.db, res.OrgID, res.UserID, n, bn.out)
	if err != nil {
		return nil, err
	}

	fmt.Fprintf(bn.out, "bench: keys-scale: starting a fresh instance on %d keys\n", seeded)
	debug.FreeOSMemory()
	rss0 := residentBytes()
	start := time.Now()
	s, err := bn.instance(ctx, env.cfg, startOptions{})
	if err != nil {
		return nil, err
	}
	if err := waitHTTPReady(ctx, s.URL(), 5*time.Minute); err != nil {
		return nil, err
	}
	ready := time.Since(start)
	debug.FreeOSMemory()
	rss := residentBytes() - rss0
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	filter := s.verifier.KnownBytes()

	unknown := make([]string, 10_000)
	for i := range unknown {
		k, err := apikey.Generate("cv", apikey.EnvLive)
		if err != nil {
			return nil, err
		}
		unknown[i] = k.Reveal()
	}
	stats := s.verifier.Stats()
	q0 := stats.DBLookups.Load()
	run, err := bn.load(ctx, "keys-scale: well-formed unknown keys", &leg{reqs: withKeys(s.URL()+"/v1/auth/check", unknown), want: 401, proc: self()})
	if err != nil {
		return nil, err
	}
	queries := stats.DBLookups.Load() - q0

	r := result("keys-scale", run, 0)
	r.Extra["keys_in_table"] = seeded
	r.Extra["ready_seconds"] = round2(ready.Seconds())
	r.Extra["filter_mb"] = round2(float64(filter) / 1e6)
	r.Extra["rss_growth_mb"] = round2(float64(rss) / 1e6)
	r.Extra["heap_inuse_mb"] = round2(float64(ms.HeapInuse) / 1e6)
	r.Extra["db_queries_unknown"] = queries
	r.Extra["db_queries_per_second"] = round2(float64(queries) / run.Elapsed.Seconds())
	r.Extra["miss_budget_per_second"] = apikey.DefaultMissBudget
	return []scenarioResult{r}, nil
}

// seedKeyHashes stores n keys of user through COPY in chunks, with random
// hashes (no key is ever sent: only the set's size matters here), with the
// table's indexes dropped during the load and rebuilt after it, which is
// several times faster than maintaining them row by row. The bench database
// is a throwaway one. Seeding stops after keyScaleSeedTimeout; it returns
// how many keys it stored.
func seedKeyHashes(ctx context.Context, db *sqlx.DB, orgID, userID string, n int, out interface{ Write([]byte) (int, error) }) (int, error) {
	fmt.Fprintf(out, "bench: keys-scale: seeding %d API keys through COPY (indexes rebuilt after)\n", n)
	if _, err := db.ExecContext(ctx, `DROP INDEX api_keys_key_hash_key; DROP INDEX api_keys_org_id_idx`); err != nil {
		return 0, err
	}
	seedCtx, cancel := context.WithTimeout(ctx, keyScaleSeedTimeout)
	defer cancel()
	const chunk = 250_000
	start := time.Now()
	done := 0
	hashes := make([]byte, 32*chunk)
	for done < n {
		size := min(chunk, n-done)
		if _, err := rand.Read(hashes[:32*size]); err != nil {
			return done, err
		}
		if err := copyKeyChunk(seedCtx, db, orgID, userID, hashes[:32*size]); err != nil {
			if errors.Is(seedCtx.Err(), context.DeadlineExceeded) {
				fmt.Fprintf(out, "  seeding stopped after %s: measuring %d keys\n", keyScaleSeedTimeout, done)
				break
			}
			return done, err
		}
		done += size
		fmt.Fprintf(out, "  seeded %d/%d keys (%.0f keys/s)\n", done, n, float64(done)/time.Since(start).Seconds())
	}
	fmt.Fprintln(out, "  rebuilding indexes and analyzing")
	for _, q := range []string{
		`CREATE UNIQUE INDEX api_keys_key_hash_key ON api_keys (key_hash)`,
		`CREATE INDEX api_keys_org_id_idx ON api_keys (org_id, id)`,
		`ANALYZE api_keys`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return done, err
		}
	}
	fmt.Fprintf(out, "  %d keys stored in %s\n", done, time.Since(start).Round(time.Second))
	return done, nil
}

func copyKeyChunk(ctx context.Context, db *sqlx.DB, orgID, userID string, hashes []byte) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, copyAPIKeys)
	if err != nil {
		return err
	}
	scopes := pq.StringArray{"keys:read"}
	for i := 0; i < len(hashes); i += 32 {
		if _, err := stmt.ExecContext(ctx, orgID, userID, "user", "bench", "live", "live", hashes[i:i+32], "cv_live", "AAAA", scopes); err != nil {
			return err
		}
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return err
	}
	if err := stmt.Close(); err != nil {
		return err
	}
	return tx.Commit()
}

// waitHTTPReady polls base/readyz until it answers 200.
func waitHTTPReady(ctx context.Context, base string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("bench: %s/readyz not 200 within %s", base, limit)
}

// residentBytes is the process's resident set size (VmRSS), or the Go
// runtime's view of its memory where /proc is not there.
func residentBytes() int64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				if err == nil {
					return kb * 1024
				}
			}
		}
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.Sys - m.HeapReleased) // #nosec G115 -- runtime memory figures are far below 2^63
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
