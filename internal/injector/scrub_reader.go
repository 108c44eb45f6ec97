package injector

import (
	"errors"
	"io"
	"net/http"
	"sync"

	"credvault/internal/credvault"
)

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

// ErrUnscrubbable is the cause of the error a scrubbing reader returns when
// a chunk would cost more than the Scrubber's per-byte budget to read
// (crafted nested encodings).
var ErrUnscrubbable = errors.New("response cannot be scrubbed within credvault's cost bound")

// Reader returns a reader of r with the value scrubbed as the data streams
// through.
//
// Its shape does not depend on the data: the last Window() bytes received
// are always held back, whatever they are, and released when more data
// arrives (then the new last Window() bytes are held) or at the end of r.
// So an occurrence split across reads is still caught as long as its
// encoded form is at most Window() bytes, and when a byte is released
// never tells whether it might begin the value (no timing oracle). There
// is no release timer: one would hand out the first part of a value that
// an upstream splits with a pause. A match that straddles the release
// point is released whole, as "[REDACTED]".
//
// When r fails (with anything but io.EOF), the bytes held back are dropped
// and the error is returned unchanged. A chunk that would exceed the
// Scrubber's cost bound fails the read with a *credvault.Error reason
// "upstream_encoding" wrapping ErrUnscrubbable. Read after Close returns
// http.ErrBodyReadAfterClose. Close closes r (and may be called while a
// Read waits, to abort it) and returns r's error.
func (s *Scrubber) Reader(r io.ReadCloser) io.ReadCloser {
	if s.emptyVal {
		return r
	}
	return s.readerIn(&scrubReader{}, r)
}

// readerIn is Reader, in z (a zero scrubReader that the caller allocated
// with something else; Do's call holds one) unless the value is empty.
func (s *Scrubber) readerIn(z *scrubReader, r io.ReadCloser) io.ReadCloser {
	if s.emptyVal {
		return r
	}
	z.s, z.r = s, r
	return z
}

// Window is how many bytes Reader holds back (18 times the value's length
// plus 32).
func (s *Scrubber) Window() int { return s.window }

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
			grown := make([]byte, len(in), len(in)+scrubChunk+z.s.window)
			copy(grown, in)
			in = grown
		}
		n, err := z.r.Read(in[len(in) : len(in)+scrubChunk])
		in = in[:len(in)+n]
		*z.in = in
		if err != nil && err != io.EOF {
			z.err = err // the held tail is dropped: it may begin the value
			*z.in = in[:0]
			continue
		}
		limit := len(in) // at the end everything goes
		if err == nil {
			limit -= z.s.window
		}
		z.err = err
		if limit <= 0 || n == 0 && err == nil {
			continue
		}
		if z.release(in, limit) != nil {
			z.err = &credvault.Error{Code: credvault.EUNAVAILABLE, Reason: "upstream_encoding", Err: ErrUnscrubbable,
				Message: "the upstream's response nests encodings deeper than credvault can scrub"}
			*z.in = in[:0]
		}
	}
}

// release scrubs in, moves in[:limit] (or up to the end of a match that
// starts before limit) to out and keeps the rest in in.
func (z *scrubReader) release(in []byte, limit int) error {
	sc := getScratch()
	defer putScratch(sc)
	z.s.find(sc, in)
	if sc.over {
		return ErrUnscrubbable
	}
	used := limit
	spans := sc.spans
	for i, sp := range spans {
		if sp[0] >= limit {
			spans = spans[:i]
			break
		}
		used = max(used, sp[1])
	}
	*z.out = redactSpans((*z.out)[:0], in[:used], spans)
	z.outPos = 0
	*z.in = in[:copy(in, in[used:])]
	return nil
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
