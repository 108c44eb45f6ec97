package credvault

import "testing"

func TestCiphertextVersion(t *testing.T) {
	for in, want := range map[string]int{"vault:v1:abc": 1, "vault:v12:x": 12} {
		if got, err := CiphertextVersion(in); err != nil || got != want {
			t.Errorf("%s: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "vault:", "vault:v0:x", "vault:vx:y", "v1:abc", "vault:v1"} {
		if _, err := CiphertextVersion(bad); ErrorCode(err) != EINVALID {
			t.Errorf("%q: err = %v, want EINVALID", bad, err)
		}
	}
}
