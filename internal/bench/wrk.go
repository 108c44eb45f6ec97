package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Wrk drives the load with wrk (https://github.com/wg/wrk; Debian package
// wrk), the generator gateway benchmarks use, in its own process: none of
// its work is charged to the process under test.
type Wrk struct {
	bin     string
	threads int
	dir     string // where the per-run Lua scripts are written
	// Fallback runs the specs wrk cannot: wrk's -d counts whole
	// seconds, so a duration that is not one goes to Fallback.
	Fallback Generator
}

// FindWrk returns a Wrk when the wrk binary is on PATH ($CREDVAULT_WRK
// names another), else nil. threads is wrk's -t (2 on a 2-core machine, the
// issue's `wrk -t2`); dir holds the Lua scripts.
func FindWrk(threads int, dir string) *Wrk {
	bin := os.Getenv("CREDVAULT_WRK")
	if bin == "" {
		p, err := exec.LookPath("wrk")
		if err != nil {
			return nil
		}
		bin = p
	}
	return &Wrk{bin: bin, threads: max(1, threads), dir: dir}
}

// Name is "wrk".
func (w *Wrk) Name() string { return "wrk" }

// luaScript cycles through the spec's requests (wrk.format builds each
// once, at start) and prints one line the parent reads: requests, duration
// (µs), p50 and p99 (µs), and the non-2xx/3xx count, summed over wrk's
// threads by wrk itself.
func luaScript(spec Spec) (string, error) {
	var b strings.Builder
	b.WriteString("local reqs = {}\n")
	for _, r := range spec.Requests {
		u, err := url.Parse(r.URL)
		if err != nil || u.Scheme != "http" {
			return "", fmt.Errorf("bench: wrk: %q is not an http:// URL", r.URL)
		}
		// Host explicitly: the table is built when the script loads,
		// before wrk.init fills wrk.headers.Host.
		b.WriteString("reqs[#reqs+1] = wrk.format(\"GET\", " + strconv.Quote(u.RequestURI()) + ", {[\"Host\"]=" + strconv.Quote(u.Host) + ",")
		for h := 0; h+1 < len(r.Headers); h += 2 {
			fmt.Fprintf(&b, "[%s]=%s,", strconv.Quote(r.Headers[h]), strconv.Quote(r.Headers[h+1]))
		}
		b.WriteString("})\n")
	}
	b.WriteString(`local i = 0
request = function()
  i = i + 1
  if i > #reqs then i = 1 end
  return reqs[i]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("CREDVAULT_BENCH %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
`)
	return b.String(), nil
}

// Run runs `wrk -t T -c C -d D --timeout 10s -s script URL`. wrk counts
// every non-2xx/3xx answer; for a spec that wants 2xx those are the
// failures, for one that wants 4xx (the garbage-key scenarios) every answer
// that is not one is. Socket errors and timeouts are failures too. wrk has
// no request cap: MaxRequests is not applied.
func (w *Wrk) Run(ctx context.Context, spec Spec) (Result, error) {
	if err := spec.check(); err != nil {
		return Result{}, err
	}
	if spec.Duration%time.Second != 0 && w.Fallback != nil {
		return w.Fallback.Run(ctx, spec)
	}
	script, err := luaScript(spec)
	if err != nil {
		return Result{}, err
	}
	f, err := os.CreateTemp(w.dir, "wrk-*.lua")
	if err != nil {
		return Result{}, err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(script); err != nil {
		f.Close()
		return Result{}, err
	}
	f.Close()
	secs := max(1, int((spec.Duration+time.Second/2)/time.Second))
	conns := max(spec.Connections, w.threads)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.bin, "-t", strconv.Itoa(min(w.threads, conns)), "-c", strconv.Itoa(conns),
		"-d", strconv.Itoa(secs)+"s", "--timeout", "10s", "-s", filepath.Clean(f.Name()), spec.Requests[0].URL)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("bench: wrk: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return parseWrk(out.Bytes(), spec.WantStatus)
}

// parseWrk reads the CREDVAULT_BENCH line of the script's done function.
func parseWrk(out []byte, want int) (Result, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 7 || f[0] != "CREDVAULT_BENCH" {
			continue
		}
		var n [6]int64
		for i := range n {
			v, err := strconv.ParseInt(f[i+1], 10, 64)
			if err != nil {
				return Result{}, fmt.Errorf("bench: wrk: unreadable summary %q", sc.Text())
			}
			n[i] = v
		}
		r := Result{Requests: int(n[0]), Elapsed: time.Duration(n[1]) * time.Microsecond,
			P50: float64(n[2]) / 1000, P99: float64(n[3]) / 1000}
		status := int(n[4])
		if want < 400 {
			r.Failures = status
		} else {
			r.Failures = r.Requests - status
		}
		r.Failures += int(n[5])
		return r, nil
	}
	return Result{}, fmt.Errorf("bench: wrk printed no summary:\n%s", out)
}
