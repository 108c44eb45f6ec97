package vault

import (
	"context"
	"errors"
	"net/http"
	"strings"

	vaultapi "github.com/hashicorp/vault/api"

	"credvault/internal/credvault"
)

// Sentinel causes carried inside the *credvault.Error values this package
// returns, for callers that must tell them apart with errors.Is.
var (
	// ErrUnavailable: Vault is sealed, unreachable, overloaded or failing
	// (5xx, 429). Worth retrying later; readiness reports it.
	ErrUnavailable = errors.New("vault unavailable")
	// ErrIntegrity: Vault refused a ciphertext because the derivation context
	// does not match, the data was altered, or its key version is outside the
	// allowed range. Retrying cannot help, so it is never retried.
	// It is the domain's credvault.ErrUndecryptable, so services can tell
	// it apart without importing this package.
	ErrIntegrity = credvault.ErrUndecryptable
	// ErrKeyNotFound: the transit key (or mount) does not exist.
	ErrKeyNotFound = errors.New("transit key not found")
	// ErrPermissionDenied: Vault refused credvault's token for this path.
	ErrPermissionDenied = errors.New("vault permission denied")
	// ErrTooComplex: the server refused a request body for its JSON
	// complexity (too many strings, array elements, object entries or
	// tokens). A smaller batch is accepted; the batch methods split and
	// retry on their own.
	ErrTooComplex = errors.New("vault refused the request's JSON as too complex")
)

// complexityTexts are the servers' error texts for a body over their JSON
// complexity limits; a smaller batch passes all of them. OpenBao
// (http/util.go, 2.4.1+): "refused JSON input due to high complexity:
// exceeded maximum number of strings" (or "... estimated memory limits"),
// status 400. HashiCorp Vault (sdk/helper/jsonutil, max_json_* listener
// settings): "JSON array exceeds allowed element count", "JSON object
// exceeds allowed entry count", "JSON payload exceeds allowed token count".
// Nesting depth and string length are not listed: splitting cannot help.
var complexityTexts = []string{
	"refused JSON input due to high complexity",
	"JSON array exceeds allowed element count",
	"JSON object exceeds allowed entry count",
	"JSON payload exceeds allowed token count",
}

// isComplexityRefusal reports whether a server error text is one of
// complexityTexts.
func isComplexityRefusal(msg string) bool {
	for _, t := range complexityTexts {
		if strings.Contains(msg, t) {
			return true
		}
	}
	return false
}

// translate turns an error from the Vault API client into a
// *credvault.Error with one of the sentinels above as its cause. what names
// the operation for the message; no input value ever goes into the message.
func translate(err error, what string) error {
	if err == nil {
		return nil
	}
	var re *vaultapi.ResponseError
	if !errors.As(err, &re) {
		if errors.Is(err, context.Canceled) {
			return &credvault.Error{Code: credvault.EUNAVAILABLE, Message: what + ": request cancelled", Err: err}
		}
		return &credvault.Error{Code: credvault.EUNAVAILABLE, Message: what + ": vault is unreachable",
			Err: errors.Join(ErrUnavailable, err)}
	}
	msg := strings.Join(re.Errors, "; ")
	switch {
	case re.StatusCode >= 400 && isComplexityRefusal(msg):
		return &credvault.Error{Code: credvault.EUNAVAILABLE, Message: what + ": vault refused the request as too complex (JSON limits); send smaller batches",
			Err: errors.Join(ErrTooComplex, errors.New(msg))}
	case re.StatusCode == http.StatusForbidden:
		return &credvault.Error{Code: credvault.EUNAVAILABLE, Message: what + ": vault denied credvault's token (permission denied); check the token and its policy", Err: ErrPermissionDenied}
	case re.StatusCode == http.StatusServiceUnavailable && strings.Contains(msg, "sealed"):
		return &credvault.Error{Code: credvault.EUNAVAILABLE, Message: what + ": vault is sealed", Err: ErrUnavailable}
	case re.StatusCode == http.StatusTooManyRequests || re.StatusCode >= 500:
		return &credvault.Error{Code: credvault.EUNAVAILABLE, Message: what + ": vault is unavailable", Err: errors.Join(ErrUnavailable, err)}
	case re.StatusCode == http.StatusNotFound:
		return &credvault.Error{Code: credvault.EUNAVAILABLE, Message: what + ": transit mount or key not found", Err: ErrKeyNotFound}
	}
	return classifyMessage(msg, what)
}

// classifyMessage sorts a 400 answer (or a batch item's error) by Vault's
// error text.
func classifyMessage(msg, what string) error {
	switch {
	case strings.Contains(msg, "key not found"):
		return &credvault.Error{Code: credvault.EUNAVAILABLE, Message: what + ": transit key not found", Err: ErrKeyNotFound}
	case strings.Contains(msg, "message authentication failed"),
		strings.Contains(msg, "invalid ciphertext"),
		strings.Contains(msg, "disallowed by policy"),
		strings.Contains(msg, "version is too new"),
		strings.Contains(msg, "base64"):
		return &credvault.Error{Code: credvault.EINTERNAL, Message: what + ": vault rejected the ciphertext (wrong context, altered data or retired key version)",
			Err: errors.Join(ErrIntegrity, errors.New(msg))}
	}
	return &credvault.Error{Code: credvault.EINTERNAL, Message: what + ": vault rejected the request", Err: errors.New(msg)}
}

// ErrorIs reports whether err carries the sentinel target (a shorthand for
// errors.Is that reads well at call sites).
func ErrorIs(err, target error) bool { return errors.Is(err, target) }
