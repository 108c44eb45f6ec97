package apikey

import (
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

// referenceParse is Parse written plainly from the documented format
// "<prefix>_<live|test>_<41 base62>_<6 base62 CRC32>", as the fuzz oracle.
func referenceParse(key, prefix string) error {
	okPrefix := len(prefix) >= 1 && len(prefix) <= 16 && prefix[0] >= 'a' && prefix[0] <= 'z' &&
		strings.Trim(prefix, "abcdefghijklmnopqrstuvwxyz0123456789") == ""
	if !okPrefix || !strings.HasPrefix(key, prefix+"_") {
		return ErrMalformed
	}
	parts := strings.Split(key[len(prefix)+1:], "_")
	if len(parts) != 3 || (parts[0] != "live" && parts[0] != "test") || len(parts[1]) != 41 || len(parts[2]) != 6 {
		return ErrMalformed
	}
	var sum uint64
	for _, part := range parts[1:] {
		for i := 0; i < len(part); i++ {
			d := strings.IndexByte(base62, part[i])
			if d < 0 {
				return ErrMalformed
			}
			if part == parts[2] {
				sum = sum*62 + uint64(d)
			}
		}
	}
	if uint64(crc32.ChecksumIEEE([]byte(key[:len(key)-7]))) != sum {
		return ErrChecksum
	}
	return nil
}

// FuzzParse checks Parse against the reference on any input: same verdict,
// and an accepted key names the wanted prefix and its own environment.
func FuzzParse(f *testing.F) {
	for _, env := range []string{EnvLive, EnvTest} {
		k, _ := Generate("cv", env)
		f.Add(k.Reveal(), "cv")
	}
	f.Add("cv_live_"+strings.Repeat("A", 41)+"_000000", "cv")
	f.Add("x_test_abc_def", "x")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, key, prefix string) {
		p, err := Parse(key, prefix)
		want := referenceParse(key, prefix)
		if !errors.Is(err, want) && !(err == nil && want == nil) {
			t.Fatalf("Parse(%q, %q) = %v, reference says %v", key, prefix, err, want)
		}
		if err == nil && (p.Prefix != prefix || !strings.HasPrefix(key, prefix+"_"+p.Env+"_")) {
			t.Fatalf("Parse(%q, %q) = %+v", key, prefix, p)
		}
	})
}
