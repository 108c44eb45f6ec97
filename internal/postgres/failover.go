package postgres

import (
	"context"
	"database/sql/driver"
	"errors"
	"strings"
	"sync/atomic"

	"github.com/lib/pq"
)

// Connection lifetime: every pooled connection is closed after
// connMaxLifetime (and after connMaxIdleTime unused), so that a pool that
// was moved to another host by a failover, or by DNS, returns to the
// current one within that time even when nothing fails.

// demotedCodes are the PostgreSQL errors of a server that stopped taking
// this instance's writes (a demoted primary, a standby after failover, a
// server shutting down or in recovery): the statement answers 503, and
// every connection of the pool that saw one is dropped, so that the next
// ones are made to whichever host accepts writes now
// (target_session_attrs=read-write).
var demotedCodes = map[string]bool{
	"25006": true, // read_only_sql_transaction
	"57P01": true, // admin_shutdown
	"57P02": true, // crash_shutdown
	"57P03": true, // cannot_connect_now (starting up, in recovery)
}

// isDemoted reports whether err is one of demotedCodes, or a standby
// refusing a read-write transaction ("cannot set transaction read-write
// mode during recovery", 0A000).
func isDemoted(err error) bool {
	var pqe *pq.Error
	if !errors.As(err, &pqe) {
		return false
	}
	return demotedCodes[string(pqe.Code)] || (pqe.Code == "0A000" && strings.Contains(pqe.Message, "during recovery"))
}

// failoverConnector makes lib/pq connections that a pool drops once any
// connection of the same pool met a demoted server: each connection
// remembers the pool's epoch when it was made, and is no longer valid once
// the epoch moved on.
type failoverConnector struct {
	*pq.Connector
	epoch atomic.Uint64
}

func (c *failoverConnector) Connect(ctx context.Context) (driver.Conn, error) {
	cn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &failoverConn{conn: cn.(pgConn), pool: c, epoch: c.epoch.Load()}, nil
}

// pgConn is what lib/pq's connection implements and credvault uses.
type pgConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
	driver.NamedValueChecker
}

type failoverConn struct {
	conn  pgConn
	pool  *failoverConnector
	epoch uint64
}

// seen moves the pool's epoch on when err shows a demoted server, or a
// connection that broke (the server restarted or went away: the other
// connections made before it are gone too, and finding out one query at
// a time would fail as many requests as the pool holds connections).
func (c *failoverConn) seen(err error) error {
	if err != nil && (isDemoted(err) || brokenConn(err)) {
		c.pool.epoch.Add(1)
	}
	return err
}

// brokenConn reports whether err is the connection failing rather than a
// statement: not a server error, not the caller's context ending.
func brokenConn(err error) bool {
	var pqe *pq.Error
	return !errors.As(err, &pqe) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) &&
		!errors.Is(err, driver.ErrSkip)
}

func (c *failoverConn) stale() bool { return c.epoch != c.pool.epoch.Load() }

func (c *failoverConn) Prepare(q string) (driver.Stmt, error) {
	s, err := c.conn.Prepare(q)
	return s, c.seen(err)
}
func (c *failoverConn) Close() error { return c.conn.Close() }
func (c *failoverConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}
func (c *failoverConn) BeginTx(ctx context.Context, o driver.TxOptions) (driver.Tx, error) {
	t, err := c.conn.BeginTx(ctx, o)
	if err != nil {
		return nil, c.seen(err)
	}
	return failoverTx{t, c}, nil
}
func (c *failoverConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	s, err := c.conn.PrepareContext(ctx, q)
	return s, c.seen(err)
}
func (c *failoverConn) ExecContext(ctx context.Context, q string, a []driver.NamedValue) (driver.Result, error) {
	r, err := c.conn.ExecContext(ctx, q, a)
	return r, c.seen(err)
}
func (c *failoverConn) QueryContext(ctx context.Context, q string, a []driver.NamedValue) (driver.Rows, error) {
	r, err := c.conn.QueryContext(ctx, q, a)
	return r, c.seen(err)
}
func (c *failoverConn) Ping(ctx context.Context) error { return c.seen(c.conn.Ping(ctx)) }
func (c *failoverConn) ResetSession(ctx context.Context) error {
	if c.stale() {
		return driver.ErrBadConn
	}
	return c.conn.ResetSession(ctx)
}
func (c *failoverConn) IsValid() bool { return !c.stale() && c.conn.IsValid() }
func (c *failoverConn) CheckNamedValue(nv *driver.NamedValue) error {
	return c.conn.CheckNamedValue(nv)
}

type failoverTx struct {
	driver.Tx
	c *failoverConn
}

func (t failoverTx) Commit() error { return t.c.seen(t.Tx.Commit()) }
