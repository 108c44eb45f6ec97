package devtransit

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// maxBodyBytes is the request body cap, the same as Vault's default
// max_request_size.
const maxBodyBytes = 32 << 20

// apiError is an error answered as {"errors":[msg]} with an HTTP status.
// A nil-message error answers {"errors":[]}, as Vault does for a 404 read.
type apiError struct {
	status int
	msg    *string
}

func (e *apiError) Error() string {
	if e.msg == nil {
		return http.StatusText(e.status)
	}
	return *e.msg
}

func errStatus(status int, msg string) *apiError { return &apiError{status: status, msg: &msg} }

// userError is Vault's 400 answer to a caller mistake.
func userError(format string, args ...any) *apiError {
	return errStatus(http.StatusBadRequest, fmt.Sprintf(format, args...))
}

// internalError is Vault's 500 answer: the router wraps a backend error in a
// multierror, so the body carries "1 error occurred:" and a bullet.
func internalError(msg string) *apiError {
	return errStatus(http.StatusInternalServerError, multiErr(msg))
}

// multiErr formats messages the way Vault's error lists print on the wire.
func multiErr(msgs ...string) string {
	var b strings.Builder
	if len(msgs) == 1 {
		b.WriteString("1 error occurred:\n")
	} else {
		fmt.Fprintf(&b, "%d errors occurred:\n", len(msgs))
	}
	for _, m := range msgs {
		b.WriteString("\t* " + m + "\n")
	}
	b.WriteString("\n")
	return b.String()
}

var (
	errNoToken = errStatus(http.StatusForbidden, "permission denied")
	// errBadToken is OpenBao's answer to an unknown token: the token
	// lookup finds no entry and returns the bare logical.ErrPermissionDenied,
	// which the core answers as an error response of its text
	// (fetchACLTokenEntryAndEntity and handleRequest, vault/request_handling.go
	// in openbao/openbao). HashiCorp Vault adds "invalid token" in a
	// two-item multi-error.
	errBadToken       = errStatus(http.StatusForbidden, "permission denied")
	errDenied         = errStatus(http.StatusForbidden, multiErr("permission denied"))
	errSealed         = errStatus(http.StatusServiceUnavailable, "Vault is sealed")
	errUnsupported    = errStatus(http.StatusNotFound, multiErr("unsupported path"))
	errUnsupportedOp  = errStatus(http.StatusMethodNotAllowed, multiErr("unsupported operation"))
	errNotFoundNoBody = &apiError{status: http.StatusNotFound}
	// errTooManyStrings is OpenBao's answer to a body over
	// max_request_json_strings.
	errTooManyStrings = errStatus(http.StatusBadRequest, "refused JSON input due to high complexity: exceeded maximum number of strings")
)

// authBlock is the "auth" object of a login or renewal answer.
type authBlock struct {
	ClientToken    string            `json:"client_token"`
	Accessor       string            `json:"accessor"`
	Policies       []string          `json:"policies"`
	TokenPolicies  []string          `json:"token_policies"`
	Metadata       map[string]string `json:"metadata"`
	LeaseDuration  int64             `json:"lease_duration"`
	Renewable      bool              `json:"renewable"`
	EntityID       string            `json:"entity_id"`
	TokenType      string            `json:"token_type"`
	Orphan         bool              `json:"orphan"`
	MFARequirement any               `json:"mfa_requirement"`
	NumUses        int               `json:"num_uses"`
}

// envelope is Vault's standard success body.
type envelope struct {
	RequestID     string         `json:"request_id"`
	LeaseID       string         `json:"lease_id"`
	Renewable     bool           `json:"renewable"`
	LeaseDuration int            `json:"lease_duration"`
	Data          map[string]any `json:"data"`
	WrapInfo      any            `json:"wrap_info"`
	Warnings      []string       `json:"warnings"`
	Auth          *authBlock     `json:"auth"`
	MountType     string         `json:"mount_type"`
}

// response is what a handler returns; nil means "no content" (or 404 for a read).
type response struct {
	data     map[string]any
	warnings []string
	auth     *authBlock
	// status, when set, turns the answer into Vault's raw response: the
	// envelope is written with this status and an empty mount_type, as the
	// transit batch endpoints do on a partial failure.
	status int
	// inject copies data into the top level too, as Vault's sys endpoints do.
	inject bool
}

func (r *response) warn(format string, args ...any) {
	r.warnings = append(r.warnings, fmt.Sprintf(format, args...))
}

// request is one parsed API call.
type request struct {
	op        string // read, list, update, delete
	path      string // path below /v1/, without the mount
	data      map[string]any
	tok       *token
	mountType string
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = internalError(err.Error())
	}
	msgs := []string{}
	if ae.msg != nil {
		msgs = append(msgs, *ae.msg)
	}
	writeJSON(w, ae.status, map[string][]string{"errors": msgs})
}

func writeResponse(w http.ResponseWriter, req *request, resp *response) {
	env := envelope{RequestID: newUUID(), Data: resp.data, Warnings: resp.warnings, Auth: resp.auth, MountType: req.mountType}
	if resp.status != 0 {
		env.MountType = ""
		writeJSON(w, resp.status, env)
		return
	}
	if !resp.inject || len(resp.data) == 0 {
		writeJSON(w, http.StatusOK, env)
		return
	}
	raw, err := json.Marshal(env)
	if err != nil {
		writeError(w, err)
		return
	}
	top := map[string]json.RawMessage{}
	if err := json.Unmarshal(raw, &top); err != nil {
		writeError(w, err)
		return
	}
	for k, v := range resp.data {
		if _, taken := top[k]; taken {
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			writeError(w, err)
			return
		}
		top[k] = b
	}
	writeJSON(w, http.StatusOK, top)
}

// readBody parses a JSON object body the way Vault does: numbers stay
// json.Number, an empty body is no data.
// A body with more than maxStrings JSON strings (keys and values; negative
// = no limit) is refused before it is decoded, as OpenBao does.
func readBody(w http.ResponseWriter, r *http.Request, maxStrings int) (map[string]any, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errStatus(http.StatusRequestEntityTooLarge, "error parsing JSON: failed to parse JSON input: http: request body too large")
		}
		return nil, userError("error reading data")
	}
	if strings.TrimSpace(string(body)) == "" {
		return nil, nil
	}
	if isFormBody(body, r.Header.Get("Content-Type")) {
		return formData(body)
	}
	if maxStrings >= 0 && countJSONStrings(body, maxStrings) > maxStrings {
		return nil, errTooManyStrings
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		return nil, userError("error parsing JSON: failed to parse JSON input: %v", err)
	}
	return out, nil
}

// isFormBody reports whether a body is read as a form rather than JSON,
// as OpenBao decides (isForm in http/handler.go, called from
// buildLogicalRequestNoAuth in http/logical.go, openbao/openbao): the
// media type is application/x-www-form-urlencoded and the body, past
// leading JSON whitespace, does not start with '{' or '['. JSON stays
// the default for every other content type.
func isFormBody(body []byte, contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return false
	}
	head := bytes.TrimLeft(body[:min(len(body), 512)], " \t\n\r")
	return len(head) == 0 || (head[0] != '{' && head[0] != '[')
}

// formData decodes a form body the way OpenBao's parseFormRequest does
// (http/handler.go): one value per field as a string, several joined
// with commas. A malformed form is 400 "error parsing form data".
func formData(body []byte) (map[string]any, error) {
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, userError("error parsing form data")
	}
	if len(values) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(values))
	for k, v := range values {
		switch len(v) {
		case 0:
		case 1:
			out[k] = v[0]
		default:
			out[k] = strings.Join(v, ",")
		}
	}
	return out, nil
}

// countJSONStrings counts the strings of a JSON text, keys included,
// stopping once it passes limit. A malformed text is counted as far as it
// parses; decoding it afterwards reports the error.
func countJSONStrings(body []byte, limit int) int {
	dec := json.NewDecoder(bytes.NewReader(body))
	n := 0
	for n <= limit {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if _, ok := tok.(string); ok {
			n++
		}
	}
	return n
}

// queryData turns query parameters into request data, as Vault does for
// GET, LIST and DELETE.
func queryData(r *http.Request) map[string]any {
	q := r.URL.Query()
	q.Del("list")
	if len(q) == 0 {
		return nil
	}
	out := make(map[string]any, len(q))
	for k, v := range q {
		if len(v) == 1 {
			out[k] = v[0]
		} else {
			out[k] = v
		}
	}
	return out
}

// unknownParams is Vault's warning for body fields an endpoint ignores.
func unknownParams(data map[string]any, known ...string) []string {
	var extra []string
	for k := range data {
		found := false
		for _, kn := range known {
			if k == kn {
				found = true
				break
			}
		}
		if !found {
			extra = append(extra, k)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	sort.Strings(extra)
	return []string{fmt.Sprintf("Endpoint ignored these unrecognized parameters: %v", extra)}
}

func fieldErr(raw any, field, why string) *apiError {
	return userError("Field validation failed: error converting input %v for field %q: %s", raw, field, why)
}

// str reads a string field; ok reports whether it was present.
func str(data map[string]any, field string) (string, bool, error) {
	raw, ok := data[field]
	if !ok || raw == nil {
		return "", ok, nil
	}
	switch v := raw.(type) {
	case string:
		return v, true, nil
	case json.Number:
		return v.String(), true, nil
	case bool:
		return strconv.FormatBool(v), true, nil
	}
	return "", true, fieldErr(raw, field, fmt.Sprintf("'' expected type 'string', got unconvertible type '%T'", raw))
}

// integer reads an int field with Vault's loose conversions.
func integer(data map[string]any, field string) (int, bool, error) {
	raw, ok := data[field]
	if !ok || raw == nil {
		return 0, ok, nil
	}
	var s string
	switch v := raw.(type) {
	case json.Number:
		s = v.String()
	case string:
		if v == "" {
			return 0, true, nil
		}
		s = v
	default:
		return 0, true, fieldErr(raw, field, fmt.Sprintf("'' expected type 'int', got unconvertible type '%T'", raw))
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != float64(int(f)) {
			return 0, true, fieldErr(raw, field, fmt.Sprintf("cannot parse '' as int: %v", err))
		}
		n = int(f)
	}
	return n, true, nil
}

// boolean reads a bool field with Vault's loose conversions.
func boolean(data map[string]any, field string) (bool, bool, error) {
	raw, ok := data[field]
	if !ok || raw == nil {
		return false, ok, nil
	}
	switch v := raw.(type) {
	case bool:
		return v, true, nil
	case string:
		if v == "" {
			return false, true, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, true, fieldErr(raw, field, fmt.Sprintf("cannot parse '' as bool: %v", err))
		}
		return b, true, nil
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return false, true, fieldErr(raw, field, err.Error())
		}
		return f != 0, true, nil
	}
	return false, true, fieldErr(raw, field, fmt.Sprintf("'' expected type 'bool', got unconvertible type '%T'", raw))
}

// seconds reads a duration field given as seconds or as a Go duration string.
func seconds(data map[string]any, field string) (time.Duration, bool, error) {
	raw, ok := data[field]
	if !ok || raw == nil {
		return 0, ok, nil
	}
	s := fmt.Sprint(raw)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n) * time.Second, true, nil
	}
	if strings.HasSuffix(s, "d") {
		if n, err := strconv.ParseInt(strings.TrimSuffix(s, "d"), 10, 64); err == nil {
			return time.Duration(n) * 24 * time.Hour, true, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, true, fieldErr(raw, field, err.Error())
	}
	return d, true, nil
}

// newUUID returns a random RFC 4122 version 4 UUID string.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// randomID returns n characters of random base62, Vault's token alphabet.
func randomID(n int) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	out := make([]byte, n)
	buf := make([]byte, 1)
	for i := 0; i < n; {
		_, _ = rand.Read(buf)
		if int(buf[0]) < 248 { // 248 = 4*62: no modulo bias
			out[i] = alphabet[int(buf[0])%62]
			i++
		}
	}
	return string(out)
}
