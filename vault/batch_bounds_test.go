package vault

import (
	"testing"

	"credvault/internal/credvault"
)

// TestBatchBoundsFitOpenBaoDefault counts the strings of the largest
// allowed batch of each operation as OpenBao does (every key and string
// value) and checks the bounds the rest of credvault uses agree.
func TestBatchBoundsFitOpenBaoDefault(t *testing.T) {
	for _, op := range []string{"encrypt", "decrypt", "rewrap"} {
		if got := ItemsPerRequest(op, DefaultMaxRequestJSONStrings); got != 249 {
			t.Errorf("%s: %d items fit 1000 strings, want 249", op, got)
		}
		if StringsPerItem(op) != 4 {
			t.Errorf("%s: %d strings per item, want 4", op, StringsPerItem(op))
		}
		if n := batchEnvelopeStrings + MaxBatch*StringsPerItem(op); n > DefaultMaxRequestJSONStrings {
			t.Errorf("%s: MaxBatch costs %d strings", op, n)
		}
		if n := batchEnvelopeStrings + (MaxBatch+1)*StringsPerItem(op); n <= DefaultMaxRequestJSONStrings {
			t.Errorf("%s: MaxBatch+1 would still fit (%d strings): MaxBatch is not the most", op, n)
		}
	}
	if ItemsPerRequest("sign", 1000) != 0 || ItemsPerRequest("rewrap", 1) != 0 || ItemsPerRequest("rewrap", 5) != 1 {
		t.Error("ItemsPerRequest edge cases")
	}
	if DefaultBatch >= MaxBatch || DefaultBatch < 1 {
		t.Errorf("DefaultBatch %d leaves no margin under %d", DefaultBatch, MaxBatch)
	}
	if credvault.MaxRewrapBatch != MaxBatch || credvault.DefaultRewrapBatch != DefaultBatch {
		t.Errorf("rewrap bounds %d/%d differ from the client's %d/%d", credvault.MaxRewrapBatch, credvault.DefaultRewrapBatch, MaxBatch, DefaultBatch)
	}
}
