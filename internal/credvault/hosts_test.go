package credvault

import (
	"strings"
	"testing"
)

func TestParseHostPatternsAccepts(t *testing.T) {
	tests := []struct {
		in   string
		want HostPattern
		text string
	}{
		{"api.stripe.com", HostPattern{Host: "api.stripe.com"}, "api.stripe.com"},
		{"API.Stripe.COM", HostPattern{Host: "api.stripe.com"}, "api.stripe.com"},
		{"api.stripe.com.", HostPattern{Host: "api.stripe.com"}, "api.stripe.com"},
		{"api.stripe.com:443", HostPattern{Host: "api.stripe.com", Port: "443"}, "api.stripe.com:443"},
		{"api.stripe.com.:8443", HostPattern{Host: "api.stripe.com", Port: "8443"}, "api.stripe.com:8443"},
		{"x.com:00080", HostPattern{Host: "x.com", Port: "80"}, "x.com:80"},
		{"x.com:65535", HostPattern{Host: "x.com", Port: "65535"}, "x.com:65535"},
		{"localhost", HostPattern{Host: "localhost"}, "localhost"},
		{"my-api.internal.example", HostPattern{Host: "my-api.internal.example"}, "my-api.internal.example"},
		{"127.0.0.1", HostPattern{Host: "127.0.0.1"}, "127.0.0.1"},
		{"127.0.0.1:9000", HostPattern{Host: "127.0.0.1", Port: "9000"}, "127.0.0.1:9000"},
		{"[::1]", HostPattern{Host: "::1"}, "[::1]"},
		{"[::1]:8443", HostPattern{Host: "::1", Port: "8443"}, "[::1]:8443"},
		{"[2001:DB8:0:0::1]:443", HostPattern{Host: "2001:db8::1", Port: "443"}, "[2001:db8::1]:443"},
		{"*.sendgrid.com", HostPattern{Host: "sendgrid.com", Wildcard: true}, "*.sendgrid.com"},
		{"*.SendGrid.com.", HostPattern{Host: "sendgrid.com", Wildcard: true}, "*.sendgrid.com"},
		{"*.sendgrid.com:8443", HostPattern{Host: "sendgrid.com", Port: "8443", Wildcard: true}, "*.sendgrid.com:8443"},
		{"*.example.co.uk", HostPattern{Host: "example.co.uk", Wildcard: true}, "*.example.co.uk"},
		{"*.myapp.github.io", HostPattern{Host: "myapp.github.io", Wildcard: true}, "*.myapp.github.io"},
		{"xn--bcher-kva.example", HostPattern{Host: "xn--bcher-kva.example"}, "xn--bcher-kva.example"},
		{strings.Repeat("a", 63) + ".com", HostPattern{Host: strings.Repeat("a", 63) + ".com"}, strings.Repeat("a", 63) + ".com"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseHostPatterns("allowed_hosts", []string{tt.in})
			if err != nil {
				t.Fatalf("ParseHostPatterns(%q): %v", tt.in, err)
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Fatalf("ParseHostPatterns(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if s := got[0].String(); s != tt.text {
				t.Fatalf("String() = %q, want %q", s, tt.text)
			}
			// The canonical text parses back to the same pattern.
			again, err := ParseHostPatterns("allowed_hosts", []string{tt.text})
			if err != nil || len(again) != 1 || again[0] != tt.want {
				t.Fatalf("round trip of %q = %+v, %v", tt.text, again, err)
			}
		})
	}
}

func TestParseHostPatternsRefuses(t *testing.T) {
	tests := []struct {
		in   string
		hint string // part of the reason
	}{
		{"", "empty"},
		{"*", "bare"},
		{"*.com", "public suffix"},
		{"*.co.uk", "public suffix"},
		{"*.github.io", "public suffix"},
		{"*.localhost", "public suffix"},
		{"https://api.x.com", "scheme"},
		{"http://api.x.com:80", "scheme"},
		{"api.x.com/path", "path"},
		{"api.x.com/", "path"},
		{"api.x.com?x=1", "query"},
		{"api.x.com#frag", "fragment"},
		{"a.*.com", "wildcard"},
		{"*.*.x.com", "wildcard"},
		{"*x.com", "wildcard"},
		{"x.*", "wildcard"},
		{"**.x.com", "wildcard"},
		{"x.com:0", "port"},
		{"x.com:99999", "port"},
		{"x.com:65536", "port"},
		{"x.com:abc", "port"},
		{"x.com:-1", "port"},
		{"x.com:", "port"},
		{"::1", "brackets"},
		{"2001:db8::1", "brackets"},
		{"[::1", "unclosed"},
		{"[::1]x", "after"},
		{"[fe80::1%eth0]", "IPv6"},
		{"[127.0.0.1]", "IPv6"},
		{"[x.com]", "IPv6"},
		{"*.[::1]", "IP address"},
		{"*.10.0.0.1", "IP address"},
		{"user@x.com", "user"},
		{"user:pw@x.com", "user"},
		{"exa mple.com", "whitespace"},
		{" x.com", "whitespace"},
		{"x.com\n", "whitespace"},
		{"x.com\x00", "control"},
		{"-bad.com", "'-'"},
		{"bad-.com", "'-'"},
		{"a..com", "empty label"},
		{".x.com", "empty label"},
		{"x_y.com", "letters, digits"},
		{"bücher.example", "xn--"},
		{strings.Repeat("a", 64) + ".com", "63"},
		{strings.Repeat("abcdefghi.", 26) + "com", "253"},
		{"127.1", "IPv4"},
		{"256.1.1.1", "IPv4"},
		{"1.2.3.04", "IPv4"},
		{"x.com]", "]"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseHostPatterns("allowed_hosts", []string{"ok.example.com", tt.in})
			if err == nil {
				t.Fatalf("ParseHostPatterns(%q) accepted it", tt.in)
			}
			if ErrorCode(err) != EINVALID {
				t.Fatalf("code = %q, want %q", ErrorCode(err), EINVALID)
			}
			msg := ErrorMessage(err)
			if !strings.Contains(msg, `"allowed_hosts"`) {
				t.Errorf("message %q does not name the field", msg)
			}
			if !strings.Contains(msg, "entry 1") {
				t.Errorf("message %q does not say which entry", msg)
			}
			if !strings.Contains(msg, tt.hint) {
				t.Errorf("message %q does not contain %q", msg, tt.hint)
			}
		})
	}
}

func TestParseHostPatternsList(t *testing.T) {
	got, err := ParseHostPatterns("allowed_hosts", []string{"b.example.com", "A.example.com", "b.example.com.", "a.example.com", "B.EXAMPLE.COM:443"})
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, p := range got {
		texts = append(texts, p.String())
	}
	if want := "b.example.com a.example.com b.example.com:443"; strings.Join(texts, " ") != want {
		t.Fatalf("got %v, want %s (duplicates dropped, order kept)", texts, want)
	}

	if got, err := ParseHostPatterns("allowed_hosts", nil); err != nil || len(got) != 0 {
		t.Fatalf("empty list: %v, %v", got, err)
	}

	many := make([]string, 51)
	for i := range many {
		many[i] = "h" + strings.Repeat("x", i) + ".example.com"
	}
	if _, err := ParseHostPatterns("allowed_hosts", many[:50]); err != nil {
		t.Fatalf("50 entries: %v", err)
	}
	_, err = ParseHostPatterns("allowed_hosts", many)
	if ErrorCode(err) != EINVALID || !strings.Contains(ErrorMessage(err), `"allowed_hosts"`) || !strings.Contains(ErrorMessage(err), "50") {
		t.Fatalf("51 entries: %v", err)
	}

	_, err = ParseHostPatterns("hosts", []string{"*"})
	if !strings.Contains(ErrorMessage(err), `"hosts"`) {
		t.Fatalf("the field name given is not used: %v", err)
	}

	long := strings.Repeat("z", 1000)
	_, err = ParseHostPatterns("allowed_hosts", []string{long})
	if err == nil || strings.Contains(ErrorMessage(err), long) {
		t.Fatalf("a long entry is not shortened in the message: %v", err)
	}
}

func mustPatterns(t testing.TB, entries ...string) []HostPattern {
	t.Helper()
	p, err := ParseHostPatterns("allowed_hosts", entries)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHostAllowed(t *testing.T) {
	tests := []struct {
		patterns []string
		scheme   string
		host     string
		want     bool
	}{
		// Exact names and case.
		{[]string{"api.stripe.com"}, "https", "api.stripe.com", true},
		{[]string{"api.stripe.com"}, "https", "API.Stripe.com", true},
		{[]string{"API.STRIPE.COM"}, "https", "api.stripe.com", true},
		{[]string{"api.stripe.com"}, "HTTPS", "api.stripe.com", true},
		{[]string{"api.stripe.com"}, "https", "api.stripe.com.", true},
		{[]string{"api.stripe.com"}, "https", "api.stripe.com.:443", true},
		{[]string{"api.stripe.com"}, "https", "api.stripe.org", false},
		{[]string{"api.stripe.com"}, "https", "stripe.com", false},
		{[]string{"api.stripe.com"}, "https", "x.api.stripe.com", false},
		{[]string{"api.stripe.com"}, "https", "evilapi.stripe.com", false},
		{[]string{"api.stripe.com"}, "https", "api.stripe.com.evil.com", false},
		{[]string{"api.stripe.com"}, "https", "api.stripe.co", false},
		{[]string{"api.stripe.com"}, "https", "api.stripe.com..", false},
		{[]string{"api.stripe.com"}, "https", "api.stripe.\u212aom", false}, // Kelvin sign
		{[]string{"api.stripe.com"}, "https", "", false},
		{[]string{"api.stripe.com"}, "https", ":443", false},
		{[]string{"api.stripe.com"}, "https", ".", false},
		{nil, "https", "api.stripe.com", false},

		// Default ports.
		{[]string{"api.stripe.com"}, "https", "api.stripe.com:443", true},
		{[]string{"api.stripe.com"}, "https", "api.stripe.com:80", false},
		{[]string{"api.stripe.com"}, "https", "api.stripe.com:8443", false},
		{[]string{"api.stripe.com"}, "http", "api.stripe.com", true},
		{[]string{"api.stripe.com"}, "http", "api.stripe.com:80", true},
		{[]string{"api.stripe.com"}, "http", "api.stripe.com:443", false},
		{[]string{"api.stripe.com"}, "https", "api.stripe.com:", true}, // empty port: the default
		{[]string{"api.stripe.com"}, "https", "api.stripe.com:0443", false},
		{[]string{"api.stripe.com"}, "https", "api.stripe.com:44x", false},

		// Explicit ports.
		{[]string{"127.0.0.1:9000"}, "http", "127.0.0.1:9000", true},
		{[]string{"127.0.0.1:9000"}, "https", "127.0.0.1:9000", true},
		{[]string{"127.0.0.1:9000"}, "http", "127.0.0.1:9001", false},
		{[]string{"127.0.0.1:9000"}, "http", "127.0.0.1", false},
		{[]string{"127.0.0.1"}, "http", "127.0.0.1", true},
		{[]string{"127.0.0.1"}, "http", "127.0.0.1:9000", false},
		{[]string{"127.0.0.1"}, "http", "127.0.0.2", false},
		{[]string{"api.stripe.com:443"}, "https", "api.stripe.com", true},
		{[]string{"api.stripe.com:443"}, "http", "api.stripe.com", false},
		{[]string{"api.stripe.com:8443"}, "https", "api.stripe.com:8443", true},
		{[]string{"api.stripe.com:8443"}, "https", "api.stripe.com", false},

		// IPv6.
		{[]string{"[::1]:8080"}, "http", "[::1]:8080", true},
		{[]string{"[::1]:8080"}, "http", "[0:0::1]:8080", true},
		{[]string{"[::1]:8080"}, "http", "[::1]:8081", false},
		{[]string{"[::1]:8080"}, "http", "[::2]:8080", false},
		{[]string{"[::1]"}, "http", "[::1]", true},
		{[]string{"[::1]"}, "https", "[::1]:443", true},
		{[]string{"[::1]"}, "http", "::1", false},
		{[]string{"[::1]"}, "http", "[::1]x", false},
		{[]string{"[::1]"}, "http", "[::1", false},
		{[]string{"[::1]"}, "http", "[fe80::1%25eth0]", false},
		{[]string{"[::ffff:127.0.0.1]"}, "http", "127.0.0.1", false},
		{[]string{"127.0.0.1"}, "http", "[::ffff:127.0.0.1]", false},

		// Wildcards: exactly one label.
		{[]string{"*.sendgrid.com"}, "https", "api.sendgrid.com", true},
		{[]string{"*.sendgrid.com"}, "https", "API.SendGrid.COM", true},
		{[]string{"*.sendgrid.com"}, "https", "api.sendgrid.com.", true},
		{[]string{"*.sendgrid.com"}, "https", "api.sendgrid.com:443", true},
		{[]string{"*.sendgrid.com"}, "https", "api.sendgrid.com:8443", false},
		{[]string{"*.sendgrid.com"}, "https", "sendgrid.com", false},
		{[]string{"*.sendgrid.com"}, "https", ".sendgrid.com", false},
		{[]string{"*.sendgrid.com"}, "https", "a.b.sendgrid.com", false},
		{[]string{"*.sendgrid.com"}, "https", "evilsendgrid.com", false},
		{[]string{"*.sendgrid.com"}, "https", "api.sendgrid.com.evil.com", false},
		{[]string{"*.sendgrid.com"}, "https", "a_b.sendgrid.com", false},
		{[]string{"*.sendgrid.com:8443"}, "https", "api.sendgrid.com:8443", true},
		{[]string{"*.sendgrid.com:8443"}, "https", "api.sendgrid.com", false},

		// Several patterns; other schemes.
		{[]string{"a.example.com", "*.sendgrid.com", "127.0.0.1:9000"}, "http", "127.0.0.1:9000", true},
		{[]string{"a.example.com", "*.sendgrid.com", "127.0.0.1:9000"}, "https", "eu.sendgrid.com", true},
		{[]string{"a.example.com", "*.sendgrid.com", "127.0.0.1:9000"}, "https", "b.example.com", false},
		{[]string{"api.stripe.com"}, "ftp", "api.stripe.com", false},
		{[]string{"api.stripe.com"}, "", "api.stripe.com", false},
		{[]string{"api.stripe.com"}, "wss", "api.stripe.com", false},
	}
	for _, tt := range tests {
		name := strings.Join(tt.patterns, ",") + " " + tt.scheme + "://" + tt.host
		t.Run(name, func(t *testing.T) {
			p := mustPatterns(t, tt.patterns...)
			if got := HostAllowed(p, tt.scheme, tt.host); got != tt.want {
				t.Fatalf("HostAllowed(%v, %q, %q) = %v, want %v", tt.patterns, tt.scheme, tt.host, got, tt.want)
			}
		})
	}
}

func TestHostAllowedDoesNotAllocate(t *testing.T) {
	p := mustPatterns(t, "api.stripe.com", "*.sendgrid.com", "127.0.0.1:9000", "[::1]:8443")
	cases := []struct{ scheme, host string }{
		{"https", "api.stripe.com"},
		{"https", "API.STRIPE.COM:443"},
		{"https", "api.sendgrid.com"},
		{"http", "127.0.0.1:9000"},
		{"https", "[::1]:8443"},
		{"https", "evil.example.com"},
		{"http", "a.b.sendgrid.com"},
	}
	for _, c := range cases {
		allocs := testing.AllocsPerRun(100, func() { HostAllowed(p, c.scheme, c.host) })
		if allocs != 0 {
			t.Errorf("HostAllowed(%q, %q) allocates %v times per call", c.scheme, c.host, allocs)
		}
	}
}

func BenchmarkHostAllowed(b *testing.B) {
	p := mustPatterns(b, "api.openai.com", "api.anthropic.com", "*.sendgrid.com", "127.0.0.1:9000", "api.stripe.com")
	b.Run("exact", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			HostAllowed(p, "https", "api.stripe.com")
		}
	})
	b.Run("wildcard", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			HostAllowed(p, "https", "api.sendgrid.com:443")
		}
	})
	b.Run("denied", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			HostAllowed(p, "https", "api.stripe.com.evil.example")
		}
	})
}
