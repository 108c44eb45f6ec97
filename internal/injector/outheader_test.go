package injector

import (
	"fmt"
	"net/http"
	"testing"
)

// TestOutHeaderLargeNotPooled: release keeps an outbound header for reuse
// only when it was of ordinary size (at most 64 fields, 256 values): a
// map that once held many fields keeps its buckets (Go maps do not
// shrink), and every later clear would walk them. The bound is read
// before the header is emptied.
func TestOutHeaderLargeNotPooled(t *testing.T) {
	h := http.Header{}
	for i := 0; i < 100; i++ {
		h[fmt.Sprintf("X-Field-%03d", i)] = []string{"v"}
	}
	for round := 0; round < 20; round++ {
		big := &outHeader{}
		big.base(h)
		big.release()
		if got := outHeaders.Get().(*outHeader); got == big {
			t.Fatalf("round %d: a header of %d fields went back to the pool", round, len(h)+1)
		}
	}
}
