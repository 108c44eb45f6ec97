// Package ha_test runs credvault as a deployment: three instances (the
// built binary, so that kill -9 is real) behind HAProxy, on a PostgreSQL
// primary and streaming standby, Redis and the dev transit server, and
// injects one fault at a time. It is a package of its own so that its
// minute runs beside the other packages in make test.
package ha_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"credvault/internal/credvault"
	"credvault/vault"
)

// haProc is one process TestHAFaults started.
type haProc struct {
	name string
	cmd  *exec.Cmd
	out  *lineBuffer
	done chan struct{}
}

func (p *haProc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *haProc) kill() {
	if p.alive() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// haEnv is the deployment TestHAFaults runs: a PostgreSQL primary and
// streaming standby, Redis, the dev transit server, three instances and
// HAProxy, all on loopback ports of their own.
type haEnv struct {
	t          *testing.T
	exe, base  string
	pgBin      string
	haproxy    string
	runAs      *syscall.Credential
	pgPorts    [2]int
	pgDirs     [2]string
	redisPort  int
	vaultPort  int
	vaultToken string
	redis      *haProc
	transit    *haProc
	instances  []*haProc
	urls       []string
	lb         string
	dbURL      string
	mu         sync.Mutex
	procs      []*haProc
}

func (e *haEnv) start(name string, cmd *exec.Cmd) *haProc {
	p := &haProc{name: name, cmd: cmd, out: &lineBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p
}

// helper runs `credvault <args>` (the binary built for the test).
func (e *haEnv) helper(name string, env []string, args string) *haProc {
	cmd := exec.Command(e.exe, strings.Fields(args)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.base}, env...)
	return e.start(name, cmd)
}

// pg runs a PostgreSQL program as the user PostgreSQL may run as.
func (e *haEnv) pg(name string, args ...string) {
	e.t.Helper()
	cmd := exec.Command(filepath.Join(e.pgBin, name), args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=" + e.pgBin + ":/usr/bin:/bin", "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: e.runAs}
	if out, err := cmd.CombinedOutput(); err != nil {
		e.t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func (e *haEnv) pgCtl(i int, args ...string) {
	e.t.Helper()
	e.pg("pg_ctl", append([]string{args[0], "-D", e.pgDirs[i], "-s", "-w", "-t", "60", "-l", filepath.Join(e.pgDirs[i], "server.log")}, args[1:]...)...)
}

func (e *haEnv) chown(path string) {
	if e.runAs != nil {
		if err := os.Chown(path, int(e.runAs.Uid), int(e.runAs.Gid)); err != nil {
			e.t.Fatal(err)
		}
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// setupPG makes the primary (initdb) and the standby (pg_basebackup -R)
// and starts both.
func (e *haEnv) setupPG() {
	for i := range e.pgDirs {
		e.pgPorts[i] = freePort(e.t)
		e.pgDirs[i] = filepath.Join(e.base, fmt.Sprintf("pg%d", i))
	}
	for _, d := range e.pgDirs {
		if err := os.Mkdir(d, 0o700); err != nil {
			e.t.Fatal(err)
		}
		e.chown(d)
	}
	e.pg("initdb", "-D", e.pgDirs[0], "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale")
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = ''\nfsync = off\nfull_page_writes = off\nshared_buffers = 16MB\nmax_connections = 100\n", e.pgPorts[0])
	appendFile(e.t, filepath.Join(e.pgDirs[0], "postgresql.conf"), conf)
	e.pgCtl(0, "start")
	e.pg("pg_basebackup", "-h", "127.0.0.1", "-p", fmt.Sprint(e.pgPorts[0]), "-U", "postgres", "-D", e.pgDirs[1], "-R", "-X", "stream")
	appendFile(e.t, filepath.Join(e.pgDirs[1], "postgresql.conf"), fmt.Sprintf("\nport = %d\n", e.pgPorts[1]))
	e.pgCtl(1, "start")
	// The per-host port form: credvault rewrites it into the one lib/pq reads.
	e.dbURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres?sslmode=disable&target_session_attrs=read-write", e.pgPorts[0], e.pgPorts[1])
}

func appendFile(t *testing.T, path, s string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// The lines a process prints once it accepts connections. Waiting for
// its own word, rather than for something to answer on its port, cannot be
// fooled by another process that took the port in the meantime (this one
// then exits, and ready says so at once).
var (
	redisReady   = regexp.MustCompile(`(Ready to accept connections)`)
	transitReady = regexp.MustCompile(`devtransit listening on (http://\S+)`)
)

func (e *haEnv) startRedis() {
	e.redis = e.start("redis", exec.Command("redis-server", "--bind", "127.0.0.1", "--port", fmt.Sprint(e.redisPort),
		"--save", "", "--appendonly", "no", "--dir", e.base))
	e.redis.ready(e.t, redisReady)
}

func (e *haEnv) startTransit() {
	e.transit = e.helper("transit", nil, fmt.Sprintf("devtransit --addr 127.0.0.1:%d --token %s --data %s", e.vaultPort, e.vaultToken, filepath.Join(e.base, "transit")))
	if got, want := e.transit.ready(e.t, transitReady), fmt.Sprintf("http://127.0.0.1:%d", e.vaultPort); got != want {
		e.t.Fatalf("transit listens on %s, want %s", got, want)
	}
}

var haListening = regexp.MustCompile(`credvault listening on (http://\S+)`)

func (e *haEnv) startInstance(i int) {
	p := e.helper(fmt.Sprintf("cv%d", i+1), []string{
		"DATABASE_URL=" + e.dbURL, "VAULT_ADDR=" + fmt.Sprintf("http://127.0.0.1:%d", e.vaultPort), "VAULT_TOKEN=" + e.vaultToken,
		"REDIS_URL=" + fmt.Sprintf("redis://127.0.0.1:%d/0", e.redisPort), "CREDVAULT_ADDR=" + strings.TrimPrefix(e.urls[i], "http://"),
		"CREDVAULT_EGRESS_ALLOW_PRIVATE=true", "CREDVAULT_LOG_LEVEL=" + cmp.Or(os.Getenv("HA_LOG_LEVEL"), "error"),
	}, "serve")
	p.ready(e.t, haListening)
	e.mu.Lock()
	e.instances[i] = p
	e.mu.Unlock()
}

// instance is the process of instance i (nil before it started).
func (e *haEnv) instance(i int) *haProc {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.instances[i]
}

// waitTCP waits until p accepts connections on port (HAProxy prints no
// line when it does), failing at once if p exits (a port taken since it
// was picked, a bad configuration) and after 20 s.
func (p *haProc) waitTCP(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if !p.alive() {
			t.Fatalf("%s exited before listening on 127.0.0.1:%d:\n%s", p.name, port, p.out.String())
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			c.Close()
			if p.alive() {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s does not listen on 127.0.0.1:%d after 20s", p.name, port)
}

// startHAProxy runs deploy/haproxy.cfg with this test's bind port and servers.
func (e *haEnv) startHAProxy() {
	cfg, err := os.ReadFile("../../deploy/haproxy.cfg")
	if err != nil {
		e.t.Fatal(err)
	}
	port := freePort(e.t)
	s := strings.Replace(string(cfg), "bind :8080", fmt.Sprintf("bind 127.0.0.1:%d", port), 1)
	servers := regexp.MustCompile(`(?m)^    server cv.*\n`)
	var lines []string
	for i, u := range e.urls {
		lines = append(lines, fmt.Sprintf("    server cv%d %s check\n", i+1, strings.TrimPrefix(u, "http://")))
	}
	if !servers.MatchString(s) {
		e.t.Fatal("deploy/haproxy.cfg has no server lines")
	}
	s = servers.ReplaceAllString(s, "")
	s = strings.TrimRight(s, "\n") + "\n" + strings.Join(lines, "")
	path := filepath.Join(e.base, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		e.t.Fatal(err)
	}
	lb := e.start("haproxy", exec.Command(e.haproxy, "-db", "-f", path))
	e.lb = fmt.Sprintf("http://127.0.0.1:%d", port)
	lb.waitTCP(e.t, port)
}

type haResp struct {
	status int
	body   map[string]any
}

var haClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func haCall(method, url, key string, body any) haResp {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := haClient.Do(req)
	if err != nil {
		return haResp{status: 0}
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return haResp{status: resp.StatusCode, body: m}
}

// phaseStats are one fault's figures.
type phaseStats struct {
	name                 string
	reads, readsBad      atomic.Int64 // key checks and proxied calls through the LB
	writes, writes503    atomic.Int64
	writes5xx            atomic.Int64 // 5xx other than 503: a bug
	mu                   sync.Mutex
	acceptedAfter        []time.Duration // per revocation and instance: when its last accepting check was sent
	refusedBy            []time.Duration // and when its first refusal was answered
	late                 []string        // each acceptance past the bound: which instance, key and when
	failover             time.Duration
	redisDown, vaultDown bool
}

// addLatency records one instance's answer to one revocation, both
// measured from the revocation's acknowledgement: when the last check it
// accepted was sent (0 when none was), and when its first refusal came
// back. The key was accepted after the first and before the second.
func (p *phaseStats) addLatency(lastAccepted, refused time.Duration) {
	p.mu.Lock()
	p.acceptedAfter = append(p.acceptedAfter, lastAccepted)
	p.refusedBy = append(p.refusedBy, refused)
	p.mu.Unlock()
}

// p99Max is the 99th percentile and the maximum of l.
func p99Max(l []time.Duration) (time.Duration, time.Duration) {
	if len(l) == 0 {
		return 0, 0
	}
	l = append([]time.Duration(nil), l...)
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return l[(len(l)*99)/100], l[len(l)-1]
}

// TestHAFaults: three instances behind HAProxy (deploy/haproxy.cfg,
// checking /readyz) on a PostgreSQL primary with a streaming standby,
// Redis and the dev transit server. With key checks, proxied calls,
// writes and revocations running, it injects one fault at a time: kill -9
// of an instance, Redis down 5 s, transit down 5 s, a PostgreSQL restart
// while revocations are in flight, and promotion of the standby with the
// old primary stopped. It asserts no acknowledged write lost or half done,
// every revoked key refused by every instance within 1 s of its
// acknowledgement, >= 99% 2xx through the LB during the Redis and transit
// faults, writes during a fault answered 503 (never another 5xx) and
// succeeding after, and no instance restarted. It logs the figures.
func TestHAFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the HA fault test runs real PostgreSQL clusters, Redis, HAProxy and three instances")
	}
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		if haproxy = "/usr/sbin/haproxy"; !fileExists(haproxy) {
			t.Skip("haproxy not installed (.ci/run installs it)")
		}
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed (.ci/run installs it)")
	}
	pgBin := postgresBin()
	if pgBin == "" {
		t.Skip("no PostgreSQL server binaries (initdb, pg_basebackup)")
	}
	runAs, err := postgresUser()
	if err != nil {
		t.Skip(err)
	}
	base, err := os.MkdirTemp("", "credvault-ha-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	// The binary, as operators run it (built without -race: the faults
	// are timed, and the processes are not this test's code).
	exe := filepath.Join(base, "credvault")
	build := exec.Command("go", "build", "-o", exe, "credvault/cmd/credvault")
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(base)
		t.Fatalf("go build: %v\n%s", err, out)
	}
	e := &haEnv{t: t, exe: exe, base: base, pgBin: pgBin, runAs: runAs, haproxy: haproxy, vaultToken: "ha-test-root-token", instances: make([]*haProc, 3)}
	t.Cleanup(func() {
		e.mu.Lock()
		procs := append([]*haProc(nil), e.procs...)
		e.mu.Unlock()
		for _, p := range procs {
			if p.alive() {
				_ = p.cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-p.done:
				case <-time.After(10 * time.Second):
					p.kill()
				}
			}
		}
		for i := range e.pgDirs {
			if e.pgDirs[i] != "" {
				cmd := exec.Command(filepath.Join(pgBin, "pg_ctl"), "stop", "-D", e.pgDirs[i], "-m", "immediate", "-s")
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: runAs}
				_ = cmd.Run()
			}
		}
		if dir := os.Getenv("HA_LOG_DIR"); dir != "" {
			// Every process's whole output, for a run that is studied.
			for i, p := range procs {
				_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%02d-%s.log", i, p.name)), []byte(p.out.String()), 0o600)
			}
		}
		if t.Failed() {
			for _, p := range procs {
				t.Logf("--- %s output (last lines):\n%s", p.name, tail(p.out.String(), 30))
			}
		}
		os.RemoveAll(base)
	})
	started := time.Now()
	e.setupPG()
	e.redisPort, e.vaultPort = freePort(t), freePort(t)
	e.startRedis()
	e.startTransit()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	prepareTransit(ctx, t, fmt.Sprintf("http://127.0.0.1:%d", e.vaultPort), e.vaultToken)
	for range e.instances {
		e.urls = append(e.urls, fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
	}
	for i := range e.instances {
		e.startInstance(i)
	}
	e.startHAProxy()
	t.Logf("setup: %s", time.Since(started).Round(time.Millisecond))

	// The org, a key to check (rate-limited, so Redis is on its path), a
	// credential to proxy through.
	admin := haBootstrap(t, e)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"ok":true}`)) }))
	defer up.Close()
	checked := haMustKey(t, e.lb, admin, map[string]any{"name": "checked", "scopes": []string{"keys:read"}, "rate_limit": map[string]any{"requests": 1000000, "window_seconds": 60}})
	cr := haCall("POST", e.lb+"/v1/credentials", admin, map[string]any{"name": "up", "placement": "bearer", "value": "v-ha-secret-1",
		"base_url": up.URL, "allowed_hosts": []string{strings.TrimPrefix(up.URL, "http://")}})
	if cr.status != 201 {
		t.Fatalf("create credential: %d %v", cr.status, cr.body)
	}
	credID := cr.body["id"].(string)
	waitLBReady(t, e)

	phases := []*phaseStats{{name: "kill -9 instance"}, {name: "redis down 5s", redisDown: true}, {name: "transit down 5s", vaultDown: true},
		{name: "postgres restart"}, {name: "promote standby"}}
	var cur atomic.Pointer[phaseStats]
	warm := &phaseStats{name: "warm-up"}
	cur.Store(warm)
	stop := make(chan struct{})
	var wg sync.WaitGroup

	// loop runs step(0), step(1), ... on a goroutine of its own until stop.
	loop := func(step func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				step(i)
			}
		}()
	}

	// Key checks and proxied calls through the LB.
	for g := 0; g < 4; g++ {
		loop(func(i int) {
			var r haResp
			if (i+g)%2 == 0 {
				r = haCall("GET", e.lb+"/v1/auth/check?scope=keys:read", checked, nil)
			} else {
				r = haCall("GET", e.lb+"/v1/proxy/"+credID+"/ping", admin, nil)
			}
			p := cur.Load()
			p.reads.Add(1)
			if r.status < 200 || r.status > 299 {
				p.readsBad.Add(1)
			}
			time.Sleep(5 * time.Millisecond)
		})
	}
	// Writes through the LB, each retried on 503 until it succeeds:
	// api keys (PostgreSQL) and credentials (PostgreSQL and transit).
	var ackMu sync.Mutex
	var ackKeys, ackCreds []string
	loop(func(i int) {
		path, body := "/v1/api-keys", map[string]any{"name": fmt.Sprintf("w-%d", i), "scopes": []string{"keys:read"}}
		if i%2 == 1 {
			path, body = "/v1/credentials", map[string]any{"name": fmt.Sprintf("c-%d", i), "placement": "bearer", "value": fmt.Sprintf("v-%d-secret", i),
				"base_url": up.URL, "allowed_hosts": []string{strings.TrimPrefix(up.URL, "http://")}}
		}
		for attempt := 0; attempt < 200; attempt++ {
			r := haCall("POST", e.lb+path, admin, body)
			p := cur.Load()
			p.writes.Add(1)
			if r.status == 201 {
				ackMu.Lock()
				if i%2 == 1 {
					ackCreds = append(ackCreds, r.body["id"].(string))
				} else {
					ackKeys = append(ackKeys, r.body["id"].(string))
				}
				ackMu.Unlock()
				break
			}
			if r.status == 503 {
				p.writes503.Add(1)
			} else if r.status >= 500 {
				p.writes5xx.Add(1)
				t.Errorf("write %s answered %d (want 201, or 503 during a fault): %v", path, r.status, r.body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
	})
	// Revocations: a key every instance has cached, revoked through the
	// LB; then each instance is asked until it refuses the key.
	loop(func(i int) { haRevocationRound(t, e, admin, i, cur.Load) })

	// outage: a second of load, then stop, down, start, and settle.
	outage := func(stop func(), down time.Duration, start func(), settle time.Duration) {
		time.Sleep(time.Second)
		stop()
		time.Sleep(down)
		start()
		time.Sleep(settle)
	}
	time.Sleep(2 * time.Second)
	for _, p := range phases {
		cur.Store(p)
		switch p.name {
		case "kill -9 instance":
			// A new process takes its place (the others keep running).
			outage(func() { e.instance(2).kill() }, 4*time.Second, func() { e.startInstance(2) }, 2*time.Second)
		case "redis down 5s":
			outage(e.redis.kill, 5*time.Second, e.startRedis, 2*time.Second)
		case "transit down 5s":
			outage(e.transit.kill, 5*time.Second, e.startTransit, 2*time.Second)
		case "postgres restart":
			// Down for 3 s: long enough for a LISTEN reconnect backoff to
			// grow past the revocation bound; revocations retried through
			// the outage are acknowledged right after it.
			outage(func() { e.pgCtl(0, "stop", "-m", "fast") }, 3*time.Second, func() { e.pgCtl(0, "start") }, 4*time.Second)
		case "promote standby":
			time.Sleep(time.Second)
			// The old primary stops cleanly, which sends the standby all
			// of its WAL first; then the standby is promoted.
			e.pgCtl(0, "stop", "-m", "fast")
			promoted := time.Now()
			e.pg("pg_ctl", "promote", "-D", e.pgDirs[1], "-w", "-s")
			for time.Since(promoted) < 30*time.Second {
				r := haCall("POST", e.lb+"/v1/api-keys", admin, map[string]any{"name": "after-failover", "scopes": []string{"keys:read"}})
				if r.status == 201 {
					ackMu.Lock()
					ackKeys = append(ackKeys, r.body["id"].(string))
					ackMu.Unlock()
					p.failover = time.Since(promoted)
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if p.failover == 0 {
				t.Error("no write succeeded within 30s of promoting the standby")
			}
			time.Sleep(4 * time.Second)
		}
	}
	close(stop)
	wg.Wait()

	// No acknowledged write lost, none half done: every acknowledged key
	// and credential is on the promoted server, and every key there has
	// its key_state_log row (they commit together).
	db, err := sqlx.Open("postgres", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", e.pgPorts[1]))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var lost, halfDone, credsLost int
	if err := db.Get(&lost, `SELECT count(*) FROM unnest($1::uuid[]) AS a(id) WHERE NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.id = a.id)`, pqArray(ackKeys)); err != nil {
		t.Fatal(err)
	}
	if err := db.Get(&credsLost, `SELECT count(*) FROM unnest($1::uuid[]) AS a(id) WHERE NOT EXISTS (SELECT 1 FROM credentials c WHERE c.id = a.id)`, pqArray(ackCreds)); err != nil {
		t.Fatal(err)
	}
	if err := db.Get(&halfDone, `SELECT count(*) FROM api_keys k WHERE NOT EXISTS (
		SELECT 1 FROM key_state_log l WHERE l.payload = 'new:' || encode(k.key_hash, 'hex'))`); err != nil {
		t.Fatal(err)
	}
	lost += credsLost

	// "accepted" is when the last check an instance accepted was sent
	// (the key was accepted at that time or later); "refused" is when its
	// first refusal came back (propagation took at most that).
	t.Logf("%-18s %8s %9s %8s %9s %21s %21s %6s", "fault", "LB reqs", "LB non2xx", "writes", "write 503",
		"accepted p99/max", "refused p99/max", "checks")
	for _, p := range append([]*phaseStats{warm}, phases...) {
		p.mu.Lock()
		a99, amax := p99Max(p.acceptedAfter)
		r99, rmax := p99Max(p.refusedBy)
		n := len(p.refusedBy)
		p.mu.Unlock()
		ms := func(a, b time.Duration) string {
			return fmt.Sprintf("%s/%s", a.Round(time.Millisecond), b.Round(time.Millisecond))
		}
		t.Logf("%-18s %8d %9d %8d %9d %21s %21s %6d", p.name, p.reads.Load(), p.readsBad.Load(), p.writes.Load(), p.writes503.Load(),
			ms(a99, amax), ms(r99, rmax), n)
		if amax > time.Second {
			t.Errorf("%s: a revoked key was accepted by a check sent %s after the revocation was acknowledged (bound 1s): %s",
				p.name, amax, strings.Join(p.late, "; "))
		}
		if (p.redisDown || p.vaultDown) && p.reads.Load() > 0 && float64(p.readsBad.Load()) > 0.01*float64(p.reads.Load()) {
			t.Errorf("%s: %d of %d key checks and proxied calls through the LB were not 2xx (want >= 99%% 2xx)", p.name, p.readsBad.Load(), p.reads.Load())
		}
		if p.writes5xx.Load() > 0 {
			t.Errorf("%s: %d writes answered a 5xx other than 503", p.name, p.writes5xx.Load())
		}
	}
	t.Logf("writes acknowledged: %d keys, %d credentials; lost %d; half done %d; failover (promotion to first acknowledged write) %s",
		len(ackKeys), len(ackCreds), lost, halfDone, phases[4].failover.Round(time.Millisecond))
	if lost != 0 || halfDone != 0 {
		t.Errorf("writes lost %d, half done %d (want 0, 0)", lost, halfDone)
	}
	if phases[2].writes503.Load() == 0 {
		t.Error("no write got 503 while transit was down (credential creates need it)")
	}
	if phases[3].writes503.Load() == 0 {
		t.Error("no write got 503 while PostgreSQL was down")
	}
	// No instance restarted: the two never killed run the same process,
	// and all three are ready again.
	for i := range e.instances {
		if p := e.instance(i); !p.alive() {
			t.Errorf("instance %d exited:\n%s", i+1, tail(p.out.String(), 20))
		}
		if r := haCall("GET", e.urls[i]+"/readyz", "", nil); r.status != 200 {
			t.Errorf("instance %d /readyz %d %v after the faults", i+1, r.status, r.body)
		}
	}
	t.Logf("total: %s", time.Since(started).Round(time.Millisecond))
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func pqArray(ids []string) any { return pq.StringArray(ids) }

// prepareTransit creates the transit keys `credvault serve` expects.
func prepareTransit(ctx context.Context, t *testing.T, addr, token string) {
	t.Helper()
	vc, err := vault.New(ctx, vault.Config{Addr: addr, Token: credvault.NewSecret(token), Mount: "transit", Key: "credvault"})
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	if err := vc.EnsureKey(ctx); err != nil {
		t.Fatal(err)
	}
	if err := vc.EnsureSigningKey(ctx, "credvault-jwt"); err != nil {
		t.Fatal(err)
	}
}

// haBootstrap creates the org with `credvault bootstrap` and returns its
// owner's key.
func haBootstrap(t *testing.T, e *haEnv) string {
	t.Helper()
	cmd := exec.Command(e.exe, "bootstrap", "--org", "ha", "--email", "ha@example.com")
	cmd.Env = []string{"DATABASE_URL=" + e.dbURL, "CREDVAULT_LOG_LEVEL=error"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("credvault bootstrap: %v", err)
	}
	var res map[string]string
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("bootstrap output %q: %v", out, err)
	}
	return res["api_key"]
}

func haMustKey(t *testing.T, base, admin string, body map[string]any) string {
	t.Helper()
	r := haCall("POST", base+"/v1/api-keys", admin, body)
	if r.status != 201 {
		t.Fatalf("create key: %d %v", r.status, r.body)
	}
	return r.body["key"].(string)
}

// waitLBReady waits until HAProxy has every instance up (a request to
// each answered through it is not observable, so: every instance's
// /readyz is 200 and two health-check intervals have passed).
func waitLBReady(t *testing.T, e *haEnv) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, u := range e.urls {
		for haCall("GET", u+"/readyz", "", nil).status != 200 {
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready within 30s", u)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	time.Sleep(2500 * time.Millisecond)
}

// haRevocationRound makes a key, has every live instance cache it, revokes
// it through the LB, then asks every live instance until it refuses the
// key; the time from the revocation's acknowledgement to each refusal is
// one latency of the current phase.
func haRevocationRound(t *testing.T, e *haEnv, admin string, i int, phase func() *phaseStats) {
	r := haCall("POST", e.lb+"/v1/api-keys", admin, map[string]any{"name": fmt.Sprintf("rev-%d", i), "scopes": []string{"keys:read"}})
	if r.status != 201 {
		time.Sleep(100 * time.Millisecond)
		return
	}
	id, key := r.body["id"].(string), r.body["key"].(string)
	var live []string
	for j, u := range e.urls {
		if p := e.instance(j); p == nil || !p.alive() {
			continue
		}
		if haCall("GET", u+"/v1/auth/check?scope=keys:read", key, nil).status == 200 {
			live = append(live, u)
		}
	}
	var rv haResp
	for attempt := 0; attempt < 100; attempt++ {
		if rv = haCall("POST", e.lb+"/v1/api-keys/"+id+"/revoke", admin, nil); rv.status == 200 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rv.status != 200 {
		return
	}
	acked := time.Now()
	p := phase()
	var wg sync.WaitGroup
	for _, u := range live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lastAccepted time.Duration // when the last check it accepted was sent
			for time.Since(acked) < 10*time.Second {
				sent := time.Since(acked)
				st := haCall("GET", u+"/v1/auth/check?scope=keys:read", key, nil).status
				if st == 200 && sent > time.Second {
					p.mu.Lock()
					p.late = append(p.late, fmt.Sprintf("%s accepted key %s at %s (acknowledged at %s)", u, id,
						acked.Add(sent).UTC().Format("15:04:05.000"), acked.UTC().Format("15:04:05.000")))
					p.mu.Unlock()
				}
				if st == 401 || st == 403 {
					p.addLatency(lastAccepted, time.Since(acked))
					return
				}
				if st == 200 {
					lastAccepted = sent
				}
				time.Sleep(10 * time.Millisecond)
			}
			// No refusal within 10 s (or the instance was killed meanwhile:
			// a failed request is not an acceptance).
			p.addLatency(lastAccepted, 10*time.Second)
		}()
	}
	wg.Wait()
}

// postgresBin is the directory of the newest installed PostgreSQL's
// programs (Debian's /usr/lib/postgresql/<version>/bin), or "".
func postgresBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if fileExists(filepath.Join(d, "initdb")) && fileExists(filepath.Join(d, "pg_basebackup")) {
			return d
		}
	}
	return ""
}

// postgresUser is who PostgreSQL runs as: this process's user, or as
// root (which PostgreSQL refuses) the postgres user.
func postgresUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root without a postgres user to run PostgreSQL as: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// lineBuffer collects a process's output for waitFor and failure reports.
type lineBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ready returns re's first group once p's output matches it; it fails the
// test at once if p exits first, and after 90 s.
func (p *haProc) ready(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		exited := !p.alive() // read before the output, so that a last line is seen
		if m := re.FindStringSubmatch(p.out.String()); m != nil {
			return m[1]
		}
		if exited {
			t.Fatalf("%s exited before printing %s:\n%s", p.name, re, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: timed out waiting for %s; output so far:\n%s", p.name, re, p.out.String())
	return ""
}
