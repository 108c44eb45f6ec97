package credvault

import "testing"

// TestProxyPathChecksASCIIAfterNonASCII: a non-ASCII character earlier in
// the path does not end the check of the bytes after it: a backslash
// (raw or encoded, which IIS reads as "/", so that "é/..\..\admin" climbs
// out of base_url's path) or a control character that follows ordinary
// non-ASCII text is refused as it is without it.
func TestProxyPathChecksASCIIAfterNonASCII(t *testing.T) {
	for _, p := range []string{
		"/caf%C3%A9/..%5C..%5Cadmin", "/%C3%A9/..\\admin", "/%E6%97%A5/a%5Cb",
		"/caf%C3%A9/a%0d%0ab", "/%C3%A9%00", "/%C3%A9/%7f", "/%C3%A9%09x",
	} {
		err := CheckProxyPath(p)
		if ErrorCode(err) != EINVALID || ErrorReason(err) != "invalid_path" {
			t.Errorf("%q: got %v, want invalid_path", p, err)
		}
	}
	for _, p := range []string{"/caf%C3%A9/x/y", "/%E6%97%A5%E6%9C%AC/x;v=1/%C3%BC"} {
		if err := CheckProxyPath(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
}
