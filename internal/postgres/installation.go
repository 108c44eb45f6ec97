package postgres

import (
	"context"
	"time"
)

// InstallationIssuer is the "iss" this installation's JWT API keys carry
// when no issuer is configured: a value migration 0009 created once
// (urn:credvault:installation:<uuid>), the same for every instance on this
// database. Errors: EUNAVAILABLE.
func (s *Store) InstallationIssuer(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var iss string
	err := s.db.GetContext(ctx, &iss, `SELECT issuer FROM installation`)
	return iss, translate(err, "installation")
}
