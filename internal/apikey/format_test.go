package apikey

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"credvault/internal/credvault"
)

// generate is Generate for tests: it fails the test on error and reveals the key.
func generate(t testing.TB, prefix, env string) string {
	t.Helper()
	s, err := Generate(prefix, env)
	if err != nil {
		t.Fatalf("Generate(%q, %q): %v", prefix, env, err)
	}
	return s.Reveal()
}

// rawFromHex decodes a 30-byte random part for the known-answer vectors.
func rawFromHex(t *testing.T, h string) *[randomBytes]byte {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != randomBytes {
		t.Fatalf("bad vector random part %q", h)
	}
	var raw [randomBytes]byte
	copy(raw[:], b)
	return &raw
}

// TestKnownVectors pins the exact encoding (base62 alphabet and digit order,
// padding, CRC32 input and checksum width) and the hash. The expected values
// were computed independently of this package.
func TestKnownVectors(t *testing.T) {
	tests := []struct {
		prefix, env, raw string
		key, sha256      string
	}{
		{
			"cv", EnvLive, strings.Repeat("00", 30),
			"cv_live_00000000000000000000000000000000000000000_2M8Y4X",
			"155fd22f18a88b204005e997e25d163cd5817e66b5adf2e23f962edddf42ae52",
		},
		{
			"cv", EnvLive, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d",
			"cv_live_000D37zwY9QluoiRsV2MqABbmpQ2Fiv87dRFrKcA9_2EfbW1",
			"3284f6663577feab415bad547b2ef68d0cea16020693f8d91e4290788e58d06b",
		},
		{
			"acme", EnvTest, strings.Repeat("ff", 30),
			"acme_test_3YlCgNeYQ06HBQNGiYxnQHuEkjfZkCSUgsd1cNg8V_2ix2VP",
			"c32e77991ae5e35075f544c53211b7c7884b9a6b7f7803fbd769bb14f6630674",
		},
		{
			"x9", EnvTest, "01" + strings.Repeat("00", 29),
			"x9_test_00rSrvjRk7GUa85u0ep5lKPeGALiSW14xkECMBiU4_3gQCJo",
			"a16daa0e9ebef7b98a0e82f27330046377a974584c2e4a4164e55449814bf6f1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := build(tt.prefix, tt.env, rawFromHex(t, tt.raw)); got != tt.key {
				t.Fatalf("build: got %v, want %v", got, tt.key)
			}
			p, err := Parse(tt.key, tt.prefix)
			if err != nil {
				t.Fatalf("Parse: got %v, want nil", err)
			}
			if p.Prefix != tt.prefix || p.Env != tt.env {
				t.Fatalf("Parse: got %+v, want {%v %v}", p, tt.prefix, tt.env)
			}
			h := Hash(tt.key)
			if got := hex.EncodeToString(h[:]); got != tt.sha256 {
				t.Fatalf("Hash: got %v, want %v", got, tt.sha256)
			}
			if got, want := Last4(tt.key), tt.key[len(tt.key)-4:]; got != want {
				t.Fatalf("Last4: got %v, want %v", got, want)
			}
		})
	}
}

func TestGenerateParses(t *testing.T) {
	for _, prefix := range []string{"cv", "a", "acme2", strings.Repeat("z", 16)} {
		for _, env := range []string{EnvLive, EnvTest} {
			key := generate(t, prefix, env)
			if got, want := len(key), len(prefix)+fixedLen; got != want {
				t.Fatalf("len(%q): got %v, want %v", key, got, want)
			}
			p, err := Parse(key, prefix)
			if err != nil {
				t.Fatalf("Parse(%q): got %v, want nil", key, err)
			}
			if p.Prefix != prefix || p.Env != env {
				t.Fatalf("Parse(%q): got %+v, want {%v %v}", key, p, prefix, env)
			}
		}
	}
}

func TestGenerateDistinctSameLength(t *testing.T) {
	const n = 10000
	seen := make(map[string]struct{}, n)
	want := len("cv") + fixedLen
	for i := 0; i < n; i++ {
		key := generate(t, "cv", EnvLive)
		if len(key) != want {
			t.Fatalf("key %d: got length %v, want %v", i, len(key), want)
		}
		if _, dup := seen[key]; dup {
			t.Fatalf("key %d repeats an earlier key", i)
		}
		seen[key] = struct{}{}
	}
}

func TestGenerateRedacted(t *testing.T) {
	s, err := Generate("cv", EnvLive)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%v %s %+v %#v", s, s, s, s); strings.Contains(got, s.Reveal()) {
		t.Fatalf("formatted key leaks the key: %v", got)
	}
}

func TestGenerateInvalid(t *testing.T) {
	tests := []struct{ name, prefix, env string }{
		{"empty prefix", "", EnvLive},
		{"uppercase prefix", "CV", EnvLive},
		{"digit first", "1cv", EnvLive},
		{"underscore in prefix", "c_v", EnvLive},
		{"prefix too long", strings.Repeat("a", 17), EnvLive},
		{"unknown env", "cv", "prod"},
		{"empty env", "cv", ""},
		{"env case", "cv", "LIVE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Generate(tt.prefix, tt.env)
			if got := credvault.ErrorCode(err); got != credvault.EINVALID {
				t.Fatalf("got code %q (%v), want %v", got, err, credvault.EINVALID)
			}
			if !s.IsZero() {
				t.Fatal("got a key alongside an error")
			}
		})
	}
}

// TestParseSingleCharacterChanges flips every position of several keys to
// several other characters: none of those keys may parse.
func TestParseSingleCharacterChanges(t *testing.T) {
	keys := []string{
		"cv_live_00000000000000000000000000000000000000000_2M8Y4X",
		"acme_test_3YlCgNeYQ06HBQNGiYxnQHuEkjfZkCSUgsd1cNg8V_2ix2VP",
	}
	for i := 0; i < 20; i++ {
		keys = append(keys, generate(t, "cv", EnvLive), generate(t, "acme", EnvTest))
	}
	replacements := "019AZaz_-. \x00\xff"
	for _, key := range keys {
		prefix := key[:strings.IndexByte(key, '_')]
		if _, err := Parse(key, prefix); err != nil {
			t.Fatalf("unchanged key: got %v, want nil", err)
		}
		for pos := 0; pos < len(key); pos++ {
			cands := []byte(replacements)
			// Neighbours in the alphabet catch off-by-one digit changes.
			if d := base62Value[key[pos]]; d != invalidDigit {
				cands = append(cands, base62[(d+1)%62], base62[(d+61)%62])
			}
			for _, c := range cands {
				if c == key[pos] {
					continue
				}
				changed := key[:pos] + string([]byte{c}) + key[pos+1:]
				_, err := Parse(changed, prefix)
				if !errors.Is(err, ErrChecksum) && !errors.Is(err, ErrMalformed) {
					t.Fatalf("key changed at %d to %q: got %v, want ErrChecksum or ErrMalformed", pos, c, err)
				}
			}
			// Dropping or doubling a character changes the length.
			for _, changed := range []string{key[:pos] + key[pos+1:], key[:pos] + key[pos:pos+1] + key[pos:]} {
				if _, err := Parse(changed, prefix); !errors.Is(err, ErrMalformed) {
					t.Fatalf("key with length change at %d: got %v, want ErrMalformed", pos, err)
				}
			}
		}
	}
}

// TestParseChecksumOnly checks that a well-formed key with a wrong checksum
// is told apart from a malformed one, in the random part and in the checksum.
func TestParseChecksumOnly(t *testing.T) {
	key := "cv_live_000D37zwY9QluoiRsV2MqABbmpQ2Fiv87dRFrKcA9_2EfbW1"
	for _, pos := range []int{8, 20, 48, 50, 55} {
		b := []byte(key)
		b[pos] = base62[(base62Value[b[pos]]+1)%62]
		if _, err := Parse(string(b), "cv"); !errors.Is(err, ErrChecksum) {
			t.Fatalf("digit changed at %d: got %v, want ErrChecksum", pos, err)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	good := "cv_live_000D37zwY9QluoiRsV2MqABbmpQ2Fiv87dRFrKcA9_2EfbW1"
	random := "000D37zwY9QluoiRsV2MqABbmpQ2Fiv87dRFrKcA9"
	tests := []struct{ name, key, prefix string }{
		{"empty", "", "cv"},
		{"prefix only", "cv_", "cv"},
		{"wrong prefix", good, "cx"},
		{"longer wanted prefix", good, "cvx"},
		{"shorter wanted prefix", good, "c"},
		{"invalid wanted prefix", good, ""},
		{"uppercase prefix", "CV" + good[2:], "cv"},
		{"uppercase wanted prefix", "CV" + good[2:], "CV"},
		{"unknown env", "cv_prod_" + random + "_2EfbW1", "cv"},
		{"env case", "cv_LIVE_" + random + "_2EfbW1", "cv"},
		{"extra underscore", "cv_live_" + random[:20] + "_" + random[21:] + "_2EfbW1", "cv"},
		{"extra part", good + "_", "cv"},
		{"missing checksum", "cv_live_" + random, "cv"},
		{"short random", "cv_live_" + random[1:] + "_2EfbW1", "cv"},
		{"long checksum", good + "0", "cv"},
		{"too long", good + strings.Repeat("A", 1000), "cv"},
		{"dash separators", "cv-live-" + random + "-2EfbW1", "cv"},
		{"non-base62 random", "cv_live_" + random[:40] + "+_2EfbW1", "cv"},
		{"non-base62 checksum", "cv_live_" + random + "_2Efb/1", "cv"},
		{"non-ascii", "cv_live_" + random[:39] + "é_2EfbW1", "cv"},
		{"surrounding space", " " + good[:len(good)-1], "cv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(tt.key, tt.prefix); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want %v", err, ErrMalformed)
			}
		})
	}
}

func TestHashStable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		// 200 bytes: longer than Hash's stack buffer, so the other path.
		{strings.Repeat("a", 200), "c2a908d98f5df987ade41b5fce213067efbcc21ef2240212a41e54b5e7c28ae5"},
	}
	for _, tt := range tests {
		h := Hash(tt.in)
		if got := hex.EncodeToString(h[:]); got != tt.want {
			t.Fatalf("Hash(%q): got %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestLast4AndDisplay(t *testing.T) {
	if got := Last4("abc"); got != "" {
		t.Fatalf("Last4 of a short string: got %q, want empty", got)
	}
	key := generate(t, "cv", EnvLive)
	last4 := Last4(key)
	if got, want := last4, key[len(key)-4:]; got != want {
		t.Fatalf("Last4: got %v, want %v", got, want)
	}
	if got, want := Display("cv", EnvLive, "a1B2"), "cv_live_…a1B2"; got != want {
		t.Fatalf("Display: got %v, want %v", got, want)
	}
	if d := Display("cv", EnvLive, last4); !strings.HasPrefix(key, "cv_live_") || !strings.HasSuffix(key, strings.TrimPrefix(d, "cv_live_…")) {
		t.Fatalf("Display %q does not match key's public parts", d)
	}
}

// TestParseAndHashDoNotAllocate guards the hot-path property the
// benchmarks report.
func TestParseAndHashDoNotAllocate(t *testing.T) {
	key := generate(t, "cv", EnvLive)
	bad := key[:len(key)-1] + "!"
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Parse(key, "cv"); err != nil {
			t.Fatal(err)
		}
		_, _ = Parse(bad, "cv")
		_ = Hash(key)
	})
	if allocs != 0 {
		t.Fatalf("Parse+Hash: got %v allocations per run, want 0", allocs)
	}
}

func BenchmarkParse(b *testing.B) {
	key := generate(b, "cv", EnvLive)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(key, "cv"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAndHash(b *testing.B) {
	key := generate(b, "cv", EnvLive)
	b.ReportAllocs()
	var sink [32]byte
	for b.Loop() {
		if _, err := Parse(key, "cv"); err != nil {
			b.Fatal(err)
		}
		sink = Hash(key)
	}
	_ = sink
}
