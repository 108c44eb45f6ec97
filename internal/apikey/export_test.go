package apikey

import (
	"context"
	"time"
)

// CheckJWT exposes the full JWT check to the benchmarks.
func (v *Verifier) CheckJWT(ctx context.Context, token string, now time.Time) string {
	code, _ := v.checkJWT(ctx, token, now)
	return code
}
