package httpapi

import (
	"slices"
	"testing"
)

// TestAppendScopes: the scope query of /v1/auth/check as gateways send it
// (empty, a list with blanks, repeated parameters, names credvault does
// not know); known names come back as credvault's own strings.
func TestAppendScopes(t *testing.T) {
	for in, want := range map[string][]string{
		"":                        nil,
		" , ,":                    nil,
		"admin":                   {"admin"},
		"keys:read, admin":        {"keys:read", "admin"},
		",keys:write,,unknown:x ": {"keys:write", "unknown:x"},
	} {
		got := appendScopes(nil, []byte(in))
		if !slices.Equal(got, want) {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
	got := appendScopes(appendScopes(nil, []byte("keys:read")), []byte("users:read"))
	if !slices.Equal(got, []string{"keys:read", "users:read"}) {
		t.Errorf("two parameters: %q", got)
	}
	if n := testing.AllocsPerRun(100, func() { _ = appendScopes(nil, []byte("")) }); n != 0 {
		t.Errorf("empty scope parameter: %v allocations, want 0", n)
	}
}
