package main

import (
	"context"
	"credvault/internal/bench"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jmoiron/sqlx"

	"credvault/internal/credvault"
)

// benchOptions sizes a `credvault bench` run.
type benchOptions struct {
	quick       bool
	jsonFile    string
	concurrency int
	duration    time.Duration
	poolKeys    int // keys the verify scenarios send
	coldKeys    int // keys in the table for verify-cold
	revocations int
	rewrapRows  int
	cpuProfile  string          // prefix: one CPU profile per load run
	keys        int             // --keys: run only the key-scale measurement on this many keys
	generator   string          // --generator: auto, wrk, exec or in-process
	only        map[string]bool // --only: the groups of scenarios to run; nil = all
}

// benchGroups are the groups of scenarios --only selects, in run order.
var benchGroups = []string{"verify", "revoke", "proxy", "tls", "events", "nginx", "rewrap"}

// scenarioResult is one line of the report and one object of --json.
type scenarioResult struct {
	Name        string  `json:"name"`
	RPS         float64 `json:"rps"`
	P50         float64 `json:"p50_ms"`
	P99         float64 `json:"p99_ms"`
	BaselineRPS float64 `json:"baseline_rps"`
	Ratio       float64 `json:"ratio"`
	Requests    int     `json:"requests"`
	Failures    int     `json:"failures"`
	Extra       map[string]any
}

// MarshalJSON flattens Extra (db_queries, keys_in_table, ...) into the object.
func (r scenarioResult) MarshalJSON() ([]byte, error) {
	type plain scenarioResult
	b, err := json.Marshal(plain(r))
	if err != nil || len(r.Extra) == 0 {
		return b, err
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	delete(m, "Extra")
	for k, v := range r.Extra {
		m[k] = v
	}
	return json.Marshal(m)
}

func (r scenarioResult) line() string {
	s := fmt.Sprintf("%-19s rps=%9.0f  p50=%8.3fms  p99=%8.3fms  baseline_rps=%9.0f  ratio=%.2f", r.Name, r.RPS, r.P50, r.P99, r.BaselineRPS, r.Ratio)
	if r.Failures > 0 {
		s += fmt.Sprintf("  failures=%d", r.Failures)
	}
	for _, k := range sortedExtra(r.Extra) {
		s += fmt.Sprintf("  %s=%v", k, r.Extra[k])
	}
	return s
}

func sortedExtra(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// runBench is `credvault bench [--quick] [--json FILE]`: it starts what it
// needs (a throwaway database on local PostgreSQL, the dev transit server,
// several service instances, a baseline Fiber route and a local upstream),
// then measures each scenario against its baseline in the same run.
func runBench(ctx context.Context, cfg Config, args []string, stdout, stderr io.Writer) error {
	opts, err := parseBenchFlags(args, stdout, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, slog.LevelWarn)
	env, cleanup, err := benchEnvironment(ctx, cfg, log, stdout)
	defer cleanup()
	if err != nil {
		return err
	}
	gen, err := pickGenerator(opts)
	if err != nil {
		return err
	}
	b := &benchRun{opts: opts, out: stdout, log: log, client: benchClient(opts.concurrency), gen: gen, warm: bench.NewInProcess(opts.concurrency)}
	defer b.stop()
	var results []scenarioResult
	if opts.keys > 0 {
		results, err = b.keyScale(ctx, env, opts.keys)
	} else if err = b.setup(ctx, env); err == nil {
		results, err = b.run(ctx)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\nresults:")
	for _, r := range results {
		fmt.Fprintln(stdout, r.line())
	}
	if opts.jsonFile != "" {
		data, err := json.MarshalIndent(results, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(opts.jsonFile, append(data, '\n'), 0o644); err != nil { // #nosec G306 -- bench results hold figures only, no secret
			return fmt.Errorf("--json: %w", err)
		}
		fmt.Fprintf(stdout, "JSON summary written to %s\n", opts.jsonFile)
	}
	return nil
}

func parseBenchFlags(args []string, stdout, stderr io.Writer) (benchOptions, error) {
	fs := newFlagSet("bench", args, stdout, stderr)
	quick := fs.Bool("quick", false, "small data and short runs (under two minutes), for CI smoke tests")
	jsonFile := fs.String("json", "", "also write the results as JSON to this file")
	conc := fs.Int("concurrency", 64, "connections per load run")
	dur := fs.Duration("duration", 0, "length of each load run (default 10s, 2s with --quick)")
	prof := fs.String("cpuprofile", "", "write a CPU profile of each load run to PREFIX-<run>.pprof")
	gen := fs.String("generator", "auto", "load generator: wrk, exec (credvault re-executed as a separate process), in-process (the earlier method: inside credvault's process) or auto (wrk when installed, else exec)")
	only := fs.String("only", "", "run only these groups of scenarios, comma-separated: "+strings.Join(benchGroups, ", "))
	keys := fs.Int("keys", 0, "only measure start-up, filter memory and unknown-key queries with this many keys stored (e.g. 10000000)")
	if err := fs.Parse(args); err != nil {
		return benchOptions{}, err
	}
	if fs.NArg() > 0 {
		return benchOptions{}, fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	if *keys < 0 || *keys > 100_000_000 {
		return benchOptions{}, errors.New("bench: --keys must be from 1 to 100000000")
	}
	if *conc < 1 || *conc > 1024 {
		return benchOptions{}, errors.New("bench: --concurrency must be from 1 to 1024")
	}
	switch *gen {
	case "auto", "wrk", "exec", "in-process":
	default:
		return benchOptions{}, fmt.Errorf("bench: --generator %q: want auto, wrk, exec or in-process", *gen)
	}
	o := benchOptions{quick: *quick, jsonFile: *jsonFile, concurrency: *conc, duration: 10 * time.Second, cpuProfile: *prof,
		poolKeys: 10_000, coldKeys: 1_000_000, revocations: 100, rewrapRows: 100_000, keys: *keys, generator: *gen}
	if *quick {
		o.duration, o.poolKeys, o.coldKeys, o.revocations, o.rewrapRows = 2*time.Second, 1_000, 20_000, 20, 5_000
	}
	if *only != "" {
		o.only = map[string]bool{}
		for _, g := range strings.Split(*only, ",") {
			g = strings.TrimSpace(g)
			if !slices.Contains(benchGroups, g) {
				return benchOptions{}, fmt.Errorf("bench: --only %q: want a comma-separated list of %s", g, strings.Join(benchGroups, ", "))
			}
			o.only[g] = true
		}
	}
	if *dur != 0 {
		if *dur < 100*time.Millisecond || *dur > 10*time.Minute {
			return benchOptions{}, errors.New("bench: --duration must be from 100ms to 10m")
		}
		o.duration = *dur
	}
	return o, nil
}

// benchEnv is where the bench's services run: a database and a Vault.
type benchEnv struct {
	cfg Config
}

// benchEnvironment provides a database (DATABASE_URL, or a throwaway one
// on the local server, dropped at the end) and a Vault (VAULT_ADDR, or the
// dev transit server in-process).
func benchEnvironment(ctx context.Context, cfg Config, log *slog.Logger, out io.Writer) (benchEnv, func(), error) {
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	cfg.Addr, cfg.LogLevel, cfg.EgressAllowPrivate = "127.0.0.1:0", slog.LevelWarn, true
	if cfg.DatabaseURL.IsZero() {
		dbURL, drop, err := throwawayDatabase(ctx)
		if err != nil {
			return benchEnv{}, cleanup, err
		}
		cleanups = append(cleanups, drop)
		cfg.DatabaseURL = credvault.NewSecret(dbURL)
		fmt.Fprintln(out, "bench: using a throwaway database on the local PostgreSQL server")
	}
	if cfg.VaultAddr == "" {
		dir, err := os.MkdirTemp("", "credvault-bench-transit-")
		if err != nil {
			return benchEnv{}, cleanup, err
		}
		cleanups = append(cleanups, func() { os.RemoveAll(dir) }) // #nosec G104 -- best-effort cleanup of a scratch directory
		addr, tokenFile, stop, err := startDevTransit(ctx, dir, log)
		if err != nil {
			return benchEnv{}, cleanup, err
		}
		cleanups = append(cleanups, stop)
		token, err := readSecretFile(tokenFile)
		if err != nil {
			return benchEnv{}, cleanup, err
		}
		cfg.VaultAddr, cfg.VaultToken, cfg.VaultRoleID, cfg.VaultSecretID = addr, token, "", credvault.Secret{}
		cfg.TransitKey = "credvault-bench"
	}
	return benchEnv{cfg: cfg}, cleanup, nil
}

// throwawayDatabase creates a database on CREDVAULT_BENCH_DATABASE_URL's
// server (else TEST_DATABASE_URL's, else the local one at 127.0.0.1:5432)
// and returns its URL
// and a function that drops it.
func throwawayDatabase(ctx context.Context) (string, func(), error) {
	server := os.Getenv("CREDVAULT_BENCH_DATABASE_URL")
	if server == "" {
		server = os.Getenv("TEST_DATABASE_URL")
	}
	if server == "" {
		server = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	admin, err := sqlx.Open("postgres", server)
	if err != nil {
		return "", func() {}, err
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "credvault_bench_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		admin.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
		return "", func() {}, fmt.Errorf("bench: cannot create a database on the local PostgreSQL server (set DATABASE_URL or CREDVAULT_BENCH_DATABASE_URL): %w", err)
	}
	u, err := url.Parse(server)
	if err != nil {
		admin.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
		return "", func() {}, err
	}
	u.Path = "/" + name
	drop := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.ExecContext(dctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
		admin.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
	}
	return u.String(), drop, nil
}

// baselineServer is a Fiber app in credvault's process that does nothing
// but answer 200: what verify-cached is measured against.
func baselineServer() (string, func(), error) {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/ok", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusOK) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	go func() { _ = app.Listener(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = app.Shutdown() }, nil
}

// pickGenerator is the load generator of --generator: wrk (in its own
// process; the default when installed), credvault re-executed as a
// generator process, or the in-process generator of the earlier figures.
func pickGenerator(opts benchOptions) (bench.Generator, error) {
	threads := min(2, runtime.NumCPU())
	if opts.generator == "in-process" {
		return bench.NewInProcess(opts.concurrency), nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: cannot re-execute credvault as the load generator: %w", err)
	}
	if opts.generator == "auto" || opts.generator == "wrk" {
		if w := bench.FindWrk(threads, os.TempDir()); w != nil {
			w.Fallback = bench.NewExec(exe) // runs shorter than a second
			return w, nil
		}
		if opts.generator == "wrk" {
			return nil, errors.New("bench: --generator wrk: wrk is not installed (Debian: apt-get install wrk)")
		}
	}
	return bench.NewExec(exe), nil
}
