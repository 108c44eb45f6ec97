package credvault

import (
	"strings"
	"unicode/utf8"
)

// Limits on the parts of a credential that end up in an outbound request.
const (
	maxParamNameLen   = 64
	maxValuePrefixLen = 64
	maxSecretValueLen = 8192
	// MinSecretValueLen is the shortest credential value credvault stores
	// (bytes). The proxy scrubs a value from upstream responses in many
	// encodings; a shorter value would match ordinary text (and its hex or
	// base64 forms random data) so often that it could not be scrubbed
	// reliably, and no real API key is that short.
	MinSecretValueLen = 8
)

// reservedHeaders are headers a credential may never set: the transport
// owns them (framing, connection management), or upstreams trust them to
// describe the client or the proxy path. Keys are lower-case.
var reservedHeaders = map[string]string{
	"host":                "Host",
	"content-length":      "Content-Length",
	"content-type":        "Content-Type",
	"transfer-encoding":   "Transfer-Encoding",
	"connection":          "Connection",
	"keep-alive":          "Keep-Alive",
	"proxy-authenticate":  "Proxy-Authenticate",
	"proxy-authorization": "Proxy-Authorization",
	"proxy-connection":    "Proxy-Connection",
	"te":                  "TE",
	"trailer":             "Trailer",
	"upgrade":             "Upgrade",
	"expect":              "Expect",
	"forwarded":           "Forwarded",
	"x-forwarded-for":     "X-Forwarded-For",
	"x-forwarded-host":    "X-Forwarded-Host",
	"x-forwarded-proto":   "X-Forwarded-Proto",
	"x-real-ip":           "X-Real-Ip",
}

// credvaultHeaderPrefix starts the headers credvault itself reads and
// writes (X-Credvault-Target, X-Credvault-Workflow-Id, ...).
const credvaultHeaderPrefix = "x-credvault-" // #nosec G101 -- column or header names, not a credential

// checkPlacement refuses anything but the three placements: "header"
// (param_name: value_prefix+value), "query" (?param_name=value) and
// "bearer" (Authorization: Bearer value).
func checkPlacement(placement string) error {
	switch placement {
	case "header", "query", "bearer", "basic":
		return nil
	}
	return Errorf(EINVALID, "field \"placement\" must be one of: header query bearer basic (got %s)", quoteEntry(placement))
}

// CheckParamName validates param_name for a placement, because the name
// goes verbatim into an outbound request: for "header" it must be an
// RFC 7230 token (letters, digits and !#$%&'*+-.^_`|~) of 1 to 64
// characters that is not a transport, hop-by-hop or forwarding header, not
// an X-Credvault-* header and not one of reserved (credvault's own
// authentication headers, compared case-insensitively); for "query" it must
// be 1 to 64 characters of [A-Za-z0-9_.-]; for "bearer" it must be empty,
// since the header is always Authorization. Cookie and Authorization are
// allowed for "header".
//
// It returns EINVALID naming "param_name" and the reason, or naming
// "placement" when placement is not header, query or bearer.
func CheckParamName(placement, name string, reserved []string) error {
	if err := checkPlacement(placement); err != nil {
		return err
	}
	if placement == "bearer" || placement == "basic" {
		if name != "" {
			return Errorf(EINVALID, "field \"param_name\" must be empty for placement %s: the credential always goes in the Authorization header", placement)
		}
		return nil
	}
	if name == "" {
		return Errorf(EINVALID, "field \"param_name\" is required for placement %s", placement)
	}
	if strings.ContainsAny(name, "\r\n") {
		return Errorf(EINVALID, "field \"param_name\": CR/LF not allowed")
	}
	if strings.IndexByte(name, 0) >= 0 {
		return Errorf(EINVALID, "field \"param_name\": NUL not allowed")
	}
	if len(name) > maxParamNameLen {
		return Errorf(EINVALID, "field \"param_name\" is %d characters long; at most %d are allowed", len(name), maxParamNameLen)
	}
	if placement == "query" {
		for i := 0; i < len(name); i++ {
			c := name[i]
			if !(isAlnum(c) || c == '_' || c == '.' || c == '-') {
				return Errorf(EINVALID, "field \"param_name\" %s is not a valid query parameter name: use only letters, digits, '_', '.' and '-'", quoteEntry(name))
			}
		}
		return nil
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return Errorf(EINVALID, "field \"param_name\" %s is not a valid header name: use only letters, digits and !#$%%&'*+-.^_`|~", quoteEntry(name))
		}
	}
	if canon, ok := reservedHeaders[strings.ToLower(name)]; ok {
		return Errorf(EINVALID, "field \"param_name\": reserved header %s cannot carry a credential; choose the header the API documents, such as X-API-Key", canon)
	}
	if len(name) >= len(credvaultHeaderPrefix) && asciiEqualFold(name[:len(credvaultHeaderPrefix)], credvaultHeaderPrefix) {
		return Errorf(EINVALID, "field \"param_name\": reserved header %s: X-Credvault-* headers belong to credvault", name)
	}
	for _, r := range reserved {
		r = strings.TrimSpace(r)
		if r != "" && asciiEqualFold(name, r) {
			return Errorf(EINVALID, "field \"param_name\": reserved header %s carries credvault's own API keys and cannot carry a credential", r)
		}
	}
	return nil
}

// maxUsernameLen bounds a basic credential's username.
const maxUsernameLen = 256

// CheckUsername validates the username of a credential: required for
// placement basic and empty for every other. RFC 7617 §2: the user-id
// cannot contain a colon (the first colon ends it) or control characters.
// Errors: EINVALID naming "username".
func CheckUsername(placement, username string) error {
	if placement != PlacementBasic {
		if username != "" {
			return Errorf(EINVALID, "field \"username\" must be empty for placement %s; it is only used with placement basic", placement)
		}
		return nil
	}
	if username == "" {
		return Errorf(EINVALID, "field \"username\" is required for placement basic")
	}
	if len(username) > maxUsernameLen {
		return Errorf(EINVALID, "field \"username\" is %d bytes long; at most %d are allowed", len(username), maxUsernameLen)
	}
	if !utf8.ValidString(username) {
		return Errorf(EINVALID, "field \"username\" must be valid UTF-8")
	}
	for _, r := range username {
		if r == ':' {
			return Errorf(EINVALID, "field \"username\" cannot contain ':' (RFC 7617: the first colon separates it from the password)")
		}
		if r < 0x20 || r == 0x7f {
			return Errorf(EINVALID, "field \"username\": control characters are not allowed")
		}
	}
	return nil
}

// CheckValuePrefix validates value_prefix, the text put before the value in
// a header ("Token ", "Basic "). It only applies to placement header (for
// query and bearer it must be empty), has at most 64 bytes and only
// printable ASCII (0x20 to 0x7E), so that it cannot end the header line or
// smuggle another header.
//
// It returns EINVALID naming "value_prefix" and the reason, or naming
// "placement" when placement is not header, query or bearer.
func CheckValuePrefix(placement, prefix string) error {
	if err := checkPlacement(placement); err != nil {
		return err
	}
	if prefix == "" {
		return nil
	}
	if placement != "header" {
		return Errorf(EINVALID, "field \"value_prefix\" must be empty for placement %s; it is only used with placement header", placement)
	}
	if len(prefix) > maxValuePrefixLen {
		return Errorf(EINVALID, "field \"value_prefix\" is %d bytes long; at most %d are allowed", len(prefix), maxValuePrefixLen)
	}
	for i := 0; i < len(prefix); i++ {
		c := prefix[i]
		switch {
		case c == '\r' || c == '\n':
			return Errorf(EINVALID, "field \"value_prefix\": CR/LF not allowed")
		case c == 0:
			return Errorf(EINVALID, "field \"value_prefix\": NUL not allowed")
		case c < 0x20 || c > 0x7e:
			return Errorf(EINVALID, "field \"value_prefix\" may only hold printable ASCII characters (no control characters, tabs or non-ASCII text)")
		}
	}
	return nil
}

// CheckSecretValue validates a credential value before it is encrypted and
// stored: it is required, at least MinSecretValueLen (8) and at most 8192
// bytes, valid UTF-8, and free of
// control characters (CR, LF, NUL, anything below 0x20, and DEL), for every
// placement, because a value ends up in a header line or a URL where such
// characters would split or corrupt the request. Error messages never
// contain the value or any part of it.
//
// It returns EINVALID naming "value" and the reason.
func CheckSecretValue(value string) error {
	if value == "" {
		return Errorf(EINVALID, "field \"value\" is required: paste the API key or token")
	}
	if len(value) > maxSecretValueLen {
		return Errorf(EINVALID, "field \"value\" is %d bytes long; at most %d are allowed", len(value), maxSecretValueLen)
	}
	if len(value) < MinSecretValueLen {
		return Errorf(EINVALID, "field \"value\" must be at least %d bytes long: a shorter value cannot be told apart from ordinary text when credvault scrubs it from responses", MinSecretValueLen)
	}
	if !utf8.ValidString(value) {
		return Errorf(EINVALID, "field \"value\" must be valid UTF-8 text")
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c >= 0x20 && c != 0x7f {
			continue
		}
		if c == '\r' || c == '\n' {
			if strings.TrimRight(value[i:], "\r\n") == "" {
				return Errorf(EINVALID, "field \"value\" ends with a line break (CR/LF), probably from copy and paste; remove it")
			}
			return Errorf(EINVALID, "field \"value\": CR/LF not allowed (at byte %d); a credential value is a single line", i)
		}
		if c == 0 {
			return Errorf(EINVALID, "field \"value\": NUL not allowed (at byte %d)", i)
		}
		return Errorf(EINVALID, "field \"value\": control characters (tab, DEL and others below 0x20) not allowed (at byte %d)", i)
	}
	return nil
}

// hintMask stands for the hidden part of a value in listings.
const hintMask = "••••"

// Hint returns what listings show for a credential value, so that users can
// tell their credentials apart without the value ever being read back:
// "••••" followed by the value's last 4 characters when it has at least 12
// characters, and just "••••" otherwise (the end of a short secret would
// give away too much of it). It counts characters, not bytes, and cannot
// fail.
func Hint(value string) string {
	if utf8.RuneCountInString(value) < 12 {
		return hintMask
	}
	i := len(value)
	for n := 0; n < 4; n++ {
		_, size := utf8.DecodeLastRuneInString(value[:i])
		i -= size
	}
	return hintMask + value[i:]
}

// isAlnum reports whether c is an ASCII letter or digit.
func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// isTokenChar reports whether c may appear in an HTTP header name
// (an RFC 7230 token).
func isTokenChar(c byte) bool {
	if isAlnum(c) {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
