package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// init makes the test binary the child processes Exec and StartUpstream
// start (they re-execute os.Executable(), the test binary here).
func init() {
	if len(os.Args) < 2 {
		return
	}
	var err error
	switch os.Args[1] {
	case GeneratorCommand:
		err = ServeGenerator(context.Background(), os.Stdin, os.Stdout)
	case UpstreamCommand:
		var cert, key string
		if len(os.Args) == 6 {
			cert, key = os.Args[3], os.Args[5]
		}
		err = ServeUpstream(context.Background(), cert, key, os.Stdin, os.Stdout)
	default:
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// okServer answers 200 to requests with X-Key: good, 401 to the rest.
func okServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Key") != "good" || r.Host == "" {
			w.WriteHeader(401)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestGenerators: every generator sends the headers and Host it is given,
// counts the wanted status as success and anything else as failure, and
// stops at its duration.
func TestGenerators(t *testing.T) {
	url := okServer(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	gens := []Generator{NewInProcess(2), NewExec(exe)}
	if w := FindWrk(1, t.TempDir()); w != nil {
		gens = append(gens, w)
	} else {
		t.Log("wrk not installed: its generator is not tested")
	}
	good, bad := Request{URL: url + "/x?y=1", Headers: []string{"X-Key", "good"}}, Request{URL: url + "/x", Headers: []string{"X-Key", "bad"}}
	for _, g := range gens {
		dur := time.Second
		start := time.Now()
		r, err := g.Run(context.Background(), Spec{Connections: 2, Duration: dur, Requests: []Request{good, bad}, WantStatus: 200})
		if err != nil {
			t.Fatalf("%s: %v", g.Name(), err)
		}
		if took := time.Since(start); took > dur+10*time.Second {
			t.Errorf("%s: ran %s for a %s spec", g.Name(), took, dur)
		}
		// Half the requests carry the bad key: about half fail.
		if r.Requests < 10 || r.Failures < r.Requests/3 || r.Failures > 2*r.Requests/3 || r.P99 <= 0 || r.RPS() <= 0 {
			t.Errorf("%s: %+v; want about half of the requests failed", g.Name(), r)
		}
		r, err = g.Run(context.Background(), Spec{Connections: 2, Duration: dur, Requests: []Request{bad}, WantStatus: 401})
		if err != nil || r.Failures != 0 || r.Requests < 10 {
			t.Errorf("%s: want 401: %+v %v", g.Name(), r, err)
		}
	}
	if _, err := NewInProcess(1).Run(context.Background(), Spec{Connections: 1, Duration: time.Second, WantStatus: 200}); err == nil {
		t.Error("a spec without requests ran")
	}
}

func TestParseWrk(t *testing.T) {
	out := []byte("Running 1s test\nCREDVAULT_BENCH 1000 2000000 1500 9000 10 2\n")
	r, err := parseWrk(out, 200)
	if err != nil || r.Requests != 1000 || r.Elapsed != 2*time.Second || r.P50 != 1.5 || r.P99 != 9 || r.Failures != 12 || r.RPS() != 500 {
		t.Fatalf("%+v %v", r, err)
	}
	if r, _ := parseWrk(out, 401); r.Failures != 992 {
		t.Errorf("want 401: failures %d, want 990 answers that were not 4xx plus 2 socket errors", r.Failures)
	}
	if _, err := parseWrk([]byte("garbage"), 200); err == nil {
		t.Error("no summary accepted")
	}
	if _, err := luaScript(Spec{Requests: []Request{{URL: "https://x/"}}}); err == nil {
		t.Error("https URL accepted for wrk")
	}
	s, _ := luaScript(Spec{Requests: []Request{{URL: "http://127.0.0.1:1/a?b=\"c\"", Headers: []string{"X-Key", "v\"1"}}}})
	if !strings.Contains(s, `"/a?b=\"c\""`) || !strings.Contains(s, `["Host"]="127.0.0.1:1"`) || !strings.Contains(s, `["X-Key"]="v\"1"`) {
		t.Errorf("script does not quote:\n%s", s)
	}
}

func TestMerge(t *testing.T) {
	a := Result{Requests: 100, Elapsed: time.Second, P50: 1, P99: 10, CPU: time.Millisecond, RSS: 5}
	b := Result{Requests: 300, Elapsed: time.Second, P50: 2, P99: 20, CPU: 3 * time.Millisecond, RSS: 7}
	m := Merge(a, b)
	if m.Requests != 400 || m.RPS() != 200 || m.P99 != 17.5 || m.P50 != 1.75 || m.CPUPerRequest() != 10 || m.RSS != 7 {
		t.Errorf("%+v", m)
	}
	s := Merge(Result{Requests: 2, Latency: []time.Duration{time.Millisecond, 3 * time.Millisecond}}, Result{Requests: 1, Latency: []time.Duration{2 * time.Millisecond}})
	if s.P50 != 2 || s.P99 != 2 {
		t.Errorf("merged samples: %+v", s)
	}
}

// TestProcessCPUAndUpstream: the upstream runs as its own process, serves
// plain HTTP and TLS (HTTP/1.1 only, and h2) with the test CA's
// certificate, its CPU grows as it serves and is read from /proc, and Stop
// ends it.
func TestProcessCPUAndUpstream(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	exe, _ := os.Executable()
	ca, err := NewTestCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	u, err := StartUpstream(context.Background(), exe, &ca)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Stop()
	if u.HTTPS1 == "" || u.HTTPS2 == "" || u.PID == os.Getpid() {
		t.Fatalf("upstream %+v", u)
	}
	r, err := Watch(Process{PID: u.PID}, func() (Result, error) {
		return NewInProcess(4).Run(context.Background(), Spec{Connections: 4, Duration: 2 * time.Second,
			Requests: []Request{{URL: "http://" + u.HTTP + "/v1/balance?direct=1"}}, WantStatus: 200})
	})
	if err != nil || r.Failures != 0 || r.Requests == 0 {
		t.Fatalf("%+v %v", r, err)
	}
	if r.CPU <= 0 || r.RSS <= 0 {
		t.Errorf("upstream CPU %s, RSS %d: not read", r.CPU, r.RSS)
	}
	resp, err := http.Get("http://" + u.HTTP + "/v1/balance?direct=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != UpstreamBody {
		t.Errorf("body %q", body)
	}
	if _, err := ProcessCPU(1<<30, false); err == nil {
		t.Error("CPU of a process that does not exist")
	}
	pid := u.PID
	u.Stop()
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if f, err := statFields(pid); err == nil && f[0] != "Z" && f[0] != "X" {
			t.Errorf("upstream process %d still runs after Stop (state %s)", pid, f[0])
		}
	}
}
