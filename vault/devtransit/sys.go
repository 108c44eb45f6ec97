package devtransit

import (
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// serverVersion is what sys/health and sys/seal-status report: the OpenBao
// release devtransit was compared with, side by side with its bao CLI,
// tagged (semver build metadata) as this server.
const serverVersion = "2.6.2+devtransit"

const clusterName = "devtransit"

// healthBody is Vault's sys/health answer.
type healthBody struct {
	Initialized                bool   `json:"initialized"`
	Sealed                     bool   `json:"sealed"`
	Standby                    bool   `json:"standby"`
	PerformanceStandby         bool   `json:"performance_standby"`
	ReplicationPerformanceMode string `json:"replication_performance_mode"`
	ReplicationDRMode          string `json:"replication_dr_mode"`
	ServerTimeUTC              int64  `json:"server_time_utc"`
	Version                    string `json:"version"`
	Enterprise                 bool   `json:"enterprise"`
	ClusterName                string `json:"cluster_name,omitempty"`
	ClusterID                  string `json:"cluster_id,omitempty"`
	EchoDurationMillis         int64  `json:"echo_duration_ms"`
	ClockSkewMillis            int64  `json:"clock_skew_ms"`
	ReplicationCanaryAgeMillis int64  `json:"replication_primary_canary_age_ms"`
}

// handleHealth answers GET and HEAD sys/health without a token, honouring
// Vault's status-code query parameters.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, &apiError{status: http.StatusMethodNotAllowed})
		return
	}
	q := r.URL.Query()
	for _, b := range []string{"standbyok", "perfstandbyok"} {
		if v, ok := q[b]; ok {
			if _, err := strconv.ParseBool(v[0]); err != nil && v[0] != "" {
				writeError(w, &apiError{status: http.StatusBadRequest})
				return
			}
		}
	}
	codes := map[string]int{"uninitcode": 501, "sealedcode": 503, "standbycode": 429, "activecode": 200,
		"drsecondarycode": 472, "performancestandbycode": 473, "haunhealthycode": 474, "removedcode": 530}
	for name := range codes {
		if v, ok := q[name]; ok {
			n, err := strconv.Atoi(v[0])
			if err != nil {
				writeError(w, &apiError{status: http.StatusBadRequest})
				return
			}
			codes[name] = n
		}
	}
	sealed := s.sealed.Load()
	body := healthBody{
		Initialized: true, Sealed: sealed,
		ReplicationPerformanceMode: "disabled", ReplicationDRMode: "disabled",
		ServerTimeUTC: s.now().UTC().Unix(), Version: serverVersion,
	}
	code := codes["activecode"]
	if sealed {
		code = codes["sealedcode"]
	} else {
		body.ClusterName, body.ClusterID = clusterName, s.clusterID
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		return
	}
	writeJSON(w, code, body)
}

// sealStatusBody is OpenBao's GET sys/seal-status answer (api/sys_seal.go,
// SealStatusResponse, in openbao/openbao; handled without a token by
// http/sys_seal.go): devtransit is a one-share Shamir seal that is never
// half-unsealed. commit_date and build_date are empty: devtransit has no
// release of OpenBao's to date.
type sealStatusBody struct {
	Type         string `json:"type"`
	Initialized  bool   `json:"initialized"`
	Sealed       bool   `json:"sealed"`
	T            int    `json:"t"`
	N            int    `json:"n"`
	Progress     int    `json:"progress"`
	Nonce        string `json:"nonce"`
	Version      string `json:"version"`
	CommitDate   string `json:"commit_date"`
	BuildDate    string `json:"build_date"`
	Migration    bool   `json:"migration"`
	ClusterName  string `json:"cluster_name,omitempty"`
	ClusterID    string `json:"cluster_id,omitempty"`
	RecoverySeal bool   `json:"recovery_seal"`
	StorageType  string `json:"storage_type,omitempty"`
}

// handleSealStatus answers GET sys/seal-status without a token, sealed or
// not (bao status reads it); other methods are 405, as OpenBao answers.
func (s *Server) handleSealStatus(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, &apiError{status: http.StatusMethodNotAllowed})
		return
	}
	body := sealStatusBody{Type: "shamir", Initialized: true, Sealed: s.sealed.Load(), T: 1, N: 1,
		Version: serverVersion, StorageType: "inmem"}
	if s.dataDir != "" {
		body.StorageType = "file"
	}
	if !body.Sealed {
		body.ClusterName, body.ClusterID = clusterName, s.clusterID
	}
	writeJSON(w, http.StatusOK, body)
}

// mountPathRe restricts mount paths to simple segments.
var mountPathRe = regexp.MustCompile(`^[\w\-.]+(/[\w\-.]+)*$`)

func validMountPath(p string) bool { return mountPathRe.MatchString(p) }

// reservedMounts are Vault's protected paths, which cannot be mounted over.
var reservedMounts = []string{"audit/", "auth/", "sys/", "cubbyhole/", "identity/"}

func mountEntry(m *mount) map[string]any {
	return map[string]any{
		"accessor":                m.accessor,
		"config":                  map[string]any{"default_lease_ttl": 0, "force_no_cache": false, "max_lease_ttl": 0},
		"description":             m.description,
		"external_entropy_access": false,
		"local":                   false,
		"options":                 nil,
		"plugin_version":          "",
		"running_plugin_version":  "v" + strings.SplitN(serverVersion, "+", 2)[0] + "+builtin.bao", // OpenBao's builtin plugins' form
		"running_sha256":          "",
		"seal_wrap":               false,
		"type":                    "transit",
		"uuid":                    m.uuid,
	}
}

// handleMounts serves sys/mounts (list) and sys/mounts/<path> (enable,
// read, disable) for transit engines only.
func (s *Server) handleMounts(req *request) (*response, error) {
	p := strings.TrimPrefix(strings.TrimPrefix(req.path, "sys/mounts"), "/")
	if p == "" {
		if req.op != "read" {
			return nil, errUnsupportedOp
		}
		s.mu.RLock()
		data := make(map[string]any, len(s.mounts))
		for path, m := range s.mounts {
			data[path] = mountEntry(m)
		}
		s.mu.RUnlock()
		return &response{data: data, inject: true}, nil
	}
	path := strings.Trim(p, "/") + "/"
	switch req.op {
	case "read":
		s.mu.RLock()
		m := s.mounts[path]
		s.mu.RUnlock()
		if m == nil {
			return nil, userError("No secret engine mount at %s", path)
		}
		return &response{data: mountEntry(m), inject: true}, nil
	case "update":
		return s.enableMount(path, req)
	case "delete":
		return nil, s.disableMount(path)
	}
	return nil, errUnsupportedOp
}

func (s *Server) enableMount(path string, req *request) (*response, error) {
	typ, _, err := str(req.data, "type")
	if err != nil {
		return nil, err
	}
	desc, _, err := str(req.data, "description")
	if err != nil {
		return nil, err
	}
	if !validMountPath(strings.TrimSuffix(path, "/")) {
		return nil, userError("invalid mount path %q", path)
	}
	for _, r := range reservedMounts {
		if strings.HasPrefix(path, r) {
			return nil, userError("cannot mount %q", path)
		}
	}
	if typ == "" {
		return nil, userError("backend type must be specified as a string")
	}
	if typ != "transit" {
		// devtransit's plugin catalog holds only the transit engine.
		return nil, userError("plugin not found in the catalog: %s", typ)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	existing := make([]string, 0, len(s.mounts))
	for mp := range s.mounts {
		existing = append(existing, mp)
	}
	sort.Strings(existing)
	for _, mp := range existing {
		if strings.HasPrefix(mp, path) || strings.HasPrefix(path, mp) {
			return nil, userError("path is already in use at %s", mp)
		}
	}
	s.mounts[path] = newMount(path, desc)
	if err := s.persist(); err != nil {
		delete(s.mounts, path)
		s.log.Error("devtransit: persisting mount failed; change rolled back", "mount", path, "error", err)
		return nil, internalError(err.Error())
	}
	s.log.Info("devtransit: transit engine enabled", "mount", path)
	return nil, nil
}

// disableMount removes a mount and its keys; a missing mount is a success,
// as in Vault.
func (s *Server) disableMount(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mounts[path]
	if m == nil {
		return nil
	}
	delete(s.mounts, path)
	if err := s.persist(); err != nil {
		s.mounts[path] = m
		s.log.Error("devtransit: persisting mount removal failed; change rolled back", "mount", path, "error", err)
		return internalError(err.Error())
	}
	s.log.Info("devtransit: transit engine disabled", "mount", path)
	return nil
}
