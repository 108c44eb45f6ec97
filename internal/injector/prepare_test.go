package injector

import (
	"testing"
	"time"

	"credvault/internal/credvault"
)

// TestPrepareOncePerCachedCredential: the parsed placement, allowed_hosts
// and scrubber are built once per cached copy of a credential and reused;
// a different value (a rotation the cache has not seen yet) or an uncached
// credential gets state built for it, never the cached one.
func TestPrepareOncePerCachedCredential(t *testing.T) {
	vc := credvault.NewValueCache(time.Minute)
	c := &credvault.Credential{ID: "c1", Placement: credvault.PlacementBearer, AllowedHosts: []string{"api.example"}, BaseURL: "https://api.example"}
	vc.Put(c, credvault.NewSecret("value-one-123"), vc.Generation())
	cached, v, _ := vc.Get("c1")
	p1, err := prepare(cached, v)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := prepare(cached, v)
	if p1 != p2 {
		t.Fatal("state rebuilt for the same cached credential and value")
	}
	p3, _ := prepare(cached, credvault.NewSecret("value-two-456"))
	if p3 == p1 || p3.value != "value-two-456" || p3.scrub.String("value-two-456") == "value-two-456" {
		t.Fatal("state of the old value reused for a new one")
	}
	plain := &credvault.Credential{ID: "c2", Placement: credvault.PlacementBearer, AllowedHosts: []string{"api.example"}}
	q1, _ := prepare(plain, v)
	q2, _ := prepare(plain, v)
	if q1 == q2 {
		t.Fatal("uncached credential kept state")
	}
	bad := &credvault.Credential{ID: "c3", Placement: credvault.PlacementBearer}
	vc.Put(bad, v, vc.Generation())
	b, _, _ := vc.Get("c3")
	if _, err := prepare(b, v); err == nil || b.Memo().Outbound() != nil {
		t.Fatalf("unusable credential: err %v, memo %v", err, b.Memo().Outbound())
	}
}
