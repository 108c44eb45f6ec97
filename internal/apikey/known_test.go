package apikey

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
)

// hashOf returns a distinct, deterministic key hash for i.
func hashOf(i int) [32]byte { return sha256.Sum256(fmt.Appendf(nil, "key-%d", i)) }

func loadedSet(t testing.TB, n int) *knownSet {
	t.Helper()
	var k knownSet
	k.init()
	k.beginLoad()
	prefixes := make([]uint64, n)
	for i := range n {
		h := hashOf(i)
		prefixes[i] = hashPrefix(&h)
	}
	if err := k.finishLoad(prefixes); err != nil {
		t.Fatal(err)
	}
	return &k
}

func TestKnownSetHoldsEveryLoadedKey(t *testing.T) {
	const n = 200_000
	k := loadedSet(t, n)
	for i := range n {
		if !k.mayContain(hashOf(i)) {
			t.Fatalf("loaded key %d refused: a false negative", i)
		}
	}
	// Absent keys: the false-positive rate must be near 2^-16. With 400,000
	// probes the expected count is ~6; 40 is over ten standard deviations
	// away, so this fails only when the filter is not a 16-bit one.
	fp := 0
	for i := n; i < n+400_000; i++ {
		if k.mayContain(hashOf(i)) {
			fp++
		}
	}
	if fp > 40 {
		t.Fatalf("%d false positives in 400000 absent keys, want about 6 (2^-16)", fp)
	}
	// 16-bit fingerprints at ~1.13 slots a key: about 2.3 bytes a key.
	if got := float64(k.sizeBytes()) / n; got > 2.6 {
		t.Fatalf("filter holds %.2f bytes a key, want under 2.6", got)
	}
}

func TestKnownSetAdditionsDuringAndAfterLoad(t *testing.T) {
	var k knownSet
	k.init()
	if !k.mayContain(hashOf(1)) {
		t.Fatal("before the first load every key must be a maybe")
	}
	k.beginLoad()
	k.failLoad()
	if !k.mayContain(hashOf(1)) {
		t.Fatal("after a failed first load every key must still be a maybe")
	}
	k.beginLoad()
	k.add(hashOf(7)) // created while the load ran: the load may have missed it
	h1 := hashOf(1)
	if err := k.finishLoad([]uint64{hashPrefix(&h1)}); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 7} {
		if !k.mayContain(hashOf(i)) {
			t.Fatalf("key %d refused after the load", i)
		}
	}
	k.add(hashOf(9)) // announced by NOTIFY after the load
	if !k.mayContain(hashOf(9)) {
		t.Fatal("key added after the load refused")
	}
	if k.mayContain(hashOf(12345)) && k.mayContain(hashOf(54321)) {
		t.Fatal("two absent keys both pass: the set answers maybe to everything")
	}
	k.beginLoad()
	k.add(hashOf(11))
	k.failLoad()
	for _, i := range []int{1, 7, 9, 11} {
		if !k.mayContain(hashOf(i)) {
			t.Fatalf("key %d refused after a failed reload: the previous set must stay", i)
		}
	}
}

func TestKnownSetEmptyLoadRefusesEverything(t *testing.T) {
	k := loadedSet(t, 0)
	for i := range 1000 {
		if k.mayContain(hashOf(i)) {
			t.Fatalf("empty set holds key %d", i)
		}
	}
}

// BenchmarkKnownSetMemory reports the heap a loaded set holds per million
// keys, next to the exact map of 8-byte prefixes it replaced.
func BenchmarkKnownSetMemory(b *testing.B) {
	const n = 1_000_000
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for range b.N {
		before := heap()
		k := loadedSet(b, n)
		filterBytes := heap() - before
		runtime.KeepAlive(k)

		before = heap()
		exact := make(map[uint64]struct{})
		for i := range n {
			h := hashOf(i)
			exact[binary.LittleEndian.Uint64(h[:8])] = struct{}{}
		}
		mapBytes := heap() - before
		runtime.KeepAlive(exact)
		b.ReportMetric(float64(filterBytes)/1e6, "filter-MB/1M-keys")
		b.ReportMetric(float64(mapBytes)/1e6, "exact-map-MB/1M-keys")
	}
}

func BenchmarkKnownSetMayContainAbsent(b *testing.B) {
	k := loadedSet(b, 1_000_000)
	probes := make([][32]byte, 1024)
	for i := range probes {
		probes[i] = hashOf(2_000_000 + i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k.mayContain(probes[i&1023])
	}
}
