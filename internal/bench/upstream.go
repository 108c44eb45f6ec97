package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"time"
)

// UpstreamCommand is the (hidden) credvault subcommand of the upstream
// process: `credvault bench-upstream [--cert F --key F]`.
const UpstreamCommand = "bench-upstream"

// UpstreamBody is what the upstream answers: the size and shape of
// Stripe's balance endpoint.
const UpstreamBody = `{"object":"balance","available":[{"amount":1000,"currency":"usd"}],"livemode":false}`

// UpstreamAddrs are the loopback addresses the upstream process listens
// on: plain HTTP, and with a certificate TLS offering only HTTP/1.1 and TLS
// offering HTTP/2 (ALPN h2, then http/1.1).
type UpstreamAddrs struct {
	HTTP   string `json:"http"`
	HTTPS1 string `json:"https_h1,omitempty"`
	HTTPS2 string `json:"https_h2,omitempty"`
}

// upstreamHandler answers 200 with UpstreamBody to a call that carries a
// Bearer credential (the proxy and the nginx static-header peer) or
// ?direct=1 (direct calls, nginx without auth), else 401.
func upstreamHandler(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") && r.URL.Query().Get("direct") == "" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, UpstreamBody)
}

// ServeUpstream is `credvault bench-upstream`: it listens, writes its
// UpstreamAddrs as one JSON line to stdout, and serves until stdin
// reaches its end (the parent exiting closes it) or ctx ends.
func ServeUpstream(ctx context.Context, certFile, keyFile string, stdin io.Reader, stdout io.Writer) error {
	var addrs UpstreamAddrs
	var servers []*http.Server
	listen := func(tlsCfg *tls.Config) (string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		srv := &http.Server{Handler: http.HandlerFunc(upstreamHandler), ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsCfg}
		servers = append(servers, srv)
		if tlsCfg == nil {
			go func() { _ = srv.Serve(ln) }()
		} else {
			go func() { _ = srv.ServeTLS(ln, "", "") }()
		}
		return ln.Addr().String(), nil
	}
	defer func() {
		for _, s := range servers {
			_ = s.Close()
		}
	}()
	var err error
	if addrs.HTTP, err = listen(nil); err != nil {
		return err
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return fmt.Errorf("bench-upstream: %w", err)
		}
		if addrs.HTTPS1, err = listen(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}); err != nil {
			return err
		}
		if addrs.HTTPS2, err = listen(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}); err != nil {
			return err
		}
	}
	if err := json.NewEncoder(stdout).Encode(addrs); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, stdin); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// Upstream is a running upstream process.
type Upstream struct {
	UpstreamAddrs
	PID   int
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// StartUpstream runs `exe bench-upstream` (with ca's server certificate
// when ca is not nil) and waits for its addresses (at most 10 s).
func StartUpstream(ctx context.Context, exe string, ca *TestCA) (*Upstream, error) {
	args := []string{UpstreamCommand}
	if ca != nil {
		args = append(args, "--cert", ca.CertFile, "--key", ca.KeyFile)
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start the upstream process: %w", err)
	}
	u := &Upstream{PID: cmd.Process.Pid, cmd: cmd, stdin: stdin}
	line := make(chan error, 1)
	go func() {
		l, err := bufio.NewReader(stdout).ReadBytes('\n')
		if err == nil {
			err = json.Unmarshal(l, &u.UpstreamAddrs)
		}
		line <- err
	}()
	select {
	case err = <-line:
	case <-time.After(10 * time.Second):
		err = errors.New("no address after 10s")
	}
	if err != nil {
		u.Stop()
		return nil, fmt.Errorf("bench: upstream process: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return u, nil
}

// Stop closes the process's stdin, which ends it, and waits for it (killed
// after 5 s).
func (u *Upstream) Stop() {
	_ = u.stdin.Close()
	done := make(chan struct{})
	go func() { _ = u.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = u.cmd.Process.Kill()
		<-done
	}
}
