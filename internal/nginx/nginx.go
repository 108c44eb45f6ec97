// Package nginx runs a real nginx as a child process of credvault's tests
// and load command: foreground (daemon off), with its own temporary prefix,
// pid file, error log and temp paths, listening only where its
// configuration says (loopback, free ports). It never touches the system's
// nginx configuration or service.
package nginx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ErrNotInstalled is returned by Start when no nginx binary is found
// (Debian: `apt-get install nginx-light`).
var ErrNotInstalled = errors.New("nginx is not installed (Debian: apt-get install nginx-light)")

// Binary returns the path of the nginx binary: $CREDVAULT_NGINX when set,
// else nginx on PATH, else /usr/sbin/nginx (root's PATH has it, a user's
// often does not). It returns ErrNotInstalled when none exists.
func Binary() (string, error) {
	if p := os.Getenv("CREDVAULT_NGINX"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", ErrNotInstalled
}

// Process is one running nginx.
type Process struct {
	// Prefix is the temporary directory nginx runs in (its -p prefix).
	Prefix string
	cmd    *exec.Cmd
	done   chan struct{}
	waitMu sync.Mutex
	err    error
	stderr bytes.Buffer
}

// Config is what one nginx runs.
type Config struct {
	// HTTP is the contents of the `http { }` context: upstreams and
	// servers. Relative include paths resolve in the prefix.
	HTTP string
	// Files are written into the prefix before start (name -> contents),
	// for the files HTTP includes.
	Files map[string]string
	// Listen are the addresses Start waits for before it returns.
	Listen []string
	// Workers is nginx's worker_processes: 0 means 1 (the tests' setting);
	// negative means "auto", one per CPU (Debian's default, the setting a
	// throughput comparison uses).
	Workers int
}

// Start writes cfg into a fresh prefix under dir (os.TempDir() when
// empty), then runs nginx in the foreground and waits until every address
// in cfg.Listen accepts connections (at most 10 s). Stop it with Stop; ctx
// ending also kills it. Errors carry nginx's own error log.
func Start(ctx context.Context, dir string, cfg Config) (*Process, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	prefix, err := os.MkdirTemp(dir, "nginx-")
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(prefix, d), 0o700); err != nil {
			return nil, err
		}
	}
	for name, body := range cfg.Files {
		if err := os.WriteFile(filepath.Join(prefix, filepath.Base(name)), []byte(body), 0o600); err != nil {
			return nil, err
		}
	}
	workers := "1"
	switch {
	case cfg.Workers < 0:
		workers = "auto"
	case cfg.Workers > 0:
		workers = fmt.Sprint(cfg.Workers)
	}
	conf := fmt.Sprintf(`worker_processes %[3]s;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
%[2]s
}
`, prefix, cfg.HTTP, workers)
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	p := &Process{Prefix: prefix, done: make(chan struct{})}
	// When run as root, nginx's workers switch to "nobody", which cannot
	// read a private temp prefix; keep them as the current user.
	globals := "daemon off; master_process on;"
	if os.Geteuid() == 0 {
		globals += " user root;"
	}
	p.cmd = exec.CommandContext(ctx, bin, "-p", prefix, "-c", confPath, "-e", filepath.Join(prefix, "logs", "error.log"), "-g", globals) // #nosec G204 -- the binary path is found by credvault (PATH or the PostgreSQL bin dir), arguments are built here, not user input
	p.cmd.Stdout = &p.stderr
	p.cmd.Stderr = &p.stderr
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start nginx: %w", err)
	}
	go func() {
		err := p.cmd.Wait()
		p.waitMu.Lock()
		p.err = err
		p.waitMu.Unlock()
		close(p.done)
	}()
	for _, addr := range cfg.Listen {
		if err := p.waitListening(addr, 10*time.Second); err != nil {
			p.Stop()
			return nil, err
		}
	}
	return p, nil
}

func (p *Process) waitListening(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("nginx exited: %s%s", strings.TrimSpace(p.stderr.String()), p.errorLogTail())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close() // #nosec G104 -- closing on a path that has its result already (or an error being returned); nothing to add
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx does not listen on %s after %s%s", addr, limit, p.errorLogTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PID is the process id of nginx's master process (its workers are its
// children), for reading its CPU time from /proc.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// ErrorLog returns nginx's error log so far (for test failure messages).
func (p *Process) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(p.Prefix, "logs", "error.log"))
	return string(b)
}

func (p *Process) errorLogTail() string {
	if l := strings.TrimSpace(p.ErrorLog()); l != "" {
		return "\nerror.log:\n" + l
	}
	return ""
}

// Stop asks nginx to quit (SIGINT: fast shutdown), waits for it at most
// 5 s, kills it after that, and removes its prefix.
func (p *Process) Stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	os.RemoveAll(p.Prefix) // #nosec G104 -- best-effort cleanup of a scratch directory
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago: nginx cannot listen on :0 and report the port.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
