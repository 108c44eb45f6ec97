// Package credvault holds the domain of the credential vault: its types, its
// error codes and the services that carry the business rules. Adapters
// (postgres, vault, httpapi) depend on this package, never the reverse.
package credvault

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. Every adapter translates its own failures into one of these at
// its edge; httpapi maps them to HTTP statuses in exactly one place.
const (
	EINVALID      = "invalid"      // the caller sent something malformed or not allowed
	EUNAUTHORIZED = "unauthorized" // no valid credentials were presented
	EFORBIDDEN    = "forbidden"    // the caller is known but may not do this
	ENOTFOUND     = "not_found"    // nothing there, or nothing the caller may see
	ECONFLICT     = "conflict"     // the request clashes with the current state
	ERATELIMITED  = "rate_limited" // the caller exceeded its rate limit
	EUNAVAILABLE  = "unavailable"  // a dependency (PostgreSQL, Vault) is down; retry later
	EINTERNAL     = "internal"     // a bug or an unexpected failure
)

// Error is the one error type that crosses package boundaries. Code is one of
// the E* constants; Reason, when set, is the more specific snake_case code a
// client sees (such as "egress_denied"); Message is safe to show to a caller
// and never holds a secret. Err keeps the underlying cause for errors.Is/As
// and for the server log.
type Error struct {
	Code    string
	Reason  string
	Message string
	Err     error
	// Details, when set, is shown to the caller next to the message (for
	// example the workflows that still use a credential). Never a secret.
	Details any
	// RetryAfter, when positive, is how long the caller should wait before
	// trying again (sent as Retry-After, RFC 9110 section 10.2.3).
	RetryAfter time.Duration
}

// Error implements error. It shows the message and the cause, which is fine
// for logs because causes are built without secrets.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap exposes the cause to errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with the given code and message that keeps err as
// its cause. The message is what a caller sees; err is only logged.
func Wrap(code string, err error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the caller-safe message of the first *Error in err's
// chain, or a generic text for any other error (whose text may hold details
// a caller must not see).
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return "internal error"
}

// ErrorReason returns the specific snake_case code of err when one was set.
func ErrorReason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// ErrorDetails returns the caller-visible details of err, if any.
func ErrorDetails(err error) any {
	var e *Error
	if errors.As(err, &e) {
		return e.Details
	}
	return nil
}

// ErrorRetryAfter returns the RetryAfter of the first *Error in err's
// chain, or 0.
func ErrorRetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
