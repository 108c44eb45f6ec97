package injector

import (
	"context"
	"sync/atomic"
	"time"
)

// callCtx is the context of one Do call: the caller's context, the call's
// deadline (ClientOptions.Timeout from the start of Do, or the caller's
// earlier deadline) and its pool scope (see directTransport.scopeOf).
//
// It has no timer of its own. On the direct transport the deadline acts on
// the connection (its read and write deadlines, set from Deadline), which
// does the job context.WithTimeout's timer did without a timer and a
// cancelCtx per call; cancellation comes from the caller's context, which
// the direct transport watches (context.AfterFunc) only when it can be
// canceled at all. Everything else that takes a context — the dialer (a
// new connection), DNS, net/http's Transport (https://) — gets realCtx, a
// context.WithDeadline made on first use, so that their deadline and
// cancellation stay Go's own.
//
// Done is the caller's Done: it is not closed at the deadline or at the end
// of the call, so callCtx is handed only to code of this package that knows
// it (the direct transport, classify); Err reports the deadline
// (context.DeadlineExceeded once it has passed) and the end of the call
// (context.Canceled, as the canceled context of context.WithTimeout did).
type callCtx struct {
	parent   context.Context
	deadline time.Time
	scope    any // a string, boxed once per credential value (prepared.scopeFor)

	// real and cancelReal are set by realCtx, in Do's goroutine only,
	// before Do returns.
	real       context.Context
	cancelReal context.CancelFunc
	ended      atomic.Bool // end was called (the body may be closed from another goroutine)
}

// start starts c as a call of at most timeout under parent.
func (c *callCtx) start(parent context.Context, timeout time.Duration, scope any) {
	deadline := time.Now().Add(timeout)
	if d, ok := parent.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.parent, c.deadline, c.scope = parent, deadline, scope
}

func (c *callCtx) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *callCtx) Done() <-chan struct{}       { return c.parent.Done() }

func (c *callCtx) Err() error {
	if err := c.parent.Err(); err != nil {
		return err
	}
	if c.ended.Load() {
		return context.Canceled
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *callCtx) Value(key any) any {
	if _, ok := key.(scopeCtxKey); ok {
		return c.scope
	}
	return c.parent.Value(key)
}

// realCtx is the call as a context of Go's own (context.WithDeadline of
// the caller's, with the scope), made on first use.
func (c *callCtx) realCtx() context.Context {
	if c.real == nil {
		ctx, cancel := context.WithDeadline(c.parent, c.deadline)
		c.real, c.cancelReal = context.WithValue(ctx, scopeCtxKey{}, c.scope), cancel
	}
	return c.real
}

// end ends the call (Do's cancel): Err reports context.Canceled from now
// on, and the real context, when one was made, is canceled.
func (c *callCtx) end() {
	c.ended.Store(true)
	if c.cancelReal != nil {
		c.cancelReal()
	}
}

// realContext is ctx as a context of Go's own: a callCtx's realCtx, any
// other context itself.
func realContext(ctx context.Context) context.Context {
	if cc, ok := ctx.(*callCtx); ok {
		return cc.realCtx()
	}
	return ctx
}

// cancelSource is the context whose cancellation ends a call on the
// direct transport: the caller's for a callCtx (the deadline acts on the
// connection), else ctx itself.
func cancelSource(ctx context.Context) context.Context {
	if cc, ok := ctx.(*callCtx); ok {
		return cc.parent
	}
	return ctx
}
