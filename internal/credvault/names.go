package credvault

import (
	"fmt"
	"unicode"
)

// HiddenRune returns the first character of s that a human-readable name
// (a credential, key, integration, member, endpoint or OAuth app name, a
// key's agent or tags, a webhook's description) may not hold, and true;
// or 0 and false when s is printable text. Refused are:
//   - control characters (general category Cc: C0 U+0000–U+001F, DEL
//     U+007F, C1 U+0080–U+009F), which start terminal escape sequences or
//     forge lines and columns where the name is shown;
//   - format characters (Cf), among them the bidirectional embeddings,
//     overrides and isolates U+202A–U+202E and U+2066–U+2069 (Unicode
//     UAX #9), which reorder the text that follows on screen, the marks
//     U+200E, U+200F and U+061C, and the zero-width U+200B–U+200D, U+2060
//     and U+FEFF, which make two names look alike;
//   - the line and paragraph separators U+2028 and U+2029 (Zl, Zp);
//   - the other default-ignorable characters that render as nothing, such
//     as the Hangul fillers U+115F and U+3164 (Unicode
//     Other_Default_Ignorable_Code_Point).
//
// Variation selectors stay allowed (emoji presentation, U+FE0F). The
// API's validator (tag printable_name) and the console's forms follow this
// one rule.
func HiddenRune(s string) (rune, bool) {
	for _, r := range s {
		if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point) {
			return r, true
		}
	}
	return 0, false
}

// CheckPrintable checks each field's value with HiddenRune; fields are
// name, value pairs, checked in order. Errors: EINVALID naming the first
// field that fails and the code point (never the character itself).
func CheckPrintable(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if r, bad := HiddenRune(fields[i+1]); bad {
			return Errorf(EINVALID, "%s", PrintableMessage(fields[i], r))
		}
	}
	return nil
}

// PrintableMessage is the refusal of field for holding r, as both the API
// and the console word it.
func PrintableMessage(field string, r rune) string {
	return fmt.Sprintf("field %q holds U+%04X, a control or invisible formatting character; use printable text only", field, r)
}
