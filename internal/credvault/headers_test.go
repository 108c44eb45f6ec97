package credvault

import (
	"strings"
	"testing"
)

// checkInvalid fails t unless err is EINVALID and its message names field
// and contains every one of want.
func checkInvalid(t *testing.T, err error, field string, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want an error naming %q", field)
	}
	if ErrorCode(err) != EINVALID {
		t.Fatalf("code = %q, want %q (%v)", ErrorCode(err), EINVALID, err)
	}
	msg := ErrorMessage(err)
	if !strings.Contains(msg, `"`+field+`"`) {
		t.Errorf("message %q does not name field %q", msg, field)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q does not contain %q", msg, w)
		}
	}
}

func TestCheckParamNameAccepts(t *testing.T) {
	tests := []struct {
		placement, name string
		reserved        []string
	}{
		{"header", "X-API-Key", nil},
		{"header", "x-api-key", nil},
		{"header", "Authorization", nil},
		{"header", "Cookie", nil},
		{"header", "X-Auth-Token", []string{"X-Api-Key"}},
		{"header", "Api-Key", []string{"", " "}},
		{"header", "!#$%&'*+-.^_`|~09azAZ", nil},
		{"header", strings.Repeat("a", 64), nil},
		{"header", "X-Credvault", nil}, // only the "X-Credvault-" prefix is reserved
		{"query", "key", nil},
		{"query", "api_key", nil},
		{"query", "access.token-v2", nil},
		{"query", strings.Repeat("k", 64), nil},
		{"bearer", "", nil},
		{"bearer", "", []string{"Authorization"}},
	}
	for _, tt := range tests {
		t.Run(tt.placement+"/"+tt.name, func(t *testing.T) {
			if err := CheckParamName(tt.placement, tt.name, tt.reserved); err != nil {
				t.Fatalf("CheckParamName(%q, %q, %q): %v", tt.placement, tt.name, tt.reserved, err)
			}
		})
	}
}

func TestCheckParamNameRefuses(t *testing.T) {
	reserved := []string{
		"Host", "Content-Length", "Content-Type", "Transfer-Encoding", "Connection",
		"Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
		"TE", "Trailer", "Upgrade", "Expect", "Forwarded", "X-Forwarded-For",
		"X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip",
	}
	for _, h := range reserved {
		for _, spelling := range []string{h, strings.ToLower(h), strings.ToUpper(h)} {
			t.Run("reserved/"+spelling, func(t *testing.T) {
				checkInvalid(t, CheckParamName("header", spelling, nil), "param_name", "reserved header "+h)
			})
		}
	}
	tests := []struct {
		placement, name string
		reserved        []string
		want            string
	}{
		{"header", "Content-length", nil, "reserved header Content-Length"},
		{"header", "X-Credvault-Anything", nil, "reserved header"},
		{"header", "x-credvault-target", nil, "X-Credvault-"},
		{"header", "X-Api-Key", []string{"X-Api-Key"}, "reserved header"},
		{"header", "X-API-KEY", []string{"Authorization", " x-api-key "}, "reserved header"},
		{"header", "nected-api-key", []string{"nected-api-key"}, "reserved header"},
		{"header", "Authorization", []string{"X-API-Key", "Authorization"}, "reserved header"},
		{"header", "", nil, "required"},
		{"header", "X-Key\r", nil, "CR/LF not allowed"},
		{"header", "X-Key\nX-Other", nil, "CR/LF not allowed"},
		{"header", "X-Key\r\nX-Other: 1", nil, "CR/LF not allowed"},
		{"header", "X-Key\x00", nil, "NUL not allowed"},
		{"header", "X Key", nil, "not a valid header name"},
		{"header", "X-Key:", nil, "not a valid header name"},
		{"header", "X-Kéy", nil, "not a valid header name"},
		{"header", "X-Key\t", nil, "not a valid header name"},
		{"header", "(key)", nil, "not a valid header name"},
		{"header", strings.Repeat("a", 65), nil, "64"},
		{"query", "", nil, "required"},
		{"query", "key\r\n", nil, "CR/LF not allowed"},
		{"query", "key\x00", nil, "NUL not allowed"},
		{"query", "key=1", nil, "query parameter"},
		{"query", "a&b", nil, "query parameter"},
		{"query", "a b", nil, "query parameter"},
		{"query", "k%20", nil, "query parameter"},
		{"query", strings.Repeat("k", 65), nil, "64"},
		{"bearer", "Authorization", nil, "must be empty"},
		{"bearer", "X-Token", nil, "must be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.placement+"/"+tt.name, func(t *testing.T) {
			checkInvalid(t, CheckParamName(tt.placement, tt.name, tt.reserved), "param_name", tt.want)
		})
	}
}

func TestCheckPlacement(t *testing.T) {
	for _, p := range []string{"", "Header", "HEADER", "cookie", "Basic", "body"} {
		t.Run(p, func(t *testing.T) {
			checkInvalid(t, CheckParamName(p, "X-Key", nil), "placement", "header", "query", "bearer", "basic")
			checkInvalid(t, CheckValuePrefix(p, ""), "placement", "header", "query", "bearer", "basic")
		})
	}
}

func TestCheckValuePrefix(t *testing.T) {
	for _, tt := range []struct{ placement, prefix string }{
		{"header", ""},
		{"header", "Token "},
		{"header", "Basic "},
		{"header", "ApiKey key=\"x\", v=1 ~!@#$%^&*()"},
		{"header", strings.Repeat("p", 64)},
		{"query", ""},
		{"bearer", ""},
	} {
		if err := CheckValuePrefix(tt.placement, tt.prefix); err != nil {
			t.Errorf("CheckValuePrefix(%q, %q): %v", tt.placement, tt.prefix, err)
		}
	}
	for _, tt := range []struct{ placement, prefix, want string }{
		{"header", "Token\r", "CR/LF not allowed"},
		{"header", "Token\n", "CR/LF not allowed"},
		{"header", "Token\r\nX-Injected: 1\r\n", "CR/LF not allowed"},
		{"header", "Token\x00", "NUL not allowed"},
		{"header", "Token\t", "printable ASCII"},
		{"header", "Token\x7f", "printable ASCII"},
		{"header", "Tökén ", "printable ASCII"},
		{"header", strings.Repeat("p", 65), "64"},
		{"query", "Token ", "only used with placement header"},
		{"bearer", "Bearer ", "only used with placement header"},
	} {
		t.Run(tt.placement+"/"+tt.prefix, func(t *testing.T) {
			checkInvalid(t, CheckValuePrefix(tt.placement, tt.prefix), "value_prefix", tt.want)
		})
	}
}

func TestCheckSecretValue(t *testing.T) {
	for _, v := range []string{
		"sk_live_51H8abcdefghijklmnop",
		"12345678",
		"xoxb-123-456-abc",
		"key with spaces and ~!@#$%^&*()",
		"пароль-ключ-🔑",
		strings.Repeat("v", 8192),
	} {
		if err := CheckSecretValue(v); err != nil {
			t.Errorf("CheckSecretValue(len %d): %v", len(v), err)
		}
	}
	for _, tt := range []struct{ value, want string }{
		{"", "required"},
		{"x", "at least 8 bytes"},
		{"sk_1234", "at least 8 bytes"},
		{strings.Repeat("v", 8193), "8192"},
		{"sk_live_PLANTED\r\n", "line break"},
		{"sk_live_PLANTED\n", "line break"},
		{"sk_live_PLANTED\r\nX: y", "CR/LF not allowed"},
		{"sk_live_PLANTED\rX", "CR/LF not allowed"},
		{"sk_live_PLANTED\nX", "CR/LF not allowed"},
		{"sk_live_PLANTED\x00X", "NUL not allowed"},
		{"sk_live_PLANTED\tX", "control characters"},
		{"sk_live_PLANTED\x1bX", "control characters"},
		{"sk_live_PLANTED\x7fX", "control characters"},
		{"sk_live_PLANTED\xffX", "UTF-8"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			err := CheckSecretValue(tt.value)
			checkInvalid(t, err, "value", tt.want)
			if tt.value != "" {
				for _, text := range []string{ErrorMessage(err), err.Error()} {
					if strings.Contains(text, "PLANTED") || strings.Contains(text, "sk_live") || strings.Contains(text, "vvvv") {
						t.Errorf("error text reveals the value: %q", text)
					}
				}
			}
		})
	}
}

// TestErrorsNeverHoldTheValue plants a recognisable secret in every input
// of the header checks and makes sure no error message repeats it.
func TestErrorsNeverHoldTheValue(t *testing.T) {
	const planted = "sk_live_PLANTED\r\nX: y"
	errs := []error{
		CheckSecretValue(planted),
		CheckSecretValue(planted + strings.Repeat("z", 9000)),
		CheckValuePrefix("header", planted),
		CheckValuePrefix("query", planted),
		CheckParamName("header", planted, nil),
		CheckParamName("query", planted, nil),
		CheckParamName("bearer", planted, nil),
	}
	for i, err := range errs {
		if err == nil {
			t.Fatalf("case %d accepted the planted value", i)
		}
		for _, text := range []string{ErrorMessage(err), err.Error()} {
			if strings.Contains(text, "PLANTED") {
				t.Errorf("case %d: error text reveals the value: %q", i, text)
			}
		}
	}
}

func TestHint(t *testing.T) {
	tests := []struct{ value, want string }{
		{"", "••••"},
		{"short", "••••"},
		{"12345678901", "••••"},             // 11 characters
		{"123456789012", "••••9012"},        // 12 characters
		{"sk_live_51H8xyzABCD", "••••ABCD"}, // typical key
		{"ключ-секрет-тест", "••••тест"},    // counts characters, not bytes
		{"ключ-ключ", "••••"},               // 9 characters in 17 bytes
		{"abcdefghij🔑🔑", "••••ij🔑🔑"},
	}
	for _, tt := range tests {
		if got := Hint(tt.value); got != tt.want {
			t.Errorf("Hint(%q) = %q, want %q", tt.value, got, tt.want)
		}
	}
}
