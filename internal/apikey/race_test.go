package apikey_test

import (
	"context"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"credvault/internal/apikey"
	"credvault/internal/credvault"
	"credvault/internal/postgres"
	"credvault/internal/postgres/pgtest"
)

// heldStore is the real store whose first key lookup, once armed, reads
// PostgreSQL and then holds its answer until released: a read whose
// reply is still on its way (a slow network, a TCP stall) while the key
// changes. Later lookups go straight through.
type heldStore struct {
	*postgres.Store
	mu      sync.Mutex
	armed   bool
	read    chan struct{} // closed when the held lookup has read
	release chan struct{}
	lookups int
}

func (s *heldStore) arm() {
	s.mu.Lock()
	s.armed, s.read, s.release = true, make(chan struct{}), make(chan struct{})
	s.mu.Unlock()
}

func (s *heldStore) FindAuthKeyByHash(ctx context.Context, h [32]byte) (*credvault.AuthKey, error) {
	s.mu.Lock()
	hold := s.armed
	s.armed = false
	s.lookups++
	read, release := s.read, s.release
	s.mu.Unlock()
	ak, err := s.Store.FindAuthKeyByHash(ctx, h)
	if hold {
		close(read)
		<-release
	}
	return ak, err
}

func newHeldVerifier(t *testing.T) (*heldStore, *apikey.Verifier, *credvault.BootstrapResult, func(string, ...any)) {
	t.Helper()
	db, _ := pgtest.New(t)
	store := postgres.NewStore(db)
	res, err := credvault.Bootstrap(context.Background(), store, apikey.Minter{Prefix: "cv"}, "race", "owner@race.test")
	if err != nil {
		t.Fatal(err)
	}
	hs := &heldStore{Store: store}
	v := apikey.NewVerifier(hs, apikey.NewLocalLimiter(), apikey.VerifierOptions{Prefix: "cv", CacheTTL: time.Hour})
	v.Reset(context.Background())
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	return hs, v, res, exec
}

type verifyResult struct {
	code string
	err  error
}

func verifyAsync(v *apikey.Verifier, key string) chan verifyResult {
	ch := make(chan verifyResult, 1)
	go func() {
		got, err := v.Verify(context.Background(), key)
		ch <- verifyResult{got.Code, err}
	}()
	return ch
}

// TestVerifierInvalidationNotAnsweredByEarlierRead: a verification that
// begins after a key's invalidation was applied (its revocation committed
// and acknowledged; the payload came by NOTIFY or Redis) must not be
// answered by a database read that began before the revocation and is
// still on its way. It joined that read (one read per hash at a time) and
// was answered VALID from it.
func TestVerifierInvalidationNotAnsweredByEarlierRead(t *testing.T) {
	hs, v, res, exec := newHeldVerifier(t)
	key := res.APIKey.Reveal()
	h := apikey.Hash(key)
	hs.arm()
	first := verifyAsync(v, key) // reads the key while it is valid, reply held
	<-hs.read
	exec(`UPDATE api_keys SET revoked_at = now() WHERE key_hash = $1`, h[:])
	v.Invalidate("key:" + hex.EncodeToString(h[:]))

	second := verifyAsync(v, key) // begins after the invalidation
	var got verifyResult
	select {
	case got = <-second:
	case <-time.After(time.Second):
		// It waits for the held read: release it and take its answer.
		close(hs.release)
		got = <-second
	}
	if got.err != nil || got.code != credvault.VerifyRevoked {
		t.Errorf("verification begun after the invalidation: %s %v, want %s", got.code, got.err, credvault.VerifyRevoked)
	}
	select {
	case <-hs.release:
	default:
		close(hs.release)
	}
	if r := <-first; r.err != nil || r.code != credvault.VerifyValid {
		t.Errorf("verification begun before the revocation: %s %v, want VALID (it read the key before)", r.code, r.err)
	}
	// Nothing stale stayed in the cache.
	if got, err := v.Verify(context.Background(), key); err != nil || got.Code != credvault.VerifyRevoked {
		t.Errorf("afterwards: %s %v, want %s", got.Code, err, credvault.VerifyRevoked)
	}
}

// TestVerifierNewKeyNotHiddenByEarlierMiss: a key created on another
// instance while this one was looking it up (the lookup found nothing,
// its reply on its way) is announced by "new:<hash>"; the lookup's miss
// must not then be remembered in the negative cache, or the new key is
// refused NOT_FOUND for the negative TTL (5 s) after its announcement.
func TestVerifierNewKeyNotHiddenByEarlierMiss(t *testing.T) {
	hs, v, res, _ := newHeldVerifier(t)
	m, err := apikey.Minter{Prefix: "cv"}.Mint("live")
	if err != nil {
		t.Fatal(err)
	}
	key := m.Key.Reveal()
	hs.arm()
	first := verifyAsync(v, key) // not there yet: NOT_FOUND, reply held
	<-hs.read
	uid := res.UserID
	k := &credvault.APIKey{OrgID: res.OrgID, UserID: &uid, Kind: credvault.KeyKindUser, Name: "new", Mode: "live", Scopes: []string{"keys:read"},
		Tags: map[string]string{}, Hash: m.Hash, Prefix: m.Prefix, Last4: m.Last4}
	if err := hs.Store.CreateAPIKey(context.Background(), k, &credvault.AuditEvent{OrgID: res.OrgID, ActorType: "system", Action: "api_key.create", ResourceType: "api_key", Data: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	v.Invalidate("new:" + hex.EncodeToString(m.Hash[:]))
	close(hs.release)
	if r := <-first; r.err != nil || r.code != credvault.VerifyNotFound {
		t.Fatalf("verification begun before the key existed: %s %v, want NOT_FOUND", r.code, r.err)
	}
	if got, err := v.Verify(context.Background(), key); err != nil || got.Code != credvault.VerifyValid {
		t.Errorf("after \"new:\" arrived: %s %v, want VALID", got.Code, err)
	}
}
