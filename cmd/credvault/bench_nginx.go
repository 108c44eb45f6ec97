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

// nginxScenarios measures the gateway recipe under load: "nginx
// auth_request → credvault → upstream" (api/gateways/nginx, a key from the
// pool on every call) against the same nginx proxying the same upstream
// without auth. Skipped, with a line saying so, when nginx is not
// installed.
func (bn *bench) nginxScenarios(ctx context.Context) ([]scenarioResult, error) {
	if _, err := nginx.Binary(); err != nil {
		fmt.Fprintf(bn.out, "bench: skipping the nginx scenario: %v\n", err)
		return nil, nil
	}
	gw, err := nginx.FreeAddr()
	if err != nil {
		return nil, err
	}
	plain, err := nginx.FreeAddr()
	if err != nil {
		return nil, err
	}
	upstream := strings.TrimPrefix(bn.upstream, "http://")
	conf, err := gateways.NginxAuthRequest(gw, strings.TrimPrefix(bn.a.URL(), "http://"), upstream)
	if err != nil {
		return nil, err
	}
	conf.HTTP += nginxPlainProxy(plain, upstream)
	conf.Listen = append(conf.Listen, plain)
	p, err := nginx.Start(ctx, "", conf)
	if err != nil {
		return nil, err
	}
	defer p.Stop()
	if len(bn.pool) == 0 {
		return nil, errors.New("bench: no keys to send through nginx")
	}
	// The upstream answers 200 to ?direct=1 (nginx strips the client's
	// key, so no Authorization reaches it).
	baseSpec := newGet("http://" + plain + "/v1/balance?direct=1")
	specs := make([]reqSpec, len(bn.pool))
	for i, k := range bn.pool {
		specs[i] = newGet("http://"+gw+"/v1/balance?direct=1", "X-API-Key", k)
	}
	base, scen := bn.paired(ctx, "nginx auth_request → credvault → upstream, against nginx → upstream without auth",
		func(int) reqSpec { return baseSpec }, func(i int) reqSpec { return specs[i%len(specs)] }, wantStatus(200), wantStatus(200))
	if scen.failures > 0 {
		fmt.Fprintf(os.Stderr, "bench: nginx error log:\n%s\n", p.ErrorLog())
	}
	r := result("nginx-auth-request", scen, base.rps())
	r.Extra["baseline"] = "nginx proxying the same upstream without auth"
	return []scenarioResult{r}, nil
}

// nginxPlainProxy is the baseline server: the same upstream, kept alive,
// without auth_request.
func nginxPlainProxy(listen, upstream string) string {
	return fmt.Sprintf(`
upstream bench_plain_app {
    server %s;
    keepalive 64; # as the recipe
}
server {
    listen %s;
    location / {
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://bench_plain_app;
    }
}
`, upstream, listen)
}
