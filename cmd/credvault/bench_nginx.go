package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"credvault/api/gateways"
	"credvault/internal/bench"
	"credvault/internal/nginx"
)

// benchUpstreamSecret is the bench credential's value: the proxy scenario
// injects it from the vault, the nginx peer sends it as a static header.
const benchUpstreamSecret = "sk_bench_upstream_0123456789" // #nosec G101 -- a fake value the load test plants to check scrubbing, not a credential

// nginxPeers is the one nginx a bench run starts when nginx is installed
// (Debian nginx-light), with worker_processes auto as Debian ships it, on
// five loopback servers: the auth_request recipe of api/gateways/nginx in
// front of instance A and the upstream (gateway), the same upstream
// proxied without auth (plain), the same upstream proxied with a static
// Authorization header (static: what a gateway that only adds a fixed key
// does), `return 200` (ok: the least an HTTP server can answer), and the
// TLS upstream through proxy_pass https:// with session reuse and
// keepalive (tls).
type nginxPeers struct {
	proc                            *nginx.Process
	gateway, plain, static, ok, tls string
}

// startNginx starts the peers; without nginx it prints why and leaves
// bn.ngx nil, and the scenarios report no peer ratios.
func (bn *benchRun) startNginx(ctx context.Context) error {
	if _, err := nginx.Binary(); err != nil {
		fmt.Fprintf(bn.out, "bench: no nginx peers or nginx scenario: %v\n", err)
		return nil
	}
	var addrs [5]string
	for i := range addrs {
		a, err := nginx.FreeAddr()
		if err != nil {
			return err
		}
		addrs[i] = a
	}
	p := &nginxPeers{gateway: addrs[0], plain: addrs[1], static: addrs[2], ok: addrs[3], tls: addrs[4]}
	upstream := strings.TrimPrefix(bn.upstream, "http://")
	conf, err := gateways.NginxAuthRequest(p.gateway, strings.TrimPrefix(bn.a.URL(), "http://"), upstream)
	if err != nil {
		return err
	}
	conf.HTTP += nginxPeerServers(p, upstream) + nginxTLSPeer(p.tls, bn.up.HTTPS1, bn.ca.CAFile)
	conf.Listen = append(conf.Listen, p.plain, p.static, p.ok, p.tls)
	conf.Workers = -1
	if p.proc, err = nginx.Start(ctx, "", conf); err != nil {
		return err
	}
	bn.stops = append(bn.stops, p.proc.Stop)
	bn.ngx = p
	fmt.Fprintf(bn.out, "bench: nginx peers running (worker_processes auto)\n")
	return nil
}

// peerLeg is the load of a peer (a GET of the URL url gives), charged to
// nginx's master and workers, or nil without nginx.
func (bn *benchRun) peerLeg(name string, url func(*nginxPeers) string) *leg {
	if bn.ngx == nil {
		return nil
	}
	return &leg{name: name, reqs: []bench.Request{newGet(url(bn.ngx))}, want: 200, proc: bn.nginxProc()}
}

// nginxProc is nginx's master with its workers, as one process for CPU.
func (bn *benchRun) nginxProc() bench.Process {
	return bench.Process{PID: bn.ngx.proc.PID(), Children: true}
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
	base := &leg{name: "baseline", reqs: []bench.Request{newGet("http://" + bn.ngx.plain + "/v1/balance?direct=1")}, want: 200, proc: bn.nginxProc()}
	// The gateway leg twice over: once charged to nginx, once to
	// credvault (whose part of each call is the check).
	gw := &leg{reqs: withKeys("http://"+bn.ngx.gateway+"/v1/balance?direct=1", bn.pool), want: 200, proc: bn.nginxProc()}
	rs, err := bn.rounds(ctx, "nginx auth_request → credvault → upstream, against nginx → upstream without auth", base, gw)
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(bn.out, "bench: the same gateway load, charged to credvault")
	cv, err := bn.load(ctx, "nginx auth_request → credvault → upstream (credvault's CPU)", &leg{reqs: gw.reqs, want: 200, proc: self()})
	if err != nil {
		return nil, err
	}
	if rs[1].Failures > 0 {
		fmt.Fprintf(os.Stderr, "bench: nginx error log:\n%s\n", bn.ngx.proc.ErrorLog())
	}
	r := result("nginx-auth-request", rs[1], rs[0].RPS())
	r.Extra["baseline"] = "nginx-proxy-no-auth"
	withBaseline(&r, rs[0])
	r.Extra["credvault_cpu_us_per_req"] = round1(cv.CPUPerRequest())
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

// nginxTLSPeer is the peer of the TLS scenarios: the TLS upstream (its
// HTTP/1.1 listener; nginx proxies over HTTP/1.1) through proxy_pass
// https://, verifying its certificate against the bench's CA, with
// upstream keepalive and TLS session reuse, adding the static key.
func nginxTLSPeer(listen, upstream, caFile string) string {
	return fmt.Sprintf(`
upstream bench_tls_app {
    server %[2]s;
    keepalive 64;
}
server {
    listen %[1]s;
    location / {
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Authorization "Bearer %[4]s";
        proxy_pass https://bench_tls_app;
        proxy_ssl_session_reuse on;
        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate %[3]s;
        proxy_ssl_name localhost;
        proxy_ssl_server_name on;
    }
}
`, listen, upstream, caFile, benchUpstreamSecret)
}
