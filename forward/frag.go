package forward

import (
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/service"
)

// IPv4 fragments
//
// Only the first fragment of a fragmented TCP or UDP datagram carries the
// ports that name its connection. gvs handles the first fragment as any
// packet (classify, check, connection, scheduling, rewrite) and remembers,
// in a small table keyed as the receiver's reassembly is (source,
// destination, protocol, IP ID: RFC 791's datagram identity), the ports
// and direction it found. A later fragment of the same datagram finds
// them there, and with them its connection, and follows the first
// fragment to the same real server, rewritten the same way (addresses and
// IP header only: it has no TCP/UDP header). A later fragment that comes
// before its first one, or after its entry was evicted or expired, is
// dropped and counted (Fragment, "frag_no_first"): gvs does not hold
// fragments back or reassemble them, as Katran does not (IPVS, inside the
// kernel, works on reassembled packets). Linux sends a datagram's
// fragments in order, first fragment first.
//
// NAT and FULLNAT change ports and addresses, which the TCP/UDP checksum
// covers (ports in the header, addresses through the pseudo-header). The
// checksum field is in the first fragment, and RFC 1624's incremental
// update depends only on the old and new values of the changed words, not
// on the data the sum runs over (wherever it is): updating it in the first
// fragment for the new ports and addresses leaves it right for the whole
// datagram, provided every fragment's IP header gets the same new
// addresses, which the later fragments do. The real server reassembles
// and verifies one correct datagram. DR sends the fragments on as they
// are; TUN wraps each in its own outer header.

const (
	// fragWays is the number of entries of a set: a datagram's entry goes
	// into the set its key hashes to, replacing an expired entry or the
	// one that expires first.
	fragWays = 8
	// fragSets is the number of sets: 8192 entries of 32 bytes (256 KiB)
	// in all, room for the fragmented datagrams of 30 s at about 270 per
	// second, before the oldest entries go.
	fragSets = 1024
	// fragTimeout is how long a first fragment's entry places later
	// fragments: Linux's net.ipv4.ipfrag_time (30 s), the time a receiver
	// waits for the fragments of a datagram.
	fragTimeout = 30 * time.Second
)

// fragTable remembers the ports of the datagrams whose first fragment gvs
// forwarded, by datagram. It is shared by the workers (a datagram's
// fragments may be read by different ones), safe for concurrent use, and
// bounded: its memory is allocated once, and nothing on its paths
// allocates.
type fragTable struct {
	sets []fragSet
	seed uint64

	placed  atomic.Uint64 // later fragments placed through the table
	evicted atomic.Uint64 // live entries replaced by another datagram's
}

type fragSet struct {
	mu   sync.Mutex
	hand uint8 // the entry a full set gives up next: round robin, so the oldest
	e    [fragWays]fragEntry
}

// fragKey is a datagram's identity (RFC 791: source, destination,
// protocol, identification).
type fragKey struct {
	src, dst [4]byte
	id       uint16
	proto    uint8
}

type fragEntry struct {
	key          fragKey
	reply        bool // the datagram is a NAT or FULLNAT real server's reply
	sport, dport uint16
	expires      int64 // monotonic ns; 0: free
}

func newFragTable() *fragTable {
	return &fragTable{sets: make([]fragSet, fragSets), seed: rand.Uint64() | 1}
}

func fragKeyOf(p *packet) fragKey {
	return fragKey{src: p.src, dst: p.dst, id: p.ip.ID(), proto: p.proto}
}

// set returns the set of k: a multiplicative hash with a random seed, so
// that nobody outside can aim many datagrams at one set.
func (t *fragTable) set(k *fragKey) *fragSet {
	a := uint64(k.src[0])<<24 | uint64(k.src[1])<<16 | uint64(k.src[2])<<8 | uint64(k.src[3])
	b := uint64(k.dst[0])<<24 | uint64(k.dst[1])<<16 | uint64(k.dst[2])<<8 | uint64(k.dst[3])
	h := (a<<32 | b) ^ t.seed
	h = bits.RotateLeft64(h*0x9e3779b97f4a7c15, 29) ^ (uint64(k.id)<<8 | uint64(k.proto))
	h *= 0xbf58476d1ce4e5b9
	return &t.sets[(h>>32)%uint64(len(t.sets))]
}

// put records the ports of the datagram whose first fragment p is, in
// its own entry if it has one (a datagram sent again), else a free or
// expired one, else the set's oldest.
func (t *fragTable) put(p *packet, reply bool, now int64) {
	k := fragKeyOf(p)
	s := t.set(&k)
	s.mu.Lock()
	var victim *fragEntry
	for i := range s.e {
		e := &s.e[i]
		if e.key == k || e.expires <= now {
			victim = e
			break
		}
	}
	if victim == nil {
		// Full of live datagrams: the one entered longest ago goes
		// (every entry lives as long, so it also expires first).
		victim = &s.e[s.hand]
		s.hand = (s.hand + 1) % fragWays
		t.evicted.Add(1)
	}
	*victim = fragEntry{key: k, reply: reply, sport: p.sport, dport: p.dport, expires: now + int64(fragTimeout)}
	s.mu.Unlock()
}

// get returns the entry of the datagram a later fragment p belongs to.
func (t *fragTable) get(p *packet, now int64) (e fragEntry, ok bool) {
	k := fragKeyOf(p)
	s := t.set(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.e {
		if s.e[i].key == k && s.e[i].expires > now {
			return s.e[i], true
		}
	}
	return e, false
}

// FragStats are the fragment table's counters.
type FragStats struct {
	// Tracked is the number of datagrams whose first fragment is
	// remembered (expired entries not yet reused included), Capacity
	// the table's bound.
	Tracked, Capacity int
	// Placed counts later fragments forwarded through the table;
	// Evicted, entries of live datagrams replaced by another datagram's
	// when their set was full.
	Placed, Evicted uint64
}

// FragStats returns the fragment table's counters.
func (e *Engine) FragStats() FragStats {
	t := e.frags
	s := FragStats{Capacity: len(t.sets) * fragWays, Placed: t.placed.Load(), Evicted: t.evicted.Load()}
	for i := range t.sets {
		set := &t.sets[i]
		set.mu.Lock()
		for j := range set.e {
			if set.e[j].expires != 0 {
				s.Tracked++
			}
		}
		set.mu.Unlock()
	}
	return s
}

// handleFragment places a later fragment of a TCP or UDP datagram: if
// gvs forwarded the datagram's first fragment, the fragment goes to the
// same real server by the same method (a client's, or a NAT or FULLNAT
// real server's reply); otherwise it is dropped if it is to a virtual
// address (or a FULLNAT local address) and left alone if not.
func (w *Worker) handleFragment(f *afpacket.Frame, p *packet, now int64, snap *service.Snapshot) Reason {
	ent, ok := w.e.frags.get(p, now)
	if !ok {
		if snap.IsVirtual(p.dst, p.proto) || snap.IsLocalAddr(p.dst) {
			return Fragment
		}
		return NotOurs
	}
	if f.Len > len(f.Data) {
		return Truncated
	}
	if r := p.check(); r != Forwarded {
		return r
	}
	p.sport, p.dport = ent.sport, ent.dport
	conns := w.e.cfg.Conns
	if ent.reply {
		rk := &w.rkey
		*rk = conntrack.KeyV4(p.proto, p.src, p.sport, p.dst, p.dport)
		c, ok := conns.PeekReply(rk, now)
		if !ok {
			return Fragment
		}
		w.e.frags.placed.Add(1)
		return w.backward(f, p, &c)
	}
	k := &w.key
	*k = conntrack.KeyV4(p.proto, p.src, p.sport, p.dst, p.dport)
	c, ok := conns.Peek(k, now)
	if !ok {
		return Fragment
	}
	if w.e.cfg.ExpireNodestConn && c.Dest.Removed() {
		return DestGone
	}
	w.e.frags.placed.Add(1)
	return w.forward(f, p, &c, nil)
}
