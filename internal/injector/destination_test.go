package injector

import (
	"net/url"
	"strings"
	"testing"
)

// TestCheckDestinationRefusesNumericHostForms: a webhook URL whose host is
// an IPv4 address in one of the shorthand forms that inet_aton-style
// resolvers and WHATWG URL parsers accept (one to three parts, octal with a
// leading 0, hex with 0x, a single 32-bit number) must be refused when it is
// stored, exactly like the dotted-decimal address it stands for; a host whose
// last label is numeric but is no address at all is refused too. Pure
// function: nothing is resolved or dialled.
func TestCheckDestinationRefusesNumericHostForms(t *testing.T) {
	for _, raw := range []string{
		"http://127.1/", "http://2130706433/", "http://0177.0.0.1/", "http://0x7f.1/",
		"http://0x7f000001/", "http://0251.0376.0251.0376/", "http://169.254.43518/",
		"http://017700000001./", "http://1.2.3.4.5/", "http://10.0.0.256/",
		"http://1.2.3/", // public, but not dotted-decimal: what it reaches depends on the resolver
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		err = CheckDestination(u, false)
		if err == nil {
			t.Errorf("%s: stored, want refused", raw)
			continue
		}
		if !strings.Contains(err.Error(), "egress") && !strings.Contains(err.Error(), "not public") && !strings.Contains(err.Error(), "dotted") {
			t.Errorf("%s: %v does not say why", raw, err)
		}
	}
	for _, raw := range []string{"https://93.184.216.34/", "https://hooks.example.com/x", "https://a1.example.com/", "https://example.123abc/"} {
		u, _ := url.Parse(raw)
		if err := CheckDestination(u, false); err != nil {
			t.Errorf("%s: refused: %v", raw, err)
		}
	}
}
