package credvault

import "testing"

// TestProxyPathRefusesInvisibleAndIdeographicDots: look-alikes of ".."
// that NFKC alone does not fold but other normalisers an upstream may run
// do: a default-ignorable character between or after dots (".\u200b.",
// "..\u00ad"), which NFKC_Casefold and UTS #46 mapping delete, and the
// ideographic and halfwidth ideographic full stops, which UTS #46 maps to
// ".". Text with such characters elsewhere that cannot join a dot segment
// stays refused too, as they have no place in an API path; ordinary
// non-ASCII text still passes.
func TestProxyPathRefusesInvisibleAndIdeographicDots(t *testing.T) {
	for _, p := range []string{
		"/a/.%e2%80%8b./b", "/a/%e2%80%8b../b", "/a/..%e2%80%8b/b", "/a/..%c2%ad/b", "/a/.%cd%8f./b",
		"/a/.%e2%80%8d./b", "/a/.%ef%bb%bf./b", "/a/.%e2%81%a0./b", "/a/.%ef%b8%8f./b",
		"/a/%e3%80%82%e3%80%82/b", "/a/%ef%bd%a1%ef%bd%a1/b", "/a/.%e3%80%82/b",
	} {
		err := CheckProxyPath(p)
		if ErrorCode(err) != EINVALID || ErrorReason(err) != "invalid_path" {
			t.Errorf("%q: got %v, want invalid_path", p, err)
		}
	}
	for _, p := range []string{"/caf%C3%A9", "/%E6%97%A5%E6%9C%AC/x", "/%F0%9F%94%91", "/a%c2%b7b"} {
		if err := CheckProxyPath(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
}
