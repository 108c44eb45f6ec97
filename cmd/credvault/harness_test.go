package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"credvault/internal/credvault"
	"credvault/internal/postgres/pgtest"
	"credvault/vault/devtransit"
	"credvault/vault/vaulttest"
)

// instance is one credvault service started in-process, the way `serve`
// wires it, on a loopback port.
type instance struct {
	s    *service
	url  string
	logs *lineBuffer
	// stop shuts the instance down as SIGTERM does and waits for it (only
	// for instances of startWith; again: a no-op).
	stop func()
}

// cluster is a database and a transit key shared by the instances of a
// test, like several replicas of one deployment.
type cluster struct {
	t     testing.TB
	env   map[string]string
	dbURL string
	vault *vaulttest.Target

	mu        sync.Mutex
	responses []string // every response body the harness saw
}

func newCluster(t testing.TB, extra map[string]string) *cluster {
	t.Helper()
	return newClusterDev(t, extra, devtransit.Options{})
}

// newClusterDev is newCluster with options for the in-process dev transit
// server (ignored against a real Vault).
func newClusterDev(t testing.TB, extra map[string]string, opts devtransit.Options) *cluster {
	t.Helper()
	_, dbURL := pgtest.New(t)
	tg := vaulttest.StartDev(t, opts)
	tg.CreateKey(t, "credvault", true)
	tg.CreateSigningKey(t, "credvault-jwt")
	env := map[string]string{
		"CREDVAULT_ADDR": "127.0.0.1:0", "DATABASE_URL": dbURL,
		"VAULT_ADDR": tg.Addr, "VAULT_TOKEN": tg.Token, "CREDVAULT_TRANSIT_MOUNT": tg.Mount,
		"CREDVAULT_LOG_LEVEL": "debug",
	}
	for k, v := range extra {
		env[k] = v
	}
	return &cluster{t: t, env: env, dbURL: dbURL, vault: tg}
}

// start runs one more instance; it stops when the test ends.
func (cl *cluster) start() *instance {
	cl.t.Helper()
	return cl.startWith(startOptions{})
}

// startWith is start with startOptions (such as a listener dev opened).
func (cl *cluster) startWith(opts startOptions) *instance {
	t := cl.t
	t.Helper()
	cfg, err := loadConfig(envOf(cl.env))
	if err != nil {
		t.Fatal(err)
	}
	logs := &lineBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, cancel := context.WithCancel(context.Background())
	s, err := startService(ctx, cfg, log, opts)
	if err != nil {
		cancel()
		t.Fatalf("startService on %s: %v", cfg.Addr, err)
	}
	done := make(chan error, 1)
	go func() { done <- s.serve(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	inst := &instance{s: s, url: s.URL(), logs: logs, stop: stop}
	waitReady(t, inst)
	return inst
}

// waitReady waits until the instance's invalidation listener has loaded
// the known-key set (it connects asynchronously).
func waitReady(t testing.TB, inst *instance) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !inst.s.verifier.KnownReady() {
		if time.Now().After(deadline) {
			t.Fatal("verifier never loaded its known-key set")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// bootstrap creates an org with an owner and returns the owner's key.
func (cl *cluster) bootstrap(inst *instance, org string) (*credvault.BootstrapResult, string) {
	cl.t.Helper()
	res, err := credvault.Bootstrap(context.Background(), inst.s.store, inst.s.minter, org, "owner@"+org+".test")
	if err != nil {
		cl.t.Fatal(err)
	}
	return res, res.APIKey.Reveal()
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

func (r response) errCode(t testing.TB) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func (r response) errMessage(t testing.TB) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	msg, _ := e["message"].(string)
	return msg
}

// call sends a request with headers (a key is given as X-API-Key unless
// headers name the header) and records the response body.
func (cl *cluster) call(method, url string, headers map[string]string, body any) response {
	cl.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			cl.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		cl.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		cl.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	cl.mu.Lock()
	cl.responses = append(cl.responses, string(b))
	cl.mu.Unlock()
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// noRedirects shows the test what credvault answered, 3xx included, and
// never follows a Location on its own.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// as is shorthand for calling with a key in X-API-Key.
func (cl *cluster) as(key, method, url string, body any) response {
	cl.t.Helper()
	return cl.call(method, url, map[string]string{"X-API-Key": key}, body)
}

func (cl *cluster) allResponses() string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return strings.Join(cl.responses, "\n")
}

// createKey creates a key through the API and returns its id and key.
func (cl *cluster) createKey(inst *instance, creator string, body map[string]any) (string, string) {
	cl.t.Helper()
	r := cl.as(creator, "POST", inst.url+"/v1/api-keys", body)
	if r.status != 201 {
		cl.t.Fatalf("create key: %d %s", r.status, r.body)
	}
	m := r.json(cl.t)
	return m["id"].(string), m["key"].(string)
}
