package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"credvault/api/gateways"
	"credvault/internal/nginx"
)

// benchUpstreamSecret is the bench credential's value: the proxy scenario
// injects it from the vault, the nginx peer sends it as a static header.
const benchUpstreamSecret = "sk_bench_upstream_0123456789"

// nginxPeers is the one nginx a bench run starts when nginx is installed
// (Debian nginx-light), with worker_processes auto as Debian ships it, on
// four loopback servers: the auth_request recipe of api/gateways/nginx in
// front of instance A and the upstream (gateway), the same upstream
// proxied without auth (plain), the same upstream proxied with a static
// Authorization header (static: what a gateway that only adds a fixed key
// does), and `return 200` (ok: the least an HTTP server can answer).
type nginxPeers struct {
	proc                       *nginx.Process
	gateway, plain, static, ok string
}

// startNginx starts the peers; without nginx it prints why and leaves
// bn.ngx nil, and the scenarios report no peer ratios.
func (bn *benchRun) startNginx(ctx context.Context) error {
	if _, err := nginx.Binary(); err != nil {
		fmt.Fprintf(bn.out, "bench: no nginx peers or nginx scenario: %v\n", err)
		return nil
	}
	var addrs [4]string
	for i := range addrs {
		a, err := nginx.FreeAddr()
		if err != nil {
			return err
		}
		addrs[i] = a
	}
	p := &nginxPeers{gateway: addrs[0], plain: addrs[1], static: addrs[2], ok: addrs[3]}
	upstream := strings.TrimPrefix(bn.upstream, "http://")
	conf, err := gateways.NginxAuthRequest(p.gateway, strings.TrimPrefix(bn.a.URL(), "http://"), upstream)
	if err != nil {
		return err
	}
	conf.HTTP += nginxPeerServers(p, upstream)
	conf.Listen = append(conf.Listen, p.plain, p.static, p.ok)
	conf.Workers = -1
	if p.proc, err = nginx.Start(ctx, "", conf); err != nil {
		return err
	}
	bn.stops = append(bn.stops, p.proc.Stop)
	bn.ngx = p
	fmt.Fprintf(bn.out, "bench: nginx peers running (worker_processes auto)\n")
	return nil
}

// peerLeg is the load of a peer, or nil without nginx.
func (bn *benchRun) peerLeg(name string, spec reqSpec) *leg {
	if bn.ngx == nil {
		return nil
	}
	return &leg{name: name, next: func(int) reqSpec { return spec }, ok: wantStatus(200)}
}

// withPeer adds a peer's figures to r: its name, throughput, p99 and r's
// throughput as a share of it.
func withPeer(r *scenarioResult, name string, peer loadResult) {
	r.Extra["peer"] = name
	r.Extra["peer_rps"] = int(peer.rps())
	r.Extra["peer_p99_ms"] = percentile(peer.latency, 99)
	if peer.rps() > 0 {
		r.Extra["peer_ratio"] = fmt.Sprintf("%.2f", r.RPS/peer.rps())
	}
}

// nginxScenarios measures the gateway recipe under load: "nginx
// auth_request → credvault → upstream" (a key from the pool on every
// call) against the same nginx proxying the same upstream without auth.
// Skipped when nginx is not installed.
func (bn *benchRun) nginxScenarios(ctx context.Context) ([]scenarioResult, error) {
	if bn.ngx == nil {
		return nil, nil
	}
	if len(bn.pool) == 0 {
		return nil, errors.New("bench: no keys to send through nginx")
	}
	// The upstream answers 200 to ?direct=1 (nginx strips the client's
	// key, so no Authorization reaches it).
	baseSpec := newGet("http://" + bn.ngx.plain + "/v1/balance?direct=1")
	specs := make([]reqSpec, len(bn.pool))
	for i, k := range bn.pool {
		specs[i] = newGet("http://"+bn.ngx.gateway+"/v1/balance?direct=1", "X-API-Key", k)
	}
	base, scen := bn.paired(ctx, "nginx auth_request → credvault → upstream, against nginx → upstream without auth",
		func(int) reqSpec { return baseSpec }, func(i int) reqSpec { return specs[i%len(specs)] }, wantStatus(200), wantStatus(200))
	if scen.failures > 0 {
		fmt.Fprintf(os.Stderr, "bench: nginx error log:\n%s\n", bn.ngx.proc.ErrorLog())
	}
	r := result("nginx-auth-request", scen, base.rps())
	r.Extra["baseline"] = "nginx-proxy-no-auth"
	r.Extra["baseline_p99_ms"] = percentile(base.latency, 99)
	return []scenarioResult{r}, nil
}

// nginxPeerServers are the peers besides the gateway: the upstream kept
// alive as the recipe keeps it, proxied without auth and with a static
// key, and `return 200`.
func nginxPeerServers(p *nginxPeers, upstream string) string {
	return fmt.Sprintf(`
upstream bench_plain_app {
    server %[1]s;
    keepalive 64; # as the recipe
}
server {
    listen %[2]s;
    location / {
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://bench_plain_app;
    }
}
server {
    listen %[3]s;
    location / {
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Authorization "Bearer %[5]s";
        proxy_pass http://bench_plain_app;
    }
}
server {
    listen %[4]s;
    location / {
        return 200;
    }
}
`, upstream, p.plain, p.static, p.ok, benchUpstreamSecret)
}
