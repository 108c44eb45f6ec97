package credvault

import (
	"net/url"
	"sync/atomic"
)

// Memo holds what is derived from one cached copy of a credential and its
// value — the parsed base_url here, the injector's parsed allowed_hosts,
// placement and scrubber there — so that it is built on the first use and
// reused by every call until the copy leaves the value cache. The value
// cache attaches a Memo when it caches a credential; every invalidation
// ("cred:<id>", Reset) drops the copy and its Memo together, and the next
// use reloads the credential with a fresh, empty Memo. A credential that is
// not cached (CREDVAULT_SECRET_CACHE_TTL=0, or read for another purpose)
// has none, and its users derive what they need per call. Safe for
// concurrent use: two calls racing on an empty slot both build, one wins.
type Memo struct {
	base     atomic.Pointer[url.URL]
	outbound atomic.Value
}

// Memo returns the credential's Memo, or nil when it has none.
func (c *Credential) Memo() *Memo {
	if c == nil {
		return nil
	}
	return c.memo
}

// Outbound returns what the Outbound implementation stored with
// SetOutbound, or nil. A nil Memo has nothing.
func (m *Memo) Outbound() any {
	if m == nil {
		return nil
	}
	return m.outbound.Load()
}

// SetOutbound stores v (always of the same concrete type) for the
// Outbound implementation. A nil Memo keeps nothing.
func (m *Memo) SetOutbound(v any) {
	if m != nil {
		m.outbound.Store(v)
	}
}

// baseURL returns c's base_url parsed, from the Memo when there is one.
func (c *Credential) baseURL() (*url.URL, error) {
	m := c.Memo()
	if m != nil {
		if u := m.base.Load(); u != nil {
			return u, nil
		}
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		return nil, err
	}
	if m != nil {
		m.base.Store(u)
	}
	return u, nil
}
