package injector

import (
	"io"
	"net/http"

	"credvault/internal/credvault"
)

// responseScrubber is what Do applies to a response: a Scrubber, or
// several in turn.
type responseScrubber interface {
	Header(h http.Header)
	String(v string) string
	Contains(v string) bool
	Reader(r io.ReadCloser) io.ReadCloser
}

// scrubberFor returns what scrubs the responses of a call made with pol:
// the value's Scrubber, and for placement basic first one for the
// "username:value" pair too, because the pair's base64 is what travels and
// what an upstream echoing the Authorization header sends back (the
// value's own Scrubber only finds the middle of that encoding, and only for
// values of 8 bytes or more). The pair goes first, so that it is found
// whole before the value inside it is redacted.
func scrubberFor(pol *policy, value credvault.Secret) responseScrubber {
	s := NewScrubber(value)
	if pol.placement != credvault.PlacementBasic {
		return s
	}
	return scrubChain{NewScrubber(credvault.NewSecret(pol.username + ":" + value.Reveal())), s}
}

// scrubChain applies each Scrubber in order.
type scrubChain []*Scrubber

func (c scrubChain) Header(h http.Header) {
	for _, s := range c {
		s.Header(h)
	}
}

func (c scrubChain) String(v string) string {
	for _, s := range c {
		v = s.String(v)
	}
	return v
}

func (c scrubChain) Contains(v string) bool {
	for _, s := range c {
		if s.Contains(v) {
			return true
		}
	}
	return false
}

func (c scrubChain) Reader(r io.ReadCloser) io.ReadCloser {
	for _, s := range c {
		r = s.Reader(r)
	}
	return r
}
