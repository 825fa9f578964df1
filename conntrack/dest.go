package conntrack

import "sync/atomic"

// Dest is what the table needs of a destination (a real server): its
// connection accounting. Embedding Counts in a struct makes a pointer to
// that struct a Dest.
type Dest interface {
	comparable
	ConnCounts() *Counts
}

// Counts is a destination's connection accounting, kept by the table as
// entries bound to it are created, change state and expire, exactly where
// IPVS keeps dest->activeconns, dest->inactconns and the OVERLOAD flag
// (ip_vs_bind_dest, set_tcp_state and ip_vs_unbind_dest). Schedulers read
// it. The zero value is ready to use; all methods are safe for concurrent
// use.
type Counts struct {
	active   atomic.Int32
	inactive atomic.Int32
	persist  atomic.Int32 // persistence templates (PersistConn)
	// Thresholds (ipvsadm -x and -y): 0 means none.
	upper, lower atomic.Uint32
	overload     atomic.Bool
}

// ConnCounts returns c itself, so that a struct embedding Counts is a Dest.
func (c *Counts) ConnCounts() *Counts { return c }

// Active returns the number of active connections (ActiveConn).
func (c *Counts) Active() int32 { return c.active.Load() }

// Inactive returns the number of inactive connections (InActConn).
func (c *Counts) Inactive() int32 { return c.inactive.Load() }

// Persistent returns the number of persistence templates bound to the
// destination (ipvsadm's PersistConn).
func (c *Counts) Persistent() int32 { return c.persist.Load() }

// Overloaded reports whether the destination reached its upper threshold
// and has not yet dropped below its lower one (IP_VS_DEST_F_OVERLOAD).
// Schedulers skip overloaded destinations.
func (c *Counts) Overloaded() bool { return c.overload.Load() }

// SetThresholds sets the upper and lower connection thresholds.
func (c *Counts) SetThresholds(upper, lower uint32) {
	c.upper.Store(upper)
	c.lower.Store(lower)
	// The kernel re-evaluates the flag only when a connection is bound
	// or unbound; a threshold change clears a stale overload at once
	// when the new thresholds allow it, and sets it when reached.
	c.unbound()
	if u := c.upper.Load(); u != 0 && c.total() >= int64(u) {
		c.overload.Store(true)
	}
}

// Thresholds returns the upper and lower thresholds.
func (c *Counts) Thresholds() (upper, lower uint32) { return c.upper.Load(), c.lower.Load() }

func (c *Counts) total() int64 { return int64(c.active.Load()) + int64(c.inactive.Load()) }

// bound accounts for a new connection (ip_vs_bind_dest).
func (c *Counts) bound(active bool) {
	if active {
		c.active.Add(1)
	} else {
		c.inactive.Add(1)
	}
	if u := c.upper.Load(); u != 0 && c.total() >= int64(u) {
		c.overload.Store(true)
	}
}

// boundTemplate accounts for a new persistence template (ip_vs_bind_dest
// with IP_VS_CONN_F_TEMPLATE): it counts in persistconns only, but the
// kernel re-checks the upper threshold all the same.
func (c *Counts) boundTemplate() {
	c.persist.Add(1)
	if u := c.upper.Load(); u != 0 && c.total() >= int64(u) {
		c.overload.Store(true)
	}
}

// unboundTemplate accounts for a template that ends.
func (c *Counts) unboundTemplate() {
	c.persist.Add(-1)
	c.unbound()
}

// unboundConn accounts for a connection that ends (ip_vs_unbind_dest).
func (c *Counts) unboundConn(active bool) {
	if active {
		c.active.Add(-1)
	} else {
		c.inactive.Add(-1)
	}
	c.unbound()
}

// unbound re-evaluates the overload flag as ip_vs_unbind_dest does: below
// the lower threshold if there is one, else below 3/4 of the upper one,
// else (no thresholds) never overloaded.
func (c *Counts) unbound() {
	l, u := c.lower.Load(), c.upper.Load()
	switch {
	case l != 0:
		if c.total() < int64(l) {
			c.overload.Store(false)
		}
	case u != 0:
		if c.total()*4 < int64(u)*3 {
			c.overload.Store(false)
		}
	default:
		c.overload.Store(false)
	}
}

// activate moves one connection between the inactive and active counts.
func (c *Counts) activate(nowActive bool) {
	if nowActive {
		c.active.Add(1)
		c.inactive.Add(-1)
	} else {
		c.active.Add(-1)
		c.inactive.Add(1)
	}
}
