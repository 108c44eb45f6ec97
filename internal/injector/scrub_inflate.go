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

// inflateViews looks in a binary view (decoded base64, hex or base32) for
// the start of a gzip or zlib stream and scans what it decompresses to,
// one layer deeper. Every decompressed byte is attributed to the whole
// rest of the view from the stream's start, so a match redacts the encoded
// stream from there on. Decompression stops at the view budget: a stream
// that would inflate past it (a compression bomb) makes the text count as
// holding the value, as other over-budget texts do.
func (s *Scrubber) inflateViews(sc *scratch, v *view, depth int) {
	d := v.data
	for i := 0; i+2 < len(d) && !sc.over; i++ {
		switch {
		case d[i] == 0x1f && d[i+1] == 0x8b && d[i+2] == 8:
			s.inflateAt(sc, v, i, formatGzip, depth)
		case d[i] == 0x78 && (uint16(d[i])<<8|uint16(d[i+1]))%31 == 0 && d[i+1]&0x20 == 0:
			s.inflateAt(sc, v, i, formatZlib, depth)
		}
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
		s.scan(sc, vb.view(), depth+1)
	}
}

// wideView scans v with its zero bytes dropped when at least a quarter of
// its bytes are zero: UTF-16 text (a "charset=utf-16" JSON, either byte
// order) or UTF-32 holds the value's ASCII characters with a zero beside
// each, which this view puts back together. It costs one pass over v
// (bytes.Count) when v is not such text.
func (s *Scrubber) wideView(sc *scratch, v *view, depth int) {
	d := v.data
	zeros := bytes.Count(d, []byte{0})
	if zeros == 0 || 4*zeros < len(d) {
		return
	}
	vb := newBuilder(sc, v)
	defer vb.pop()
	for i, c := range d {
		if c != 0 {
			vb.emit(c, i, i+1)
		}
	}
	wv := vb.view()
	wv.wide = true
	s.scan(sc, wv, depth+1)
}
