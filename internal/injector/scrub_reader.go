package injector

import (
	"bytes"
	"io"
	"net/http"
	"sync"
)

// partialStart returns where the longest suffix of b that could still grow
// into an occurrence begins (a proper prefix of some pattern), or len(b).
// Only that suffix has to wait for more data; everything before it can be
// scrubbed and released now, which keeps streamed responses (server-sent
// events) flowing.
func (s *Scrubber) partialStart(b []byte) int {
	for i := max(0, len(b)-(s.maxLen-1)); i < len(b); i++ {
		rest := b[i:]
		for _, p := range s.bpats {
			if len(p) > len(rest) && p[0] == rest[0] && bytes.HasPrefix(p, rest) {
				return i
			}
		}
	}
	return len(b)
}

// scrubChunk is how much is read from the upstream at a time.
const scrubChunk = 16 << 10

// maxPooledBuf keeps buffers that grew on a chunk full of matches out of
// the pool.
const maxPooledBuf = 4 * scrubChunk

// scrubBufPool recycles the buffers of scrubbing readers: the proxy opens
// one per call.
var scrubBufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 2*scrubChunk)
	return &b
}}

// Reader returns a reader of r with the value scrubbed as the data streams
// through. An occurrence split across reads is still caught: the end of a
// chunk that could be the start of an occurrence (at most the longest
// pattern - 1 bytes) is held back until the next read or the end of r;
// everything else is released at once. When r fails (with anything but io.EOF), the bytes
// held back are dropped, since they may be the start of the value, and the
// error is returned unchanged; Read after Close returns
// http.ErrBodyReadAfterClose. Close closes r (and may be called while a Read
// waits, to abort it) and returns r's error.
func (s *Scrubber) Reader(r io.ReadCloser) io.ReadCloser {
	if len(s.spats) == 0 {
		return r
	}
	return &scrubReader{s: s, r: r}
}

type scrubReader struct {
	mu     sync.Mutex // Close may come from another goroutine than Read
	s      *Scrubber
	r      io.ReadCloser
	in     *[]byte // held-back tail followed by fresh data
	out    *[]byte // scrubbed data not yet handed out
	outPos int
	err    error
	closed bool
}

func (z *scrubReader) Read(p []byte) (int, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if z.in == nil {
		z.in = scrubBufPool.Get().(*[]byte)
		z.out = scrubBufPool.Get().(*[]byte)
	}
	for {
		if out := *z.out; z.outPos < len(out) {
			n := copy(p, out[z.outPos:])
			z.outPos += n
			return n, nil
		}
		if z.err != nil {
			return 0, z.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		in := *z.in
		if cap(in)-len(in) < scrubChunk {
			grown := make([]byte, len(in), len(in)+scrubChunk+z.s.maxLen)
			copy(grown, in)
			in = grown
		}
		n, err := z.r.Read(in[len(in) : len(in)+scrubChunk])
		in = in[:len(in)+n]
		limit := len(in)
		if err != io.EOF {
			limit = z.s.partialStart(in)
		}
		z.err = err
		out, used := z.s.redact((*z.out)[:0], in, limit)
		*z.out, z.outPos = out, 0
		if err != nil {
			used = len(in) // at the end, or the tail is dropped: it may begin the value
		}
		*z.in = in[:copy(in, in[used:])]
	}
}

// Close closes the upstream body and gives the buffers back. The body is
// closed first, so that a Read blocked in it returns and lets go of the
// buffers.
func (z *scrubReader) Close() error {
	err := z.r.Close()
	z.mu.Lock()
	defer z.mu.Unlock()
	if !z.closed {
		z.closed = true
		if z.in != nil {
			for _, b := range []*[]byte{z.in, z.out} {
				if cap(*b) <= maxPooledBuf {
					*b = (*b)[:0]
					scrubBufPool.Put(b)
				}
			}
			z.in, z.out = nil, nil
		}
	}
	return err
}
