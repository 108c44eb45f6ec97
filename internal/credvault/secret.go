package credvault

import (
	"fmt"
	"log/slog"
)

const redacted = "[REDACTED]"

// Secret holds a value that must never be printed: a credential value, an API
// key, a Vault token, a database password. Every way Go has of turning it into
// text (fmt verbs, %#v, JSON, slog) yields "[REDACTED]"; only Reveal gives the
// value back, so each use of the real value is explicit and easy to audit.
type Secret struct {
	value string
}

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{value: s} }

// Reveal returns the wrapped value. Call it only where the value is sent to
// the party that needs it (Vault, an upstream API, PostgreSQL).
func (s Secret) Reveal() string { return s.value }

// IsZero reports whether no value is held.
func (s Secret) IsZero() bool { return s.value == "" }

// String implements fmt.Stringer.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return redacted }

// Format implements fmt.Formatter so that every verb, including %v with
// flags and %q, prints the redaction marker.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler (used by some encoders and
// by map keys).
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }
