package main

import (
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"credvault/internal/bench"
)

// TestBenchGeneratorAndOnlyFlags: --generator picks how the load is sent
// (wrk and the re-executed generator run in their own processes) and
// --only the groups of scenarios; a wrong value names the flag.
func TestBenchGeneratorAndOnlyFlags(t *testing.T) {
	o, err := parseBenchFlags([]string{"--only", "proxy,tls", "--generator", "exec"}, io.Discard, io.Discard)
	if err != nil || !o.only["proxy"] || !o.only["tls"] || o.only["verify"] || o.generator != "exec" {
		t.Fatalf("%+v %v", o, err)
	}
	if o, _ := parseBenchFlags(nil, io.Discard, io.Discard); o.only != nil || o.generator != "auto" {
		t.Errorf("defaults: %+v", o)
	}
	for _, bad := range [][]string{{"--only", "proxy,nope"}, {"--generator", "ab"}} {
		if _, err := parseBenchFlags(bad, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: %v", bad, err)
		}
	}
	g, err := pickGenerator(benchOptions{generator: "exec", concurrency: 4})
	if err != nil || g.Name() != "exec" {
		t.Errorf("exec: %v %v", g, err)
	}
	if g, _ := pickGenerator(benchOptions{generator: "in-process", concurrency: 4}); g.Name() != "in-process" {
		t.Errorf("in-process: %s", g.Name())
	}
	if bench.FindWrk(2, t.TempDir()) != nil {
		if g, _ := pickGenerator(benchOptions{generator: "auto", concurrency: 4}); g.Name() != "wrk" {
			t.Errorf("auto with wrk installed: %s", g.Name())
		}
	}
	t.Setenv("CREDVAULT_WRK", "")
	t.Setenv("PATH", t.TempDir())
	if g, _ := pickGenerator(benchOptions{generator: "auto", concurrency: 4}); g.Name() != "exec" {
		t.Errorf("auto without wrk: %s, want the re-executed generator", g.Name())
	}
	if _, err := pickGenerator(benchOptions{generator: "wrk", concurrency: 4}); err == nil || !strings.Contains(err.Error(), "wrk is not installed") {
		t.Errorf("--generator wrk without wrk: %v", err)
	}
}

// TestBenchTLSScenario runs `bench --only tls` end to end, briefly: the
// upstream in its own process with a test CA certificate that the
// instances trust through the configuration, proxied over HTTP/1.1 and
// HTTP/2 without a failure, each with credvault's CPU per request (and
// nginx's, as the peer, when nginx is installed).
func TestBenchTLSScenario(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("starts instances, an upstream process and nginx and drives load; run without -race -short")
	}
	var out strings.Builder
	jsonFile := t.TempDir() + "/tls.json"
	err := run(t.Context(), []string{"credvault", "bench", "--quick", "--only", "tls", "--duration", "1s", "--concurrency", "4", "--generator", "exec", "--json", jsonFile},
		func(string) string { return "" }, &out, io.Discard)
	if err != nil {
		t.Fatalf("bench --only tls: %v\n%s", err, out.String())
	}
	results := readBenchJSON(t, jsonFile)
	if len(results) != 2 {
		t.Fatalf("want proxy-tls-h1 and proxy-tls-h2, got %v", results)
	}
	for i, name := range []string{"proxy-tls-h1", "proxy-tls-h2"} {
		r := results[i]
		if r["name"] != name || r["failures"] != float64(0) || r["requests"].(float64) < 1 || r["cpu_us_per_req"].(float64) <= 0 || r["rss_mb"].(float64) <= 0 {
			t.Errorf("%s: %v", name, r)
		}
		if _, ok := r["peer"]; ok && (r["peer"] != "nginx-proxy-pass-https" || r["peer_cpu_us_per_req"].(float64) <= 0 || r["peer_failures"] != nil) {
			t.Errorf("%s peer: %v", name, r)
		}
	}
}

func readBenchJSON(t *testing.T, file string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var results []map[string]any
	if err := json.Unmarshal(b, &results); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return results
}
