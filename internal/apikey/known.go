package apikey

import (
	"encoding/binary"
	"sync"

	"github.com/FastFilter/xorfilter"
)

// knownSet answers "may this hash belong to a stored key?" without the
// database, so that unknown keys are refused before a query. It is a
// binary fuse filter (github.com/FastFilter/xorfilter) with 16-bit
// fingerprints over the first 8 bytes of every stored key's SHA-256,
// built at each (re)load, plus an exact set of the keys added since that
// load (new keys announced by NOTIFY, keys found by a lookup).
//
// Why 16-bit fingerprints: a binary fuse filter costs about 1.13 × f bits
// a key and answers "maybe" for an absent key with probability 2^-f
// (Graf & Lemire, "Binary Fuse Filters", 2022). At f=16 that is ~18 bits a
// key — 2.3 MB a million keys, against 38 MB for the exact map of 8-byte
// prefixes it replaces (BenchmarkKnownSetMemory; 23 MB against ~380 MB at
// 10,000,000 keys) — and a false-positive rate of
// 1/65,536: a flood of 100,000 random well-formed keys a second yields ~1.5
// database lookups a second, far inside DefaultMissBudget, so the budget
// stays free for its real purpose (a key created on another instance an
// instant before its notification arrives). f=8 would halve the memory but
// let 390 of those 100,000 through, spending the whole budget on noise.
//
// A false positive only costs one database lookup (the database is the
// exact check); a false negative cannot happen for keys loaded or added.
// Until the first load it answers "maybe" to everything.
type knownSet struct {
	mu     sync.RWMutex
	ready  bool
	filter *xorfilter.BinaryFuse[uint16] // nil when the last load found no key
	added  map[uint64]struct{}           // added since the filter was built
	// loading collects additions made while a reload runs; they become
	// the new filter's added set (older additions are in the reload).
	loading map[uint64]struct{}
}

func (k *knownSet) init() { k.added = map[uint64]struct{}{} }

// hashPrefix is the part of a key hash the set keeps.
func hashPrefix(h *[32]byte) uint64 { return binary.LittleEndian.Uint64(h[:8]) }

func (k *knownSet) add(h [32]byte) {
	p := hashPrefix(&h)
	k.mu.Lock()
	k.added[p] = struct{}{}
	if k.loading != nil {
		k.loading[p] = struct{}{}
	}
	k.mu.Unlock()
}

func (k *knownSet) mayContain(h [32]byte) bool {
	p := hashPrefix(&h)
	k.mu.RLock()
	defer k.mu.RUnlock()
	if !k.ready {
		return true
	}
	if k.filter != nil && k.filter.Contains(p) {
		return true
	}
	_, ok := k.added[p]
	return ok
}

func (k *knownSet) isReady() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.ready
}

// beginLoad starts collecting the additions that a reload may not see.
func (k *knownSet) beginLoad() {
	k.mu.Lock()
	k.loading = map[uint64]struct{}{}
	k.mu.Unlock()
}

// failLoad ends a reload that could not read the keys. The set keeps
// what it had: the previous filter and every addition since (a key it
// then misses costs a lookup within the miss budget), or, before the
// first load, "maybe" to everything.
func (k *knownSet) failLoad() {
	k.mu.Lock()
	k.loading = nil
	k.mu.Unlock()
}

// finishLoad builds the filter from the prefixes a reload read (it may
// reorder prefixes) and swaps it in, keeping the additions made during the
// load. An error from the filter construction is a failed load.
func (k *knownSet) finishLoad(prefixes []uint64) error {
	var f *xorfilter.BinaryFuse[uint16]
	if len(prefixes) > 0 {
		var err error
		if f, err = xorfilter.NewBinaryFuse[uint16](prefixes); err != nil {
			k.failLoad()
			return err
		}
	}
	k.mu.Lock()
	k.filter, k.added, k.loading, k.ready = f, k.loading, nil, true
	if k.added == nil {
		k.added = map[uint64]struct{}{}
	}
	k.mu.Unlock()
	return nil
}

// sizeBytes is the memory the set holds: the filter's fingerprints and
// the added set (estimated at 16 bytes an entry, Go's map overhead).
func (k *knownSet) sizeBytes() int64 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	var n int64
	if k.filter != nil {
		n += int64(len(k.filter.Fingerprints)) * 2
	}
	return n + int64(len(k.added))*16
}
