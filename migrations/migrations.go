// Package migrations embeds credvault's SQL migrations. Files are named
// NNNN_description.sql, applied in order, each once, in its own transaction,
// and never edited after they have run anywhere: a change is a new file.
package migrations

import "embed"

// FS holds every *.sql migration file.
//
//go:embed *.sql
var FS embed.FS
