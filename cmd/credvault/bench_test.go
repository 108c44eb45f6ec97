package main

import (
	"encoding/json"
	"io"
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
	for _, bad := range [][]string{{"--concurrency", "0"}, {"--duration", "1ms"}, {"extra"}, {"--nope"}} {
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
