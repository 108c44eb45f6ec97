package postgres

import (
	"context"

	"github.com/lib/pq"
)

// Key state changes: the change column of key_state_log. Each names what
// happened; the payload says what every instance drops or adds.
const (
	ChangeCreated     = "created"     // new:<hash>, a key was issued
	ChangeRevoked     = "revoked"     // key:<hash>
	ChangeUpdated     = "updated"     // key:<hash>: name, scopes, limit, expiry
	ChangeRolled      = "rolled"      // key:<hash>: the old key of a roll now ends early
	ChangeUserKeys    = "user_keys"   // user:<uuid>: the user's keys changed with the user
	ChangeCredential  = "credential"  // cred:<uuid>: a credential value or target changed
	ChangeDisabled    = "disabled"    // key:<hash>: a key was switched off or on again
	ChangeIntegration = "integration" // integration:<uuid>: an integration was switched off or on
)

// stateLogLockID is the transaction-scoped advisory lock every writer of
// key_state_log holds from its insert to its commit, so that rows become
// visible in seq order (a reader that has seen seq N has seen all below).
// It is taken at the very end of a transaction, after every row lock that
// transaction needs, so it cannot take part in a deadlock.
const stateLogLockID = 0x63766b73746c6f67 // "cvkstlog"

// stateChange is one key_state_log row a transaction will write.
type stateChange struct {
	change, payload string
}

// logChange records, inside tx, a change that alters how keys verify (or
// what the credential value cache holds). inTx writes the rows just before
// commit, announces them with NOTIFY, and hands them to this instance
// right after commit; every other instance applies them from NOTIFY or, at
// the latest, from its next poll of the log (see Follower).
// change is one of the Change* constants (a new kind, such as "disabled",
// only needs a name matching ^[a-z][a-z_]{0,31}$); payload is what every
// instance applies (see InvalidationChannel).
func (tx *txn) logChange(change, payload string) {
	tx.changes = append(tx.changes, stateChange{change, payload})
}

// writeChanges inserts the transaction's changes into key_state_log under
// the log's advisory lock and queues one NOTIFY "log:<seq>:<payload>" per
// row, delivered on commit.
func (tx *txn) writeChanges(ctx context.Context) error {
	if len(tx.changes) == 0 {
		return nil
	}
	changes := make([]string, len(tx.changes))
	payloads := make([]string, len(tx.changes))
	for i, c := range tx.changes {
		changes[i], payloads[i] = c.change, c.payload
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(stateLogLockID)); err != nil {
		return translate(err, "key state log")
	}
	_, err := tx.ExecContext(ctx, `
		WITH ins AS (
			INSERT INTO key_state_log (change, payload)
			SELECT c, p FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(c, p, n) ORDER BY n
			RETURNING seq, payload)
		SELECT pg_notify($3, 'log:' || seq || ':' || payload) FROM ins ORDER BY seq`,
		pq.StringArray(changes), pq.StringArray(payloads), InvalidationChannel)
	return translate(err, "key state log")
}
