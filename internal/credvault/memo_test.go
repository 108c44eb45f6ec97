package credvault

import (
	"testing"
	"time"
)

// TestValueCacheMemo: a credential the value cache keeps carries a Memo,
// shared by every hit, and an invalidation drops it with the entry: the
// copy cached after it starts with an empty Memo, so nothing derived from
// the old value or settings survives a change.
func TestValueCacheMemo(t *testing.T) {
	vc := NewValueCache(time.Minute)
	c := &Credential{ID: "c1", BaseURL: "https://api.example/v1"}
	vc.Put(c, NewSecret("old-value"), vc.Generation())
	got, _, ok := vc.Get("c1")
	if !ok || got.Memo() == nil {
		t.Fatalf("cached credential has no memo (hit %v)", ok)
	}
	got.Memo().SetOutbound("derived from old-value")
	u1, err := got.baseURL()
	if err != nil {
		t.Fatal(err)
	}
	again, _, _ := vc.Get("c1")
	if again.Memo().Outbound() != "derived from old-value" {
		t.Fatalf("second hit lost the memo: %v", again.Memo().Outbound())
	}
	if u2, _ := again.baseURL(); u2 != u1 {
		t.Fatal("base_url parsed again on a cached credential")
	}

	vc.Invalidate("cred:c1")
	if _, _, ok := vc.Get("c1"); ok {
		t.Fatal("hit after invalidation")
	}
	fresh := &Credential{ID: "c1", BaseURL: "https://api.example/v2"}
	vc.Put(fresh, NewSecret("new-value"), vc.Generation())
	got, _, _ = vc.Get("c1")
	if got.Memo().Outbound() != nil {
		t.Fatalf("memo survived the invalidation: %v", got.Memo().Outbound())
	}
	if u, _ := got.baseURL(); u.Path != "/v2" {
		t.Fatalf("base_url after the change: %v", u)
	}

	// Uncached credentials have no memo and derive per call.
	var plain Credential
	if plain.Memo() != nil || plain.Memo().Outbound() != nil {
		t.Fatal("uncached credential has a memo")
	}
	plain.Memo().SetOutbound("x") // a nil Memo keeps nothing, without panicking
}
