package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestBenchFlags(t *testing.T) {
	o, err := parseBenchFlags([]string{"--quick", "--json", "x.json"}, io.Discard, io.Discard)
	if err != nil || !o.quick || o.duration != 2*time.Second || o.coldKeys != 20_000 || o.jsonFile != "x.json" {
		t.Fatalf("quick: %+v %v", o, err)
	}
	o, err = parseBenchFlags(nil, io.Discard, io.Discard)
	if err != nil || o.coldKeys != 1_000_000 || o.poolKeys != 10_000 || o.revocations != 100 || o.rewrapRows != 100_000 || o.concurrency != 64 {
		t.Fatalf("full: %+v %v", o, err)
	}
	if o, err := parseBenchFlags([]string{"--keys", "10000000"}, io.Discard, io.Discard); err != nil || o.keys != 10_000_000 {
		t.Fatalf("--keys: %+v %v", o, err)
	}
	for _, bad := range [][]string{{"--concurrency", "0"}, {"--duration", "1ms"}, {"extra"}, {"--nope"}, {"--keys", "-1"}, {"--keys", "100000001"}} {
		if _, err := parseBenchFlags(bad, io.Discard, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestScenarioJSONFlattensExtras(t *testing.T) {
	r := scenarioResult{Name: "verify-garbage", RPS: 10, P50: 1.5, P99: 3, BaselineRPS: 20, Ratio: 0.5,
		Extra: map[string]any{"db_queries": 0}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"name", "rps", "p50_ms", "p99_ms", "baseline_rps", "ratio", "db_queries"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %s: %s", k, b)
		}
	}
	if _, ok := m["Extra"]; ok || !strings.Contains(r.line(), "db_queries=0") {
		t.Errorf("extras not flattened: %s / %s", b, r.line())
	}
}

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	if p := percentile(s, 50); p != 50 {
		t.Errorf("p50 = %v", p)
	}
	if p := percentile(s, 99); p != 99 {
		t.Errorf("p99 = %v", p)
	}
	if percentile(nil, 50) != 0 {
		t.Error("empty")
	}
}

// TestBenchKeyScale runs the `bench --keys` path end to end on a small
// table: the keys are seeded, a fresh instance becomes ready only once its
// known-key filter holds them, and a flood of unknown keys stays within
// the miss budget.
func TestBenchKeyScale(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two service instances")
	}
	var out strings.Builder
	// No DATABASE_URL or VAULT_ADDR: a throwaway database on the test
	// server and the dev transit server in-process.
	getenv := func(string) string { return "" }
	jsonFile := t.TempDir() + "/keys.json"
	err := run(context.Background(), []string{"credvault", "bench", "--keys", "5000", "--duration", "500ms", "--concurrency", "4", "--json", jsonFile}, getenv, &out, io.Discard)
	if err != nil {
		t.Fatalf("bench --keys: %v\n%s", err, out.String())
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var results []map[string]any
	if err := json.Unmarshal(b, &results); err != nil || len(results) != 1 {
		t.Fatalf("results %s: %v", b, err)
	}
	r := results[0]
	if r["name"] != "keys-scale" || r["keys_in_table"] != float64(5000) || r["failures"] != float64(0) {
		t.Fatalf("unexpected result %v", r)
	}
	// 16-bit fingerprints: about 2.3 bytes a key, so 5000 keys hold ~11 kB.
	if mb := r["filter_mb"].(float64); mb <= 0 || mb > 0.02 {
		t.Errorf("filter_mb = %v, want about 0.011", mb)
	}
	// The budget is 20/s with a burst of 20; 0.5 s of load cannot exceed 40.
	if q := r["db_queries_unknown"].(float64); q > 2*float64(20) {
		t.Errorf("unknown keys cost %v database queries in 0.5 s, over the miss budget", q)
	}
}
