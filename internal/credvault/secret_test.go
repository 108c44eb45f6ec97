package credvault

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	const planted = "sk_live_51HxPLANTED"
	s := NewSecret(planted)
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%10s", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, s))
		outs = append(outs, fmt.Sprintf(verb, struct{ S Secret }{s}))
		outs = append(outs, fmt.Sprintf(verb, &s))
	}
	j, err := json.Marshal(map[string]any{"s": s, "p": &s, "in": struct{ S Secret }{s}})
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j), s.String(), s.GoString())
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "secret", s, "group", slog.Any("s", s))
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "secret", s)
	outs = append(outs, logs.String())
	for _, o := range outs {
		if strings.Contains(o, planted) || strings.Contains(o, fmt.Sprintf("%x", planted)) {
			t.Fatalf("secret printed: %s", o)
		}
	}
	if s.Reveal() != planted {
		t.Fatalf("Reveal() = %q, want the value", s.Reveal())
	}
}

func TestErrorHelpers(t *testing.T) {
	cause := fmt.Errorf("dial tcp: refused")
	err := fmt.Errorf("outer: %w", Wrap(EUNAVAILABLE, cause, "postgres is not answering"))
	if got := ErrorCode(err); got != EUNAVAILABLE {
		t.Errorf("ErrorCode = %q, want %q", got, EUNAVAILABLE)
	}
	if got := ErrorMessage(err); got != "postgres is not answering" {
		t.Errorf("ErrorMessage = %q", got)
	}
	if got := ErrorCode(fmt.Errorf("plain")); got != EINTERNAL {
		t.Errorf("plain error code = %q, want EINTERNAL", got)
	}
	if got := ErrorMessage(fmt.Errorf("driver detail")); got != "internal error" {
		t.Errorf("plain error message = %q, want a generic text", got)
	}
	if ErrorCode(nil) != "" {
		t.Errorf("ErrorCode(nil) not empty")
	}
}
