package injector

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"io"
	"sync"
)

// Decompressed and wide views: what an upstream sends as base64 of gzip or
// zlib (a compressed token or payload in a JSON field), and UTF-16 text.

// Compressed stream formats found in binary views.
const (
	formatGzip = iota // RFC 1952: 1f 8b 08
	formatZlib        // RFC 1950: CMF 0x78 (deflate, 32 KiB window), FLG with FCHECK and no preset dictionary
)

// inflateViews looks in raw bytes (the input itself, a binary view of
// decoded base64, hex or base32, or a decompressed view) for the start of a
// gzip or zlib stream and scans what it decompresses to, one layer deeper:
// a stream compressed twice is undone layer by layer, up to maxViewDepth.
// Every decompressed byte is attributed to the whole rest of the view from
// the stream's start, so a match redacts the encoded stream from there on.
// Decompression stops at the view budget: a stream that would inflate past
// it (a compression bomb) makes the text count as holding the value, as
// other over-budget texts do. The starts are found with IndexByte, so text
// without 0x1f or 'x' costs two vectorised passes.
func (s *Scrubber) inflateViews(sc *scratch, v *view, depth int) {
	d := v.data
	for i := bytes.IndexByte(d, 0x1f); i >= 0 && i+2 < len(d) && !sc.over; {
		if d[i+1] == 0x8b && d[i+2] == 8 {
			s.inflateAt(sc, v, i, formatGzip, depth)
		}
		k := bytes.IndexByte(d[i+1:], 0x1f)
		if k < 0 {
			break
		}
		i += 1 + k
	}
	for i := bytes.IndexByte(d, 0x78); i >= 0 && i+2 < len(d) && !sc.over; {
		if (uint16(d[i])<<8|uint16(d[i+1]))%31 == 0 && d[i+1]&0x20 == 0 {
			s.inflateAt(sc, v, i, formatZlib, depth)
		}
		k := bytes.IndexByte(d[i+1:], 0x78)
		if k < 0 {
			break
		}
		i += 1 + k
	}
}

// inflaters reuse decompressor state, which is large (tens of KiB).
var (
	gzipReaders  sync.Pool // *gzip.Reader
	flateReaders sync.Pool // io.ReadCloser implementing flate.Resetter
)

// inflateAt decompresses the stream that starts at v.data[at] and scans
// the result.
func (s *Scrubber) inflateAt(sc *scratch, v *view, at, format, depth int) {
	src := bytes.NewReader(v.data[at:])
	var r io.Reader
	switch format {
	case formatGzip:
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(src)
		} else {
			err = zr.Reset(src)
		}
		if err != nil {
			return
		}
		defer gzipReaders.Put(zr)
		zr.Multistream(false)
		r = zr
	default:
		src.Seek(2, io.SeekStart) // the zlib header; the Adler-32 trailer is not checked
		fr, _ := flateReaders.Get().(io.ReadCloser)
		if fr == nil {
			fr = flate.NewReader(src)
		} else if fr.(flate.Resetter).Reset(src, nil) != nil {
			return
		}
		defer flateReaders.Put(fr)
		r = fr
	}
	vb := newBuilder(sc, v)
	defer vb.pop()
	var buf [4096]byte
	end := len(v.data)
	for {
		room := sc.limit - sc.used - (len(sc.data) - vb.base)
		n, err := r.Read(buf[:min(len(buf), max(room, 1))])
		for _, c := range buf[:n] {
			vb.emit(c, at, end)
		}
		if err != nil {
			// A corrupt or truncated stream (a false start, or a stream cut
			// by the streaming window) still yields what it decoded.
			break
		}
		if n > 0 && len(sc.data)-vb.base >= room {
			sc.over = true
			return
		}
	}
	if len(sc.data)-vb.base >= len(s.needle) {
		iv := vb.view()
		iv.binary = true
		s.scan(sc, iv, depth+1)
	}
}

// wideView scans the UTF-16 runs of v with their zero bytes dropped: a
// "charset=utf-16" JSON (either byte order), or UTF-16 text inside other
// data, holds the value's ASCII characters each beside a zero byte. A run
// is a stretch of (character, zero) pairs at one byte parity, at least as
// many as the value is long (big-endian text is the same pairs shifted by
// one byte). Text without zero bytes costs one IndexByte.
func (s *Scrubber) wideView(sc *scratch, v *view, depth int) {
	d := v.data
	if bytes.IndexByte(d, 0) < 0 {
		return
	}
	vb := newBuilder(sc, v)
	defer vb.pop()
	for parity := 0; parity < 2; parity++ {
		start := -1
		flush := func(end int) {
			if start >= 0 && (end-start)/2 >= len(s.needle) {
				for j := start; j < end; j += 2 {
					vb.emit(d[j], j, j+2)
				}
			}
			start = -1
		}
		j := parity
		for ; j+1 < len(d); j += 2 {
			if d[j] != 0 && d[j+1] == 0 {
				if start < 0 {
					start = j
				}
				continue
			}
			flush(j)
		}
		flush(j)
	}
	if len(sc.data)-vb.base < len(s.needle) {
		return
	}
	wv := vb.view()
	wv.wide = true
	s.scan(sc, wv, depth+1)
}
