// Package gateways holds credvault's forward-auth recipes for nginx
// (auth_request), Caddy (forward_auth) and Traefik (forwardAuth), embedded
// so that the tests and `credvault bench` run the very files people copy.
//
// Each recipe names three addresses, which Render replaces: the gateway's
// listener (Gateway), credvault (Credvault) and the application behind the
// gateway (App).
package gateways

import (
	"embed"
	"fmt"
	"strings"

	"credvault/internal/nginx"
)

//go:embed nginx/*.conf caddy/Caddyfile traefik/*.yml
var files embed.FS

// The addresses the recipes are written with.
const (
	Gateway   = "127.0.0.1:8000"
	Credvault = "127.0.0.1:8080"
	App       = "127.0.0.1:9000"
)

// Render returns the recipe file name (e.g. "nginx/credvault.conf") with
// its addresses replaced: gateway, credvault and app are host:port. It
// fails when the file does not exist, or names none of the three addresses
// it should (so that a recipe and its tests cannot drift apart).
func Render(name, gateway, credvault, app string) (string, error) {
	b, err := files.ReadFile(name)
	if err != nil {
		return "", err
	}
	s := string(b)
	for from, to := range map[string]string{Gateway: gateway, Credvault: credvault, App: app} {
		if to == "" {
			continue
		}
		if !strings.Contains(s, from) {
			return "", fmt.Errorf("recipe %s no longer names %s", name, from)
		}
		s = strings.ReplaceAll(s, from, to)
	}
	return s, nil
}

// NginxAuthRequest is the nginx recipe (nginx/credvault.conf and the
// file it includes) as a configuration for nginx.Start, listening on
// gateway in front of credvault and app (host:port each).
func NginxAuthRequest(gateway, credvault, app string) (nginx.Config, error) {
	main, err := Render("nginx/credvault.conf", gateway, credvault, app)
	if err != nil {
		return nginx.Config{}, err
	}
	identity, err := Render("nginx/credvault_identity.conf", "", "", "")
	if err != nil {
		return nginx.Config{}, err
	}
	return nginx.Config{HTTP: main, Files: map[string]string{"credvault_identity.conf": identity}, Listen: []string{gateway}}, nil
}
