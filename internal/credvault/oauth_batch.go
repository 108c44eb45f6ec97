package credvault

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"
)

// RefreshBatch is the most connections one proactive refresh batch claims:
// with a rotated refresh token each needs two encryptions, so a batch is
// at most 200 items, one transit batch request at the Vault client's
// default size (vault.DefaultBatch).
const RefreshBatch = 100

// TransitBatch is the batch side of Transit (the Vault client has it):
// one request for many items, results in input order, per-item failures
// in TransitResult.Err, the returned error for the call as a whole.
type TransitBatch interface {
	EncryptBatch(ctx context.Context, items []TransitItem) ([]TransitResult, error)
	DecryptBatch(ctx context.Context, items []TransitItem) ([]TransitResult, error)
}

// OAuthClaim is a batch of connections a proactive run holds the
// cluster-wide locks of (the locks LockOAuthCredential takes), read under
// those locks and shown as "refreshing" meanwhile.
type OAuthClaim interface {
	// Credentials are the connections claimed, with the status they had
	// before the claim marked them.
	Credentials() []*Credential
	// Store writes every outcome atomically (connection fields, access
	// tokens where TokenChanged, audit events and the events they emit)
	// and announces "cred:<id>" for each, before the locks end.
	Store(ctx context.Context, items []OAuthBatchItem) error
	// Release ends the locks; call it once, after Store.
	Release()
}

// OAuthBatchItem is one connection's outcome in a batch write.
type OAuthBatchItem struct {
	Credential *Credential
	Write      *OAuthWrite
}

// transitBatch runs op ("encrypt" or "decrypt") on items in one batch
// request when t supports it, else one call per item.
func transitBatch(ctx context.Context, t Transit, op string, items []TransitItem) ([]TransitResult, error) {
	if len(items) == 0 {
		return nil, nil
	}
	if b, ok := t.(TransitBatch); ok {
		if op == "encrypt" {
			return b.EncryptBatch(ctx, items)
		}
		return b.DecryptBatch(ctx, items)
	}
	out := make([]TransitResult, len(items))
	for i, it := range items {
		var err error
		if op == "encrypt" {
			out[i].Ciphertext, err = t.Encrypt(ctx, it.Plaintext, it.Context)
		} else {
			out[i].Plaintext, err = t.Decrypt(ctx, it.Ciphertext, it.Context)
		}
		if ErrorCode(err) == EUNAVAILABLE {
			return nil, err
		}
		out[i].Err = err
	}
	return out, nil
}

// RefreshDue is one batch of the proactive refresh: it claims up to limit
// (at most RefreshBatch) connections whose refresh time passed, skipping
// those another caller or replica holds, and refreshes them with
// - one transit batch decryption of their refresh tokens,
// - token requests at most Concurrency at once (the provider's share),
// - one transit batch encryption of the new tokens,
// - one write statement for every outcome,
// all before the locks end, so that nobody uses a new access token, or a
// refresh token again, before the rotated refresh token is stored.
// It returns how many it claimed. Errors: EUNAVAILABLE (PostgreSQL or
// Vault down; the connections claimed keep their tokens and stay due).
func (s *OAuthService) RefreshDue(ctx context.Context, limit int) (int, error) {
	claim, err := s.Store.ClaimDueOAuth(ctx, s.now(), min(limit, RefreshBatch))
	if err != nil {
		return 0, err
	}
	defer claim.Release()
	cs := claim.Credentials()
	if len(cs) == 0 {
		return 0, nil
	}
	now := s.now()
	from := make([]string, len(cs))
	for i, c := range cs {
		from[i] = c.OAuth.Status
	}
	toks, errs := s.requestTokens(ctx, cs)
	s.sealTokens(ctx, cs, toks, errs, now)
	items := make([]OAuthBatchItem, len(cs))
	var stop error
	for i, c := range cs {
		w := &OAuthWrite{}
		if errs[i] == nil {
			w = &OAuthWrite{TokenChanged: true, Events: []*AuditEvent{refreshedEvent(ctx, c, triggerProactive, toks[i])}}
		} else if fw, err := s.failed(ctx, c, errs[i], triggerProactive, now); fw != nil {
			w = fw
		} else if ErrorCode(err) == EUNAVAILABLE && stop == nil {
			stop = err // Vault or PostgreSQL: the status goes back as it was
		}
		items[i] = OAuthBatchItem{Credential: c, Write: s.withTransition(ctx, c, from[i], w)}
	}
	// The tokens are spent at the provider: the write outlives a caller
	// that gave up.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := claim.Store(wctx, items); err != nil {
		return len(cs), err
	}
	return len(cs), stop
}

// requestTokens decrypts the claimed connections' refresh tokens in one
// batch and sends their token requests, Concurrency at once. errs[i] is
// connection i's failure (an *OAuthProviderError when the provider
// answered or could not be reached).
func (s *OAuthService) requestTokens(ctx context.Context, cs []*Credential) ([]*OAuthToken, []error) {
	toks, errs := make([]*OAuthToken, len(cs)), make([]error, len(cs))
	rts := make([][]byte, len(cs))
	var items []TransitItem
	var at []int
	for i, c := range cs {
		switch {
		case c.OAuth.Grant == GrantClientCredentials:
		case c.OAuth.RefreshCiphertext == "":
			errs[i] = &OAuthProviderError{Code: "invalid_grant", Description: "the provider gave no refresh token; reconnect to get a new access token"}
		default:
			items = append(items, TransitItem{Ciphertext: c.OAuth.RefreshCiphertext, Context: RefreshTokenContext(c.OrgID, c.ID)})
			at = append(at, i)
		}
	}
	res, err := transitBatch(ctx, s.Transit, "decrypt", items)
	for k, i := range at {
		if err != nil {
			errs[i] = err
		} else if errs[i] = res[k].Err; errs[i] == nil {
			rts[i] = res[k].Plaintext
		}
	}
	apps := &appCache{apps: map[string]*cachedApp{}}
	var g errgroup.Group
	g.SetLimit(s.concurrency())
	for i, c := range cs {
		if errs[i] != nil {
			continue
		}
		g.Go(func() error {
			app, secret, err := s.app(ctx, apps, c.OrgID, c.OAuth.AppID)
			if err == nil {
				toks[i], err = s.askProvider(ctx, c, app, secret, rts[i])
				s.count(err)
			}
			errs[i] = err
			return nil
		})
	}
	_ = g.Wait()
	return toks, errs
}

// sealTokens encrypts every new token pair in one transit batch and
// applies it to its connection; a connection whose token cannot be
// stored gets errs[i].
func (s *OAuthService) sealTokens(ctx context.Context, cs []*Credential, toks []*OAuthToken, errs []error, now time.Time) {
	type slot struct{ i, access, refresh int }
	var items []TransitItem
	var slots []slot
	for i, c := range cs {
		if errs[i] != nil {
			continue
		}
		if errs[i] = checkAccessToken(toks[i]); errs[i] != nil {
			continue
		}
		sl := slot{i: i, access: len(items), refresh: -1}
		items = append(items, TransitItem{Plaintext: []byte(toks[i].AccessToken.Reveal()), Context: CredentialContext(c.OrgID, c.ID)})
		if !toks[i].RefreshToken.IsZero() {
			sl.refresh = len(items)
			items = append(items, TransitItem{Plaintext: []byte(toks[i].RefreshToken.Reveal()), Context: RefreshTokenContext(c.OrgID, c.ID)})
		}
		slots = append(slots, sl)
	}
	res, err := transitBatch(ctx, s.Transit, "encrypt", items)
	for _, sl := range slots {
		if err != nil {
			errs[sl.i] = err
			continue
		}
		access := res[sl.access]
		refreshCT := ""
		if sl.refresh >= 0 {
			if errs[sl.i] = res[sl.refresh].Err; errs[sl.i] != nil {
				continue
			}
			refreshCT = res[sl.refresh].Ciphertext
		}
		if errs[sl.i] = access.Err; errs[sl.i] != nil {
			continue
		}
		v, verr := CiphertextVersion(access.Ciphertext)
		if verr != nil {
			errs[sl.i] = Wrap(EINTERNAL, verr, "vault returned an unexpected ciphertext")
			continue
		}
		applyToken(cs[sl.i], toks[sl.i], access.Ciphertext, v, refreshCT, now)
	}
}
