package conntrack

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// DefaultShards is the default number of shards, IPVS's default connection
// table size (CONFIG_IP_VS_TAB_BITS=12), which ipvsadm prints as size=4096.
const DefaultShards = 4096

// DefaultMaxEntries bounds the table by default: about 200 MiB of entries.
const DefaultMaxEntries = 2 << 20

// ErrFull is returned by Insert when the table holds MaxEntries entries
// and none of them may be evicted.
var ErrFull = errors.New("connection table full")

// Config configures a Table. A nil *Config means the defaults.
type Config struct {
	// Shards is the number of shards, rounded up to a power of two.
	Shards int
	// MaxEntries bounds the number of entries (connections and
	// persistence templates). At the bound, a new connection evicts the
	// oldest half-open connection (SYN_RECV first, then SYNACK); when
	// there is none it is refused (ErrFull).
	MaxEntries int
	// Timeouts are the state timeouts; nil means DefaultTimeouts.
	Timeouts *Timeouts
	// OnRemove, if set, is called with each connection entry (not
	// template) that leaves the table, while a shard lock is held: it must
	// be quick and take no lock of the table (FULLNAT returns the
	// connection's local port to its pool here).
	OnRemove func(k *Key, aux *Aux)
}

// Aux is per-connection forwarding state an entry carries for the data
// path.
type Aux struct {
	// PeerMAC and PeerIfindex are where the client's frames came from:
	// the client itself or the router in front of it. NAT and FULLNAT
	// send the real server's replies back there.
	PeerMAC     [6]byte
	PeerIfindex int32
	// LocalAddr and LocalPort are FULLNAT's source address and port
	// towards the real server.
	LocalAddr [4]byte
	LocalPort uint16
	// Forward is the forwarding method the connection was made with
	// (the data path's own numbering): a server's method may change, its
	// established connections keep theirs, as IPVS's do.
	Forward uint8
}

// Conn is what a lookup or insert returns about a connection.
type Conn[D Dest] struct {
	Dest D
	// Key is the connection's key (client and virtual side).
	Key Key
	Aux Aux
	Result
}

// InsertOpts are the options of InsertWith.
type InsertOpts[D Dest] struct {
	// NoOutput marks a connection whose replies the director does not
	// see (DR and TUN): it follows the INPUT-ONLY state table.
	NoOutput bool
	// Template is the persistence template controlling the connection.
	Template TemplateRef[D]
	// Reply, if set, is the key of the real server's replies (NAT and
	// FULLNAT), by which GetReply finds the connection.
	Reply *Key
	// Aux is kept with the entry.
	Aux Aux
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
	evicted atomic.Uint64
	full    atomic.Uint64

	// halfOpen lists the half-open connections, oldest first: [0] those
	// in SYN_RECV, [1] those in SYNACK. It is guarded by hoMu, which is
	// taken after a shard lock, never before one.
	hoMu     sync.Mutex
	halfOpen [2]hoList[D]

	// reapMu guards the sweep's cursor: the shard reapPos and, within
	// it, the bucket reapBucket. It is taken before a shard lock.
	reapMu     sync.Mutex
	reapPos    int
	reapBucket int
	reapSteps  uint64 // steps taken, for tests
	// buckets is the number of index buckets over all shards, which sets
	// the pace of ReapDue's steps.
	buckets atomic.Int64
	// reapNext is the monotonic time at which ReapDue's next step is due
	// (0: not started).
	reapNext atomic.Int64

	onRemove func(k *Key, aux *Aux)

	// slab is what is left of the last slab of entries (alloc). slabMu
	// is taken after a shard lock.
	slabMu sync.Mutex
	slab   []entry[D]

	// stale are reply-index entries of removed connections, for Reap to
	// delete (removing them at once would take a second shard lock).
	staleMu sync.Mutex
	stale   []staleReply
	// dropMu guards spare, the list dropStaleReplies last emptied, which
	// becomes the next stale list so that the lists are reused.
	dropMu sync.Mutex
	spare  []staleReply
}

type staleReply struct {
	reply Key
	ref   replyRef
}

// replyRef is what the reply index holds: the connection's key and the
// generation of its entry when it was indexed.
type replyRef struct {
	key Key
	gen uint32
}

type hoList[D Dest] struct {
	head, tail *entry[D]
	n          int
}

type shard[D Dest] struct {
	mu sync.Mutex
	m  index[D]
	// rm is the reply index: the key of a NAT connection's replies
	// (real server -> client) to its connection's key, whose entry may be
	// in another shard.
	rm   map[Key]replyRef
	free *entry[D]
	// Pad each shard to its own cache lines so that two workers locking
	// neighbouring shards do not bounce one line between CPUs.
	_ [64]byte
}

type entry[D Dest] struct {
	// The first two cache lines hold what a lookup reads (Get: the key,
	// state, flags, timer, destination and Aux; advance), and
	// Prefetch touches one atomic field in each of them (gen, nControl).
	// The entry is padded to three whole lines (entrySize), and the chunks
	// entries come in start on a line, so no entry shares a line with
	// another and a lookup never needs a third.
	key    Key
	state  State
	flags  uint8
	hoList uint8 // 0: on no list; 1+i: on halfOpen[i] (hoMu)
	// gen changes each time the entry is reused, so that references to
	// it from other shards can tell it is no longer theirs.
	gen     atomic.Uint32
	expires int64 // monotonic nanoseconds
	dest    D

	aux Aux
	// ctl is the persistence template that controls this connection
	// (IPVS's cp->control), valid while ctl.gen equals ctlGen.
	ctlGen uint32
	// nControl counts the live connections a template controls; a
	// template does not expire while it controls any (n_control).
	nControl atomic.Int32
	ctl      *entry[D]
	// next links the entry in its shard's index (a hash chain) while it
	// is in the table, and on the shard's free list after: never both.
	next           *entry[D]
	hoPrev, hoNext *entry[D] // half-open list, guarded by Table.hoMu

	reply Key // the reply key, if flagReply
	_     [entryPad]byte
}

// entrySize is an entry's size: three cache lines. entryPad fills the
// third after the reply key.
const (
	entrySize = 192
	entryPad  = entrySize - 128 - unsafe.Sizeof(Key{})
)

// Entry flags, as IPVS's IP_VS_CONN_F_* bits do.
const (
	flagInactive uint8 = 1 << iota // counted in InActConn (IP_VS_CONN_F_INACTIVE)
	flagNoOutput                   // no reply seen yet: use INPUT-ONLY (IP_VS_CONN_F_NOOUTPUT)
	flagTemplate                   // a persistence template (IP_VS_CONN_F_TEMPLATE)
	flagReply                      // indexed by its reply key too (NAT, FULLNAT)
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
		shards:   make([]shard[D], n),
		mask:     uint64(n - 1),
		seed:     rand.Uint64(),
		max:      int64(c.MaxEntries),
		onRemove: c.OnRemove,
	}
	for i := range t.shards {
		t.shards[i].m.seed = t.seed
		t.shards[i].rm = make(map[Key]replyRef)
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

// Max returns the bound on the number of entries.
func (t *Table[D]) Max() int { return int(t.max) }

// Len returns the number of entries, expired ones not yet reaped included.
func (t *Table[D]) Len() int { return int(t.count.Load()) }

// Timeouts returns the current timeouts.
func (t *Table[D]) Timeouts() Timeouts { return *t.timeouts.Load() }

// SetTimeouts replaces the timeouts. Entries take the new values at their
// next state change or packet.
func (t *Table[D]) SetTimeouts(ts Timeouts) { t.timeouts.Store(&ts) }

// Stats are the table's counters.
type Stats struct {
	Entries  int
	HalfOpen int    // connections in SYN_RECV or SYNACK
	Created  uint64 // entries created
	Expired  uint64 // entries removed by expiry
	Evicted  uint64 // half-open connections evicted to make room
	Full     uint64 // new connections refused: full and nothing to evict
}

// Stats returns the table's counters.
func (t *Table[D]) Stats() Stats {
	t.hoMu.Lock()
	ho := t.halfOpen[0].n + t.halfOpen[1].n
	t.hoMu.Unlock()
	return Stats{Entries: t.Len(), HalfOpen: ho, Created: t.created.Load(), Expired: t.expired.Load(),
		Evicted: t.evicted.Load(), Full: t.full.Load()}
}

func (t *Table[D]) shardOf(k *Key) *shard[D] {
	s, _ := t.locate(k)
	return s
}

// locate returns the shard of k and k's hash, which the shard's index
// takes too, so that a lookup hashes its key once.
func (t *Table[D]) locate(k *Key) (*shard[D], uint64) {
	h := k.hash(t.seed)
	return &t.shards[h&t.mask], h
}

// Result tells what a packet did to its connection: the state before and
// after it, and whether the entry was created by this packet.
type Result struct {
	Old, New State
	Created  bool
}

// Lookup finds the live connection entry of k, advances its state with the
// packet's direction and TCP flags (ignored for UDP), restarts its timeout,
// and returns its destination. ok is false when there is no live entry (an
// expired one met here is removed).
func (t *Table[D]) Lookup(k *Key, dir Direction, tcpFlags uint8, now int64) (dest D, r Result, ok bool) {
	c, ok := t.Get(k, dir, tcpFlags, now)
	return c.Dest, c.Result, ok
}

// Get is Lookup returning the whole connection: destination, key,
// per-connection state and the state change.
func (t *Table[D]) Get(k *Key, dir Direction, tcpFlags uint8, now int64) (c Conn[D], ok bool) {
	s, h := t.locate(k)
	s.mu.Lock()
	e := s.m.get(k, h)
	if e == nil || e.flags&flagTemplate != 0 {
		s.mu.Unlock()
		return c, false
	}
	if e.expires <= now {
		t.remove(s, e)
		t.expired.Add(1)
		s.mu.Unlock()
		return c, false
	}
	c.Old = e.state
	t.advance(e, dir, tcpFlags, now)
	c.New = e.state
	c.Dest, c.Key, c.Aux = e.dest, e.key, e.aux
	s.mu.Unlock()
	return c, true
}

// Peek finds the live connection entry of k without changing its state or
// timer (for an ICMP error about the connection, which IPVS relays
// without a state transition).
func (t *Table[D]) Peek(k *Key, now int64) (c Conn[D], ok bool) {
	s, h := t.locate(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m.get(k, h)
	if e == nil || e.flags&flagTemplate != 0 || e.expires <= now {
		return c, false
	}
	c.Old, c.New = e.state, e.state
	c.Dest, c.Key, c.Aux = e.dest, e.key, e.aux
	return c, true
}

// PeekReply is Peek by a reply key (see GetReply).
func (t *Table[D]) PeekReply(rk *Key, now int64) (c Conn[D], ok bool) {
	rs := t.shardOf(rk)
	rs.mu.Lock()
	ref, found := rs.rm[*rk]
	rs.mu.Unlock()
	if !found {
		return c, false
	}
	s, h := t.locate(&ref.key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m.get(&ref.key, h)
	if e == nil || e.flags&flagReply == 0 || e.reply != *rk || e.gen.Load() != ref.gen || e.expires <= now {
		return c, false
	}
	c.Old, c.New = e.state, e.state
	c.Dest, c.Key, c.Aux = e.dest, e.key, e.aux
	return c, true
}

// GetReply finds a NAT or FULLNAT connection by the key of its real
// server's replies (protocol, real server address and port as the client
// side, the client's or FULLNAT local address and port as the virtual
// side) and applies the reply packet to it (the OUTPUT state table).
func (t *Table[D]) GetReply(rk *Key, tcpFlags uint8, now int64) (c Conn[D], ok bool) {
	rs := t.shardOf(rk)
	rs.mu.Lock()
	ref, found := rs.rm[*rk]
	rs.mu.Unlock()
	if !found {
		return c, false
	}
	s, h := t.locate(&ref.key)
	s.mu.Lock()
	e := s.m.get(&ref.key, h)
	if e == nil || e.flags&flagReply == 0 || e.reply != *rk || e.gen.Load() != ref.gen {
		s.mu.Unlock()
		return c, false
	}
	if e.expires <= now {
		t.remove(s, e)
		t.expired.Add(1)
		s.mu.Unlock()
		return c, false
	}
	c.Old = e.state
	t.advance(e, Output, tcpFlags, now)
	c.New = e.state
	c.Dest, c.Key, c.Aux = e.dest, e.key, e.aux
	s.mu.Unlock()
	return c, true
}

// Remove removes the connection entry of k at once, if there is one (as
// ip_vs_conn_expire_now does for expire_nodest_conn).
func (t *Table[D]) Remove(k *Key) bool {
	s, h := t.locate(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m.get(k, h)
	if e == nil || e.flags&flagTemplate != 0 {
		return false
	}
	t.remove(s, e)
	return true
}

// TemplateRef refers to a persistence template, to link the connections it
// controls to it. The zero value refers to none.
type TemplateRef[D Dest] struct {
	e   *entry[D]
	gen uint32
}

// Template finds the live persistence template tk, restarts its timeout
// (a template lives for the persistence timeout after the last connection
// it placed, as ip_vs_ct_in_get and ip_vs_conn_put do), and returns its
// destination.
func (t *Table[D]) Template(tk *Key, timeout time.Duration, now int64) (dest D, ref TemplateRef[D], ok bool) {
	s, h := t.locate(tk)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m.get(tk, h)
	if e == nil || e.flags&flagTemplate == 0 {
		return dest, ref, false
	}
	if e.expires <= now && e.nControl.Load() == 0 {
		t.remove(s, e)
		t.expired.Add(1)
		return dest, ref, false
	}
	e.expires = now + int64(timeout)
	return e.dest, TemplateRef[D]{e: e, gen: e.gen.Load()}, true
}

// InsertTemplate creates the persistence template tk bound to dest, or
// rebinds an existing one (a template whose destination became
// unavailable is replaced, as ip_vs_check_template invalidates it). It
// fails only when the table is full.
func (t *Table[D]) InsertTemplate(tk *Key, dest D, timeout time.Duration, now int64) (TemplateRef[D], error) {
	s, h := t.locate(tk)
	s.mu.Lock()
	if e := s.m.get(tk, h); e != nil {
		// The connections it controls keep their destination; their
		// links to it go stale with its generation.
		t.remove(s, e)
	}
	s.mu.Unlock()
	if !t.reserve(false) {
		return TemplateRef[D]{}, ErrFull
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.m.get(tk, h); old != nil { // another worker made it meanwhile
		t.count.Add(-1)
		old.expires = now + int64(timeout)
		return TemplateRef[D]{e: old, gen: old.gen.Load()}, nil
	}
	e := t.alloc(s)
	e.key = *tk
	e.dest = dest
	e.state = StateNone
	if tk.Protocol != 6 {
		e.state = StateUDP
	}
	e.flags = flagTemplate
	e.expires = now + int64(timeout)
	dest.ConnCounts().boundTemplate()
	t.buckets.Add(int64(s.m.put(e, h)))
	t.created.Add(1)
	return TemplateRef[D]{e: e, gen: e.gen.Load()}, nil
}

// Insert creates the connection entry of k bound to dest: InsertWith
// without options but NoOutput.
func (t *Table[D]) Insert(k *Key, dest D, noOutput bool, tcpFlags uint8, now int64) (D, Result, error) {
	c, err := t.InsertWith(k, dest, &InsertOpts[D]{NoOutput: noOutput}, tcpFlags, now)
	return c.Dest, c.Result, err
}

// InsertControlled is InsertWith with a persistence template.
func (t *Table[D]) InsertControlled(k *Key, dest D, noOutput bool, tmpl TemplateRef[D], tcpFlags uint8, now int64) (D, Result, error) {
	c, err := t.InsertWith(k, dest, &InsertOpts[D]{NoOutput: noOutput, Template: tmpl}, tcpFlags, now)
	return c.Dest, c.Result, err
}

// InsertWith creates the connection entry of k bound to dest, as
// ip_vs_conn_new does (in state NONE, counted inactive), links it to its
// persistence template and indexes its reply key if the options say so,
// then applies the packet that created it. If a live entry for k exists
// already (another worker inserted it first), that entry is advanced
// instead and returned. At the bound, the oldest half-open connection is
// evicted to make room; when there is none, err is ErrFull and nothing
// changes.
func (t *Table[D]) InsertWith(k *Key, dest D, opts *InsertOpts[D], tcpFlags uint8, now int64) (c Conn[D], err error) {
	if !t.reserve(true) {
		return c, ErrFull
	}
	s, h := t.locate(k)
	s.mu.Lock()
	if e := s.m.get(k, h); e != nil {
		if e.expires > now && e.flags&flagTemplate == 0 {
			t.count.Add(-1) // give the reservation back
			c.Old = e.state
			t.advance(e, Input, tcpFlags, now)
			c.New = e.state
			c.Dest, c.Key, c.Aux = e.dest, e.key, e.aux
			s.mu.Unlock()
			return c, nil
		}
		t.remove(s, e)
		t.expired.Add(1)
	}
	e := t.alloc(s)
	e.key = *k
	e.dest = dest
	e.state = StateNone
	e.flags = flagInactive
	e.aux = opts.Aux
	if opts.NoOutput {
		e.flags |= flagNoOutput
	}
	if tm := opts.Template; tm.e != nil && tm.e.gen.Load() == tm.gen {
		tm.e.nControl.Add(1)
		e.ctl, e.ctlGen = tm.e, tm.gen
	}
	var ref replyRef
	if opts.Reply != nil {
		e.flags |= flagReply
		e.reply = *opts.Reply
		ref = replyRef{key: *k, gen: e.gen.Load()}
	}
	e.expires = now + int64(newConnTimeout)
	dest.ConnCounts().bound(false)
	t.buckets.Add(int64(s.m.put(e, h)))
	t.created.Add(1)
	c.Old = StateNone
	c.Created = true
	t.advance(e, Input, tcpFlags, now)
	c.New = e.state
	c.Dest, c.Key, c.Aux = dest, *k, e.aux
	s.mu.Unlock()
	if opts.Reply != nil {
		// Index the reply key after the entry exists, under its own
		// shard's lock (never two shard locks at once). The packet that
		// creates a connection is forwarded after this returns, so no
		// reply can come before the index holds it.
		rs := t.shardOf(opts.Reply)
		rs.mu.Lock()
		rs.rm[*opts.Reply] = ref
		rs.mu.Unlock()
	}
	return c, nil
}

// reserve takes one place in the table, evicting the oldest half-open
// connection if the table is full and evict is set. The caller holds no
// shard lock.
func (t *Table[D]) reserve(evict bool) bool {
	for {
		c := t.count.Load()
		if c < t.max {
			if t.count.CompareAndSwap(c, c+1) {
				return true
			}
			continue
		}
		if !evict || !t.evictOne() {
			t.full.Add(1)
			return false
		}
	}
}

// evictOne removes the oldest half-open connection: the oldest in
// SYN_RECV, else the oldest in SYNACK. It reports whether there was one.
// The caller holds no shard lock.
func (t *Table[D]) evictOne() bool {
	for {
		t.hoMu.Lock()
		l := &t.halfOpen[0]
		if l.head == nil {
			l = &t.halfOpen[1]
		}
		e := l.head
		if e == nil {
			t.hoMu.Unlock()
			return false
		}
		t.unlinkHalfOpen(e)
		key, gen := e.key, e.gen.Load()
		t.hoMu.Unlock()

		s, h := t.locate(&key)
		s.mu.Lock()
		if cur := s.m.get(&key, h); cur == e && e.gen.Load() == gen && (e.state == StateSynRecv || e.state == StateSynAck) {
			t.remove(s, e)
			s.mu.Unlock()
			t.evicted.Add(1)
			return true
		}
		// It changed state or was removed meanwhile: try the next.
		s.mu.Unlock()
	}
}

// halfOpenList returns which half-open list a state belongs on (1+index),
// or 0.
func halfOpenList(s State) uint8 {
	switch s {
	case StateSynRecv:
		return 1
	case StateSynAck:
		return 2
	}
	return 0
}

// unlinkHalfOpen takes e off its half-open list. hoMu is held.
func (t *Table[D]) unlinkHalfOpen(e *entry[D]) {
	if e.hoList == 0 {
		return
	}
	l := &t.halfOpen[e.hoList-1]
	if e.hoPrev != nil {
		e.hoPrev.hoNext = e.hoNext
	} else {
		l.head = e.hoNext
	}
	if e.hoNext != nil {
		e.hoNext.hoPrev = e.hoPrev
	} else {
		l.tail = e.hoPrev
	}
	e.hoPrev, e.hoNext, e.hoList = nil, nil, 0
	l.n--
}

// moveHalfOpen puts e on the half-open list its new state belongs on (or
// on none). The shard lock is held.
func (t *Table[D]) moveHalfOpen(e *entry[D], s State) {
	want := halfOpenList(s)
	t.hoMu.Lock()
	if e.hoList != want {
		t.unlinkHalfOpen(e)
		if want != 0 {
			l := &t.halfOpen[want-1]
			e.hoPrev = l.tail
			if l.tail != nil {
				l.tail.hoNext = e
			} else {
				l.head = e
			}
			l.tail = e
			e.hoList = want
			l.n++
		}
	}
	t.hoMu.Unlock()
}

// advance applies one packet to a connection entry: the TCP state machine
// (or the UDP state), the active/inactive accounting, the half-open lists
// and the new timeout. The shard lock is held.
func (t *Table[D]) advance(e *entry[D], dir Direction, tcpFlags uint8, now int64) {
	ts := t.timeouts.Load()
	if e.key.Protocol != 6 {
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
		if halfOpenList(next) != halfOpenList(e.state) {
			t.moveHalfOpen(e, next)
		}
		e.state = next
	}
	e.expires = now + int64(ts.timeout(next))
}

// remove deletes an entry and accounts for it. The shard lock is held.
func (t *Table[D]) remove(s *shard[D], e *entry[D]) {
	s.m.del(e)
	if halfOpenList(e.state) != 0 || e.hoList != 0 {
		t.hoMu.Lock()
		t.unlinkHalfOpen(e)
		t.hoMu.Unlock()
	}
	if e.flags&flagTemplate != 0 {
		e.dest.ConnCounts().unboundTemplate()
	} else {
		e.dest.ConnCounts().unboundConn(e.flags&flagInactive == 0)
		if t.onRemove != nil {
			t.onRemove(&e.key, &e.aux)
		}
	}
	if e.flags&flagReply != 0 {
		t.staleMu.Lock()
		t.stale = append(t.stale, staleReply{reply: e.reply, ref: replyRef{key: e.key, gen: e.gen.Load()}})
		t.staleMu.Unlock()
	}
	if e.ctl != nil {
		if e.ctl.gen.Load() == e.ctlGen {
			e.ctl.nControl.Add(-1)
		}
		e.ctl = nil
	}
	var zero D
	e.dest = zero
	e.aux = Aux{}
	e.nControl.Store(0)
	e.gen.Add(1)
	e.next = s.free
	s.free = e
	t.count.Add(-1)
}

// Entries are allocated from the table's slab, slabEntries at a time, and
// a shard whose free list is empty takes entryChunk of them: a growing
// table makes few, large allocations, and a small one spread over many
// shards holds few idle entries. A slab is a large object (over 32 KiB),
// which the Go allocator places at the start of a page, with no header in
// front: every entry in it starts on a cache line.
const (
	slabEntries = 256
	entryChunk  = 16
)

// alloc returns a free entry for shard s, whose lock is held.
func (t *Table[D]) alloc(s *shard[D]) *entry[D] {
	if s.free == nil {
		t.slabMu.Lock()
		if len(t.slab) < entryChunk {
			t.slab = make([]entry[D], slabEntries)
		}
		chunk := t.slab[:entryChunk:entryChunk]
		t.slab = t.slab[entryChunk:]
		t.slabMu.Unlock()
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

// templateGrace is how long an expired template that still controls
// connections lives on before it is checked again (ip_vs_conn_expire's
// expire_later: 60 s).
const templateGrace = 60 * time.Second

// SweepPeriod is the time ReapDue takes to visit every entry once: a
// connection is removed at most this long after it expired.
const SweepPeriod = 2 * time.Second

// reapStepBuckets is how many index buckets (about as many entries) one
// step of ReapDue sweeps: with a million entries, each a cache miss, a
// step takes a few microseconds.
const reapStepBuckets = 16

// ReapDue takes the sweep's steps that are due by now, at most max of
// them, at the pace of one sweep of the whole table per SweepPeriod, and
// returns the number of entries removed. A step sweeps the next
// reapStepBuckets buckets of the shards' indexes. The data path's workers
// call it once per batch with a small max, so the expiry work is spread thinly
// over the threads that forward, between batches, where it can never
// preempt them; a background goroutine calls it with a larger max to catch
// up while the workers are idle.
func (t *Table[D]) ReapDue(now int64, max int) int {
	next := t.reapNext.Load()
	if now < next {
		return 0
	}
	steps := (t.buckets.Load() + reapStepBuckets - 1) / reapStepBuckets
	if steps < 1 {
		steps = 1
	}
	per := int64(SweepPeriod) / steps
	if per <= 0 {
		per = 1
	}
	var n int64
	if next == 0 {
		n = 1
	} else {
		n = (now-next)/per + 1
	}
	if n > int64(max) {
		n = int64(max)
	}
	if n <= 0 {
		return 0
	}
	advanced := next + n*per
	if next == 0 || advanced < now-int64(SweepPeriod) {
		// Starting, or a whole sweep behind: the backlog is dropped
		// rather than worked off in one long call.
		advanced = now + per
	}
	if !t.reapNext.CompareAndSwap(next, advanced) {
		return 0 // another worker took these steps
	}
	t.dropStaleReplies()
	removed := 0
	t.reapMu.Lock()
	for range n {
		removed += t.reapStep(now)
	}
	t.reapSteps += uint64(n)
	t.reapMu.Unlock()
	t.expired.Add(uint64(removed))
	return removed
}

// reapStep sweeps the next reapStepBuckets buckets from the cursor, over
// as many shards as that takes (empty ones cost nothing), and moves the
// cursor on. reapMu is held.
func (t *Table[D]) reapStep(now int64) (removed int) {
	left := reapStepBuckets
	for visited := 0; left > 0 && visited < len(t.shards); {
		s := &t.shards[t.reapPos]
		s.mu.Lock()
		nb := len(s.m.buckets)
		end := min(t.reapBucket+left, nb)
		for b := t.reapBucket; b < end; b++ {
			for e := s.m.buckets[b].Load(); e != nil; {
				next := e.next
				removed += t.reapEntry(s, e, now)
				e = next
			}
		}
		if end > t.reapBucket {
			left -= end - t.reapBucket
		}
		if end >= nb {
			t.reapPos = (t.reapPos + 1) % len(t.shards)
			t.reapBucket = 0
			visited++
		} else {
			t.reapBucket = end
		}
		s.mu.Unlock()
	}
	return removed
}

// reapEntry removes e if it expired and returns 1, or returns 0. An
// expired template that still controls connections is kept for another
// minute, as IPVS keeps it. The shard lock is held.
func (t *Table[D]) reapEntry(s *shard[D], e *entry[D], now int64) int {
	switch {
	case e.expires > now:
		return 0
	case e.flags&flagTemplate != 0 && e.nControl.Load() > 0:
		e.expires = now + int64(templateGrace)
		return 0
	}
	t.remove(s, e)
	return 1
}

// Reap removes expired entries from the next n whole shards (in rotation)
// and returns how many it removed: ReapDue's sweep in coarser steps, for
// callers that want a shard swept now (tests, a table being emptied). An
// expired template that still controls connections is kept for another
// minute, as IPVS keeps it.
func (t *Table[D]) Reap(now int64, n int) int {
	t.reapMu.Lock()
	start := t.reapPos
	if n > len(t.shards) {
		n = len(t.shards)
	}
	t.reapPos = (start + n) % len(t.shards)
	t.reapBucket = 0
	t.reapMu.Unlock()
	t.dropStaleReplies()
	removed := 0
	for i := range n {
		s := &t.shards[(start+i)%len(t.shards)]
		s.mu.Lock()
		s.m.each(func(e *entry[D]) {
			removed += t.reapEntry(s, e, now)
		})
		s.mu.Unlock()
	}
	t.expired.Add(uint64(removed))
	return removed
}

// dropStaleReplies removes the reply-index entries of removed connections,
// unless a new connection took the same reply key meanwhile.
func (t *Table[D]) dropStaleReplies() {
	if !t.dropMu.TryLock() {
		return // another Reap is at it
	}
	defer t.dropMu.Unlock()
	t.staleMu.Lock()
	stale := t.stale
	t.stale = t.spare[:0]
	t.staleMu.Unlock()
	for _, st := range stale {
		rs := t.shardOf(&st.reply)
		rs.mu.Lock()
		if rs.rm[st.reply] == st.ref {
			delete(rs.rm, st.reply)
		}
		rs.mu.Unlock()
	}
	t.spare = stale
}

// ReplyIndexLen returns the number of reply-index entries (for tests).
func (t *Table[D]) ReplyIndexLen() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.rm)
		s.mu.Unlock()
	}
	return n
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
	// Template marks a persistence template (its key has client port 0
	// and, for port-0 services, virtual port 0).
	Template bool
	// Reply is the key of the real server's replies (NAT, FULLNAT), if
	// HasReply.
	Reply    Key
	HasReply bool
	Aux      Aux
}

// Walk calls fn with a copy of every live entry, shard by shard, until fn
// returns false. It holds one shard lock at a time, while copying.
func (t *Table[D]) Walk(now int64, fn func(Entry[D]) bool) {
	var buf []Entry[D]
	for i := range t.shards {
		s := &t.shards[i]
		buf = buf[:0]
		s.mu.Lock()
		s.m.each(func(e *entry[D]) {
			if e.expires > now || (e.flags&flagTemplate != 0 && e.nControl.Load() > 0) {
				buf = append(buf, Entry[D]{Key: e.key, Dest: e.dest, State: e.state, Expires: e.expires,
					NoOutput: e.flags&flagNoOutput != 0, Template: e.flags&flagTemplate != 0,
					Reply: e.reply, HasReply: e.flags&flagReply != 0, Aux: e.aux})
			}
		})
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
// does for a synchronised connection. It fails only when the table is full
// (imports do not evict).
func (t *Table[D]) Import(in Entry[D]) error {
	s, h := t.locate(&in.Key)
	s.mu.Lock()
	if e := s.m.get(&in.Key, h); e != nil {
		t.remove(s, e)
	}
	s.mu.Unlock()
	if !t.reserve(false) {
		return ErrFull
	}
	s.mu.Lock()
	if e := s.m.get(&in.Key, h); e != nil {
		t.remove(s, e)
	}
	e := t.alloc(s)
	e.key = in.Key
	e.dest = in.Dest
	e.state = in.State
	e.expires = in.Expires
	e.aux = in.Aux
	e.flags = 0
	if in.NoOutput {
		e.flags |= flagNoOutput
	}
	indexReply := in.HasReply && !in.Template
	if indexReply {
		e.flags |= flagReply
		e.reply = in.Reply
	}
	ref := replyRef{key: in.Key, gen: e.gen.Load()}
	if in.Template {
		e.flags |= flagTemplate
		in.Dest.ConnCounts().boundTemplate()
	} else {
		active := in.State.Active()
		if !active {
			e.flags |= flagInactive
		}
		in.Dest.ConnCounts().bound(active)
		if halfOpenList(e.state) != 0 {
			t.moveHalfOpen(e, e.state)
		}
	}
	t.buckets.Add(int64(s.m.put(e, h)))
	t.created.Add(1)
	s.mu.Unlock()
	if indexReply {
		rs := t.shardOf(&in.Reply)
		rs.mu.Lock()
		rs.rm[in.Reply] = ref
		rs.mu.Unlock()
	}
	return nil
}

// Clear removes every entry: connections first, then templates.
func (t *Table[D]) Clear() {
	defer t.dropStaleReplies()
	for _, templates := range []bool{false, true} {
		for i := range t.shards {
			s := &t.shards[i]
			s.mu.Lock()
			s.m.each(func(e *entry[D]) {
				if (e.flags&flagTemplate != 0) == templates {
					t.remove(s, e)
				}
			})
			s.mu.Unlock()
		}
	}
}

// Now returns the monotonic clock in nanoseconds as the table's callers
// should pass it: time since an arbitrary process-wide origin.
func Now() int64 { return int64(time.Since(origin)) }

var origin = time.Now()
