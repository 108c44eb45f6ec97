// Package devtransit is a Vault-compatible transit engine served over HTTP,
// for credvault's development mode and tests.
//
// It answers the subset of Vault's API that credvault's production client
// uses (transit keys, encrypt, decrypt, rewrap, datakey, sign and verify
// with ed25519 and ecdsa-p256 keys, sys/health,
// sys/mounts, token lookup and renewal, AppRole login) with the same paths,
// JSON shapes, status codes and error texts as Vault 1.21 / OpenBao 2.x, so
// the client's tests can run against it and against a real server alike.
//
// It is for development only: keys are kept as raw material in a plain JSON
// file, there are no policies beyond "root or not", and no audit log. It must
// never hold production secrets.
package devtransit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Server.
type Options struct {
	// Token is the root token; required.
	Token string
	// DataDir is where keys persist (DataDir/keys.json, mode 0600, written
	// atomically). Empty keeps everything in memory.
	DataDir string
	// Logger receives operational logs; nil discards them. Request bodies,
	// plaintexts, ciphertexts and tokens are never logged.
	Logger *slog.Logger
	// AppRole, when set, enables auth/approle/login with one role.
	AppRole *AppRole
	// MaxRequestJSONStrings caps the JSON strings (object keys and string
	// values) of one request body, like OpenBao's listener setting
	// max_request_json_strings: a body with more answers 400 "refused JSON
	// input due to high complexity: exceeded maximum number of strings".
	// 0 means OpenBao's default, DefaultMaxRequestJSONStrings; negative
	// means no limit.
	MaxRequestJSONStrings int
}

// DefaultMaxRequestJSONStrings is OpenBao's default max_request_json_strings
// (since 2.4.1). The dev transit server enforces it unless told otherwise,
// so the test suite meets the limit a real server applies.
const DefaultMaxRequestJSONStrings = 1000

// AppRole is the single AppRole role the server accepts at
// auth/approle/login. A zero TokenTTL or TokenMaxTTL means Vault's system
// default of 768h.
type AppRole struct {
	RoleID, SecretID      string
	TokenTTL, TokenMaxTTL time.Duration
}

// Server is an in-process, Vault-compatible transit server. It is safe for
// concurrent use.
type Server struct {
	log       *slog.Logger
	root      *token
	dataDir   string
	approle   *AppRole
	clusterID string
	// maxJSONStrings is the body's string budget; negative = unlimited.
	maxJSONStrings int
	sealed         atomic.Bool

	// now and persistHook are replaced by tests (clock, storage failure).
	now         func() time.Time
	persistHook func() error

	mu     sync.RWMutex // guards mounts, each mount's keys and config
	mounts map[string]*mount

	tokMu  sync.Mutex
	tokens map[string]*token
}

// New builds a server: it loads DataDir/keys.json if present (a corrupt file
// is an error, never a silent reset), enables transit at "transit/" if it is
// not mounted, and logs that the server is for development only.
func New(opts Options) (*Server, error) {
	if opts.Token == "" {
		return nil, errors.New("devtransit: Options.Token (the root token) is required")
	}
	if opts.MaxRequestJSONStrings == 0 {
		opts.MaxRequestJSONStrings = DefaultMaxRequestJSONStrings
	}
	if ar := opts.AppRole; ar != nil && (ar.RoleID == "" || ar.SecretID == "") {
		return nil, errors.New("devtransit: AppRole needs both RoleID and SecretID")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		log:            log,
		dataDir:        opts.DataDir,
		approle:        opts.AppRole,
		clusterID:      newUUID(),
		maxJSONStrings: opts.MaxRequestJSONStrings,
		now:            time.Now,
		mounts:         map[string]*mount{},
		tokens:         map[string]*token{},
	}
	s.root = &token{id: opts.Token, accessor: randomID(24), root: true, policies: []string{"root"}, issued: s.now()}
	if s.dataDir != "" {
		if err := os.MkdirAll(s.dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("devtransit: creating data dir: %w", err)
		}
		mounts, err := loadState(s.dataDir)
		if err != nil {
			return nil, err
		}
		s.mounts = mounts
	}
	if _, ok := s.mounts["transit/"]; !ok {
		s.mounts["transit/"] = newMount("transit/", "")
		if err := s.persist(); err != nil {
			return nil, err
		}
	}
	log.Warn("devtransit: development-only Vault transit server; it stores raw key material in plain files and must never hold production secrets",
		"data_dir", s.dataDir, "persistent", s.dataDir != "")
	return s, nil
}

// Handler returns the HTTP handler serving the /v1 API.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Serve serves HTTP on ln until ctx is done, then shuts down gracefully.
// It returns nil on a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("devtransit: serving", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("devtransit: serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	<-errc
	if err != nil {
		return fmt.Errorf("devtransit: shutdown: %w", err)
	}
	return nil
}

// Seal makes the server answer like a sealed Vault: 503 "Vault is sealed"
// to every call and sealed:true from sys/health. Test hook.
func (s *Server) Seal() { s.sealed.Store(true) }

// Unseal reverses Seal. Test hook.
func (s *Server) Unseal() { s.sealed.Store(false) }

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	s.route(rec, r)
	// Only method, path and status: never bodies, queries or headers.
	s.log.Debug("devtransit: request", "method", r.Method, "path", r.URL.Path,
		"status", rec.status, "duration", time.Since(start))
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	p, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		writeError(w, errNotFoundNoBody)
		return
	}
	switch p {
	case "sys/health":
		s.handleHealth(w, r)
		return
	case "sys/seal-status":
		s.handleSealStatus(w, r)
		return
	}
	if s.sealed.Load() {
		writeError(w, errSealed)
		return
	}
	req := &request{path: p}
	switch r.Method {
	case http.MethodGet:
		req.op = "read"
		if l := r.URL.Query().Get("list"); l == "true" || l == "1" {
			req.op = "list"
		}
		req.data = queryData(r)
	case "LIST":
		req.op = "list"
		req.data = queryData(r)
	case http.MethodPost, http.MethodPut:
		req.op = "update"
		data, err := readBody(w, r, s.maxJSONStrings)
		if err != nil {
			writeError(w, err)
			return
		}
		req.data = data
	case http.MethodDelete:
		req.op = "delete"
		req.data = queryData(r)
	default:
		writeError(w, &apiError{status: http.StatusMethodNotAllowed})
		return
	}
	var resp *response
	var err error
	if p == "auth/approle/login" && s.approle != nil {
		req.mountType = "approle"
		resp, err = s.handleLogin(req)
	} else {
		req.tok, err = s.authenticate(r)
		if err == nil {
			resp, err = s.dispatch(req)
		}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if resp == nil {
		if req.op == "read" || req.op == "list" {
			writeError(w, errNotFoundNoBody)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeResponse(w, req, resp)
}

func (s *Server) dispatch(req *request) (*response, error) {
	p := req.path
	if req.op == "update" && strings.HasSuffix(p, "/") {
		return nil, userError("cannot write to a path ending in '/'")
	}
	switch {
	case p == "sys/mounts" || p == "sys/mounts/" || strings.HasPrefix(p, "sys/mounts/"):
		req.mountType = "system"
		if !req.tok.root {
			return nil, errDenied
		}
		return s.handleMounts(req)
	case p == "auth/token/lookup-self":
		req.mountType = "token"
		return s.handleLookupSelf(req)
	case p == "auth/token/renew-self":
		req.mountType = "token"
		return s.handleRenewSelf(req)
	}
	if m := s.findMount(p); m != nil {
		req.mountType = "transit"
		rel := strings.TrimPrefix(p, strings.TrimSuffix(m.path, "/"))
		req.path = strings.TrimPrefix(rel, "/")
		return s.handleTransit(m, req)
	}
	return nil, errStatus(http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", p))
}

// findMount returns the transit mount holding path p (longest prefix).
func (s *Server) findMount(p string) *mount {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best *mount
	for mp, m := range s.mounts {
		if strings.HasPrefix(p+"/", mp) && (best == nil || len(mp) > len(best.path)) {
			best = m
		}
	}
	return best
}
