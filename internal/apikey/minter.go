package apikey

import "credvault/internal/credvault"

// Minter issues keys with the configured prefix; it implements
// credvault.KeyMinter.
type Minter struct {
	Prefix string
}

// Mint generates a key for env ("live" or "test") with its hash and the
// public parts listings show. Errors: EINVALID for a bad env, EINTERNAL
// when the system's random source fails.
func (m Minter) Mint(env string) (credvault.MintedKey, error) {
	key, err := Generate(m.Prefix, env)
	if err != nil {
		return credvault.MintedKey{}, err
	}
	return credvault.MintedKey{
		Key:    key,
		Hash:   Hash(key.Reveal()),
		Prefix: m.Prefix + "_" + env,
		Last4:  Last4(key.Reveal()),
	}, nil
}
