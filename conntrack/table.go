package conntrack

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultShards is the default number of shards, IPVS's default connection
// table size (CONFIG_IP_VS_TAB_BITS=12), which ipvsadm prints as size=4096.
const DefaultShards = 4096

// DefaultMaxEntries bounds the table by default: about 200 MiB of entries.
const DefaultMaxEntries = 2 << 20

// ErrFull is returned by Insert when the table holds MaxEntries entries.
var ErrFull = errors.New("connection table full")

// Config configures a Table. A nil *Config means the defaults.
type Config struct {
	// Shards is the number of shards, rounded up to a power of two.
	Shards int
	// MaxEntries bounds the number of entries.
	MaxEntries int
	// Timeouts are the state timeouts; nil means DefaultTimeouts.
	Timeouts *Timeouts
}

// Table is the connection table. It is safe for concurrent use by multiple
// goroutines. The zero value is not usable; call New.
type Table[D Dest] struct {
	shards   []shard[D]
	mask     uint64
	seed     uint64
	max      int64
	timeouts atomic.Pointer[Timeouts]

	count   atomic.Int64
	created atomic.Uint64
	expired atomic.Uint64
	full    atomic.Uint64

	reapMu  sync.Mutex
	reapPos int
}

type shard[D Dest] struct {
	mu   sync.Mutex
	m    map[Key]*entry[D]
	free *entry[D]
	// Pad each shard to its own cache lines so that two workers locking
	// neighbouring shards do not bounce one line between CPUs.
	_ [64]byte
}

type entry[D Dest] struct {
	dest    D
	expires int64 // monotonic nanoseconds
	state   State
	flags   uint8
	next    *entry[D] // free list
}

// Entry flags, as IPVS's IP_VS_CONN_F_* bits do.
const (
	flagInactive uint8 = 1 << iota // counted in InActConn (IP_VS_CONN_F_INACTIVE)
	flagNoOutput                   // no reply seen yet: use INPUT-ONLY (IP_VS_CONN_F_NOOUTPUT)
)

// New returns an empty table.
func New[D Dest](cfg *Config) *Table[D] {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.Shards <= 0 {
		c.Shards = DefaultShards
	}
	n := 1
	for n < c.Shards {
		n <<= 1
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	t := &Table[D]{
		shards: make([]shard[D], n),
		mask:   uint64(n - 1),
		seed:   rand.Uint64(),
		max:    int64(c.MaxEntries),
	}
	for i := range t.shards {
		t.shards[i].m = make(map[Key]*entry[D])
	}
	ts := DefaultTimeouts()
	if c.Timeouts != nil {
		ts = *c.Timeouts
	}
	t.timeouts.Store(&ts)
	return t
}

// Size returns the number of shards (what ipvsadm prints as the table size).
func (t *Table[D]) Size() int { return len(t.shards) }

// Len returns the number of entries, expired ones not yet reaped included.
func (t *Table[D]) Len() int { return int(t.count.Load()) }

// Timeouts returns the current timeouts.
func (t *Table[D]) Timeouts() Timeouts { return *t.timeouts.Load() }

// SetTimeouts replaces the timeouts. Entries take the new values at their
// next state change or packet.
func (t *Table[D]) SetTimeouts(ts Timeouts) { t.timeouts.Store(&ts) }

// Stats are the table's counters.
type Stats struct {
	Entries int
	Created uint64 // entries created
	Expired uint64 // entries removed by expiry
	Full    uint64 // inserts refused because the table was full
}

// Stats returns the table's counters.
func (t *Table[D]) Stats() Stats {
	return Stats{Entries: t.Len(), Created: t.created.Load(), Expired: t.expired.Load(), Full: t.full.Load()}
}

func (t *Table[D]) shardOf(k *Key) *shard[D] {
	return &t.shards[k.hash(t.seed)&t.mask]
}

// Result tells what a packet did to its connection: the state before and
// after it, and whether the entry was created by this packet.
type Result struct {
	Old, New State
	Created  bool
}

// Lookup finds the live entry of k, advances its state with the packet's
// direction and TCP flags (ignored for UDP), restarts its timeout, and
// returns its destination. ok is false when there is no live entry (an
// expired one met here is removed).
func (t *Table[D]) Lookup(k *Key, dir Direction, tcpFlags uint8, now int64) (dest D, r Result, ok bool) {
	s := t.shardOf(k)
	s.mu.Lock()
	e := s.m[*k]
	if e == nil {
		s.mu.Unlock()
		return dest, r, false
	}
	if e.expires <= now {
		t.remove(s, k, e)
		s.mu.Unlock()
		return dest, r, false
	}
	r.Old = e.state
	t.advance(e, k.Protocol, dir, tcpFlags, now)
	r.New = e.state
	dest = e.dest
	s.mu.Unlock()
	return dest, r, true
}

// Insert creates the entry of k bound to dest, as ip_vs_conn_new does (in
// state NONE, counted inactive), then applies the packet that created it.
// noOutput marks a connection whose replies the director does not see (DR
// and TUN), which then follows the INPUT-ONLY state table. If a live entry
// for k exists already (another worker inserted it first), that entry is
// advanced instead and its destination returned. When the table is full,
// err is ErrFull and nothing changes.
func (t *Table[D]) Insert(k *Key, dest D, noOutput bool, tcpFlags uint8, now int64) (D, Result, error) {
	s := t.shardOf(k)
	s.mu.Lock()
	if e := s.m[*k]; e != nil {
		if e.expires > now {
			r := Result{Old: e.state}
			t.advance(e, k.Protocol, Input, tcpFlags, now)
			r.New = e.state
			d := e.dest
			s.mu.Unlock()
			return d, r, nil
		}
		t.remove(s, k, e)
	}
	if t.count.Load() >= t.max {
		s.mu.Unlock()
		t.full.Add(1)
		var zero D
		return zero, Result{}, ErrFull
	}
	e := s.alloc()
	e.dest = dest
	e.state = StateNone
	e.flags = flagInactive
	if noOutput {
		e.flags |= flagNoOutput
	}
	e.expires = now + int64(newConnTimeout)
	dest.ConnCounts().bound(false)
	s.m[*k] = e
	t.count.Add(1)
	t.created.Add(1)
	r := Result{Old: StateNone, Created: true}
	t.advance(e, k.Protocol, Input, tcpFlags, now)
	r.New = e.state
	s.mu.Unlock()
	return dest, r, nil
}

// advance applies one packet to an entry: the TCP state machine (or the
// UDP state), the active/inactive accounting, and the new timeout.
// The shard lock is held.
func (t *Table[D]) advance(e *entry[D], proto uint8, dir Direction, tcpFlags uint8, now int64) {
	ts := t.timeouts.Load()
	if proto != 6 {
		e.state = StateUDP
		e.expires = now + int64(ts.UDP)
		return
	}
	tbl := tableInput
	switch {
	case dir == Output:
		tbl = tableOutput
		e.flags &^= flagNoOutput
	case e.flags&flagNoOutput != 0:
		tbl = tableInputOnly
	}
	next := nextTCPState(tbl, e.state, tcpFlags)
	if next != e.state {
		inactive := e.flags&flagInactive != 0
		switch {
		case !inactive && !next.Active():
			e.dest.ConnCounts().activate(false)
			e.flags |= flagInactive
		case inactive && next.Active():
			e.dest.ConnCounts().activate(true)
			e.flags &^= flagInactive
		}
		e.state = next
	}
	e.expires = now + int64(ts.timeout(next))
}

// remove deletes an entry and accounts for it. The shard lock is held.
func (t *Table[D]) remove(s *shard[D], k *Key, e *entry[D]) {
	delete(s.m, *k)
	e.dest.ConnCounts().unboundConn(e.flags&flagInactive == 0)
	var zero D
	e.dest = zero
	e.next = s.free
	s.free = e
	t.count.Add(-1)
}

// entryChunk is how many entries a shard allocates at once when its free
// list is empty, so that a growing table makes few, larger allocations.
const entryChunk = 32

func (s *shard[D]) alloc() *entry[D] {
	if s.free == nil {
		chunk := make([]entry[D], entryChunk)
		for i := range chunk {
			chunk[i].next = s.free
			s.free = &chunk[i]
		}
	}
	e := s.free
	s.free = e.next
	e.next = nil
	return e
}

// Reap removes expired entries from the next n shards (in rotation) and
// returns how many it removed. A background goroutine calls it often with
// a small n, so that each call holds each shard lock only briefly and a
// full sweep completes every few seconds.
func (t *Table[D]) Reap(now int64, n int) int {
	t.reapMu.Lock()
	start := t.reapPos
	if n > len(t.shards) {
		n = len(t.shards)
	}
	t.reapPos = (start + n) % len(t.shards)
	t.reapMu.Unlock()
	removed := 0
	for i := range n {
		s := &t.shards[(start+i)%len(t.shards)]
		s.mu.Lock()
		for k, e := range s.m {
			if e.expires <= now {
				t.remove(s, &k, e)
				removed++
			}
		}
		s.mu.Unlock()
	}
	t.expired.Add(uint64(removed))
	return removed
}

// Entry is a copy of a connection entry, for listings and for moving
// entries between tables (connection sync).
type Entry[D Dest] struct {
	Key   Key
	Dest  D
	State State
	// Expires is when the entry expires, in the monotonic nanoseconds the
	// table's callers use.
	Expires int64
	// NoOutput is set while the director has seen no packet from the
	// real server (always, in DR and TUN).
	NoOutput bool
}

// Walk calls fn with a copy of every live entry, shard by shard, until fn
// returns false. It holds one shard lock at a time, while copying.
func (t *Table[D]) Walk(now int64, fn func(Entry[D]) bool) {
	var buf []Entry[D]
	for i := range t.shards {
		s := &t.shards[i]
		buf = buf[:0]
		s.mu.Lock()
		for k, e := range s.m {
			if e.expires > now {
				buf = append(buf, Entry[D]{Key: k, Dest: e.dest, State: e.state, Expires: e.expires,
					NoOutput: e.flags&flagNoOutput != 0})
			}
		}
		s.mu.Unlock()
		for _, e := range buf {
			if !fn(e) {
				return
			}
		}
	}
}

// Import adds an entry (or replaces the one with the same key), with its
// state and expiry, accounting for it on its destination as ip_vs_conn_new
// does for a synchronised connection. It fails only when the table is full.
func (t *Table[D]) Import(in Entry[D]) error {
	s := t.shardOf(&in.Key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[in.Key]; e != nil {
		t.remove(s, &in.Key, e)
	}
	if t.count.Load() >= t.max {
		t.full.Add(1)
		return ErrFull
	}
	e := s.alloc()
	e.dest = in.Dest
	e.state = in.State
	e.expires = in.Expires
	e.flags = 0
	if in.NoOutput {
		e.flags |= flagNoOutput
	}
	active := in.State.Active()
	if !active {
		e.flags |= flagInactive
	}
	in.Dest.ConnCounts().bound(active)
	s.m[in.Key] = e
	t.count.Add(1)
	t.created.Add(1)
	return nil
}

// Clear removes every entry.
func (t *Table[D]) Clear() {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			t.remove(s, &k, e)
		}
		s.mu.Unlock()
	}
}

// Now returns the monotonic clock in nanoseconds as the table's callers
// should pass it: time since an arbitrary process-wide origin.
func Now() int64 { return int64(time.Since(origin)) }

var origin = time.Now()
