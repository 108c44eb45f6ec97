package credvault

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestWithCallerCopy checks that WithCallerCopy's context answers as
// WithCaller's does (principal, request id, the parent's values,
// deadline and cancellation), that the id is a copy of the caller's bytes,
// and that it costs one allocation for an id of up to callerIDInline
// bytes.
func TestWithCallerCopy(t *testing.T) {
	type otherKey struct{}
	parent, cancel := context.WithTimeout(context.WithValue(context.Background(), otherKey{}, "kept"), time.Hour)
	defer cancel()
	p := Principal{OrgID: "org", UserID: "user", KeyID: "key", Kind: KeyKindUser, Role: RoleAdmin, Scopes: []string{"credentials:use"}}
	for _, id := range []string{"", "5087e36b6aef-4", strings.Repeat("a", callerIDInline), strings.Repeat("b", callerIDInline+1), strings.Repeat("c", 128)} {
		buf := []byte(id)
		ctx := WithCallerCopy(parent, p, buf)
		for i := range buf {
			buf[i] = 'x' // the caller reuses its buffer
		}
		got := PrincipalFrom(ctx)
		if got == nil || got.OrgID != p.OrgID || got.UserID != p.UserID || got.KeyID != p.KeyID || got.Kind != p.Kind || got.Role != p.Role || len(got.Scopes) != 1 {
			t.Fatalf("id %q: principal %+v, want %+v", id, got, p)
		}
		if PrincipalFrom(ctx) != got {
			t.Errorf("id %q: PrincipalFrom gives a different pointer each time", id)
		}
		if rid := RequestIDFrom(ctx); rid != id {
			t.Errorf("request id %q, want %q", rid, id)
		}
		if v, _ := ctx.Value(otherKey{}).(string); v != "kept" {
			t.Errorf("id %q: parent's value %q, want kept", id, v)
		}
		if d, ok := ctx.Deadline(); !ok || d.IsZero() {
			t.Errorf("id %q: the parent's deadline is lost", id)
		}
		// WithPrincipal keeps the id.
		if rid := RequestIDFrom(WithPrincipal(ctx, &Principal{OrgID: "other"})); rid != id {
			t.Errorf("WithPrincipal: request id %q, want %q", rid, id)
		}
		if s := fmt.Sprint(ctx); strings.Contains(s, "org") || strings.Contains(s, "credentials:use") {
			t.Errorf("printing the context shows the principal: %s", s)
		}
	}
	child, stop := context.WithCancel(WithCallerCopy(parent, p, []byte("id")))
	defer stop()
	cancel()
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("canceling the parent did not reach a child of WithCallerCopy's context")
	}
	id := []byte("5087e36b6aef-4")
	if n := testing.AllocsPerRun(100, func() { _ = WithCallerCopy(context.Background(), p, id) }); n != 1 {
		t.Errorf("WithCallerCopy: %v allocations, want 1", n)
	}
}
