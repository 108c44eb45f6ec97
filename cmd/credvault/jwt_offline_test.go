package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// This file is the documented example of verifying credvault JWT API keys
// offline, in another Go service, with go-jose and nothing of credvault's
// but two HTTP endpoints: GET /.well-known/jwks.json (public) and
// GET /v1/api-keys/revocations (a key with scope keys:verify). Copy
// offlineVerifier; the test below drives it against a running credvault.

// offlineClaims are the claims of a credvault JWT API key.
type offlineClaims struct {
	jwt.Claims
	Org   string `json:"org"`
	Agent string `json:"agent"`
	Scope string `json:"scope"`
	Env   string `json:"env"`
}

// offlineVerifier verifies keys with the JWKS and honours revocations
// and disablements from the feed, as fresh as its last poll.
type offlineVerifier struct {
	baseURL, issuer, feedKey string
	http                     *http.Client

	mu       sync.RWMutex
	keys     jose.JSONWebKeySet
	revoked  map[string]time.Time // jti -> not valid after
	disabled map[string]bool      // jti -> switched off (the key or its integration)
	cursor   int64
}

// fetchJWKS loads the public keys (cache them: the answer says how long).
func (o *offlineVerifier) fetchJWKS() error {
	resp, err := o.http.Get(o.baseURL + "/.well-known/jwks.json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var set struct {
		jose.JSONWebKeySet
		Issuer string `json:"issuer"` // the iss to expect
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		return err
	}
	o.mu.Lock()
	o.keys, o.issuer = set.JSONWebKeySet, set.Issuer
	o.mu.Unlock()
	return nil
}

// pollRevocations reads the feed from the last cursor (run it every few
// seconds; a revocation takes effect here within that interval).
func (o *offlineVerifier) pollRevocations() error {
	for {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/api-keys/revocations?since=%d", o.baseURL, o.cursor), nil)
		req.Header.Set("Authorization", "Bearer "+o.feedKey)
		resp, err := o.http.Do(req)
		if err != nil {
			return err
		}
		var page struct {
			Data []struct {
				JTI      string    `json:"jti"`
				NotAfter time.Time `json:"not_after"`
				Reason   string    `json:"reason"`
			} `json:"data"`
			NextCursor int64 `json:"next_cursor"`
			HasMore    bool  `json:"has_more"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("revocation feed: %d %v", resp.StatusCode, err)
		}
		o.mu.Lock()
		for _, r := range page.Data {
			// Entries come in cursor order: "disabled" and "enabled"
			// switch a key off and on again (it or its integration);
			// "revoked", "rolled" and "deleted" end it for good.
			switch r.Reason {
			case "disabled":
				if o.disabled == nil {
					o.disabled = map[string]bool{}
				}
				o.disabled[r.JTI] = true
			case "enabled":
				delete(o.disabled, r.JTI)
			default:
				o.revoked[r.JTI] = r.NotAfter
			}
		}
		o.cursor = page.NextCursor
		o.mu.Unlock()
		if !page.HasMore {
			return nil
		}
	}
}

// verify checks signature (EdDSA only, key chosen by kid), issuer, exp
// and nbf (with a minute of leeway), then the revocation list.
func (o *offlineVerifier) verify(token string, now time.Time) (*offlineClaims, error) {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		return nil, err
	}
	o.mu.RLock()
	keys := o.keys.Key(tok.Headers[0].KeyID)
	o.mu.RUnlock()
	if len(keys) != 1 {
		return nil, errors.New("unknown kid: refetch the JWKS once, then refuse")
	}
	var c offlineClaims
	if err := tok.Claims(keys[0].Key, &c); err != nil {
		return nil, err
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: o.issuer, Time: now}, time.Minute); err != nil {
		return nil, err
	}
	o.mu.RLock()
	notAfter, revoked := o.revoked[c.ID]
	disabled := o.disabled[c.ID]
	o.mu.RUnlock()
	if revoked && !now.Before(notAfter) {
		return nil, errors.New("revoked")
	}
	if disabled {
		return nil, errors.New("disabled")
	}
	return &c, nil
}

// TestOfflineVerificationWithJWKS issues a JWT key, verifies it with the
// JWKS alone (no call to credvault per key), revokes it, and after one
// poll of the feed the offline verifier refuses it.
func TestOfflineVerificationWithJWKS(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.start()
	res, owner := cl.bootstrap(a, "acme")
	id, token := cl.createKey(a, owner, map[string]any{"name": "agent", "scopes": []string{"credentials:use"},
		"format": "jwt", "agent": "support-bot", "expires_in": "7d"})
	_, feedKey := cl.createKey(a, owner, map[string]any{"name": "feed", "scopes": []string{"keys:verify"}})

	o := &offlineVerifier{baseURL: a.url, feedKey: feedKey, http: &http.Client{Timeout: 5 * time.Second}, revoked: map[string]time.Time{}}
	if err := o.fetchJWKS(); err != nil {
		t.Fatal(err)
	}
	if err := o.pollRevocations(); err != nil {
		t.Fatal(err)
	}
	c, err := o.verify(token, time.Now())
	if err != nil {
		t.Fatalf("offline verification of a good key: %v", err)
	}
	if c.ID != id || c.Org != res.OrgID || c.Agent != "support-bot" || c.Scope != "credentials:use" || c.Subject != res.UserID {
		t.Errorf("claims: %+v", c)
	}
	if _, err := o.verify(token, time.Now().Add(8*24*time.Hour)); err == nil {
		t.Error("offline verifier accepted the key after its exp")
	}

	if r := cl.as(owner, "POST", a.url+"/v1/api-keys/"+id+"/revoke", nil); r.status != 200 {
		t.Fatalf("revoke: %d", r.status)
	}
	if _, err := o.verify(token, time.Now()); err != nil {
		t.Fatalf("before its next poll the offline verifier still accepts the key (by design); got %v", err)
	}
	if err := o.pollRevocations(); err != nil {
		t.Fatal(err)
	}
	if _, err := o.verify(token, time.Now()); err == nil || err.Error() != "revoked" {
		t.Fatalf("after polling the feed: got %v, want revoked", err)
	}
}

// TestOfflineVerifierHonoursDisable: a JWT key of an integration that is
// disabled is refused by the offline verifier after its next poll, and
// accepted again after the poll that follows the enable; so is a key
// disabled by itself.
func TestOfflineVerifierHonoursDisable(t *testing.T) {
	t.Parallel() // with the other integration tests, after the package's serial ones: their waits overlap
	cl := newCluster(t, nil)
	a := cl.start()
	_, owner := cl.bootstrap(a, "acme")
	iid := cl.as(owner, "POST", a.url+"/v1/integrations", map[string]any{"name": "agents"}).json(t)["id"].(string)
	id, token := cl.createKey(a, owner, map[string]any{"name": "agent", "scopes": []string{"credentials:use"},
		"format": "jwt", "integration_id": iid})
	_, feedKey := cl.createKey(a, owner, map[string]any{"name": "feed", "scopes": []string{"keys:verify"}})
	o := &offlineVerifier{baseURL: a.url, issuer: a.url, feedKey: feedKey, http: &http.Client{Timeout: 5 * time.Second}, revoked: map[string]time.Time{}}
	if err := o.fetchJWKS(); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		method, path string
		body         any
		want         string // "" = accepted
	}{
		{"PATCH", "/v1/integrations/" + iid, map[string]any{"enabled": false}, "disabled"},
		{"PATCH", "/v1/integrations/" + iid, map[string]any{"enabled": true}, ""},
		{"POST", "/v1/api-keys/" + id + "/disable", nil, "disabled"},
		{"PATCH", "/v1/integrations/" + iid, map[string]any{"enabled": false}, "disabled"}, // already off: no entry
		{"POST", "/v1/api-keys/" + id + "/enable", nil, "disabled"},                        // its integration is still off
		{"PATCH", "/v1/integrations/" + iid, map[string]any{"enabled": true}, ""},
	}
	for i, st := range steps {
		if r := cl.as(owner, st.method, a.url+st.path, st.body); r.status != 200 {
			t.Fatalf("step %d: %d %s", i, r.status, r.body)
		}
		if err := o.pollRevocations(); err != nil {
			t.Fatal(err)
		}
		_, err := o.verify(token, time.Now())
		if got := fmt.Sprint(err); (st.want == "" && err != nil) || (st.want != "" && got != st.want) {
			t.Fatalf("step %d (%s %s %v): offline verifier says %v, want %q", i, st.method, st.path, st.body, err, st.want)
		}
	}
}
