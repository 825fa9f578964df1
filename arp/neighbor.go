package arp

import (
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// State is a neighbour's resolution state. The zero value is invalid.
type State uint8

// Neighbour states; see the package doc for the transitions.
const (
	_          State = iota
	Incomplete       // never resolved yet: requests go out every Retry
	Reachable        // resolved and answering; MAC returns ok=true
	Failed           // MaxProbes (or StaleAfter) requests unanswered
)

func (s State) String() string {
	switch s {
	case Incomplete:
		return "incomplete"
	case Reachable:
		return "reachable"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// stateShift places the state above the 48 bits of MAC address in a
// Neighbor's packed word, so that one atomic load gives both.
const stateShift = 48

func pack(s State, mac [6]byte) uint64 {
	return uint64(s)<<stateShift |
		uint64(mac[0])<<40 | uint64(mac[1])<<32 | uint64(mac[2])<<24 |
		uint64(mac[3])<<16 | uint64(mac[4])<<8 | uint64(mac[5])
}

// cacheLine is the padding that keeps the per-packet word apart from the
// drop counter (64 octets: the cache line of x86-64 and most arm64 cores).
const cacheLine = 64

// Neighbor is the link-layer address of one IPv4 neighbour on one
// interface. Safe for concurrent use; the data path reads it without locks
// (MAC, State, Drop are single atomic operations; Addr and Ifindex never
// change). Obtain one from Resolver.Neighbor (or NewStatic); the zero value
// is not usable.
type Neighbor struct {
	// word packs State (bits 48..55) and the MAC (bits 0..47). It is
	// written only by the Resolver, under Resolver.mu.
	word atomic.Uint64
	_    [cacheLine - 8]byte
	// drops counts frames the data path dropped for want of a MAC.
	drops atomic.Uint64

	addr    netip.Addr
	ifindex int
	r       *Resolver // nil for a static neighbour

	// Guarded by r.mu.
	refs     int
	mac      [6]byte // last known MAC, kept while Failed for listings
	everMAC  bool    // mac has been learnt at least once
	state    State
	probes   int           // requests sent without a reply, in the current phase
	backoff  time.Duration // current probe interval while Failed
	timer    timer
	timerGen uint64 // bumped on every (re)schedule; stale callbacks return
	updated  time.Time
	// learnedBy is the kind of frame the MAC was last learnt from (a
	// reply to gvs's request, or the neighbour's own request); 0 for a
	// static neighbour or one never resolved.
	learnedBy Operation
}

// NewStatic returns a neighbour that is permanently Reachable at mac,
// owned by no Resolver (like `ip neigh add ... nud permanent`). It serves
// statically configured real servers, and tests of the data path that
// need a resolved Neighbor without sockets.
func NewStatic(ifindex int, addr netip.Addr, mac [6]byte) *Neighbor {
	n := &Neighbor{addr: addr, ifindex: ifindex, mac: mac, everMAC: true, state: Reachable, refs: 1}
	n.word.Store(pack(Reachable, mac))
	return n
}

// MAC returns the neighbour's Ethernet address, and ok=false (with a zero
// mac) while it is unresolved or failed. It is one atomic load and does not
// allocate: the data path calls it per packet.
func (n *Neighbor) MAC() (mac [6]byte, ok bool) {
	w := n.word.Load()
	if State(w>>stateShift) != Reachable {
		return mac, false
	}
	mac[0] = byte(w >> 40)
	mac[1] = byte(w >> 32)
	mac[2] = byte(w >> 24)
	mac[3] = byte(w >> 16)
	mac[4] = byte(w >> 8)
	mac[5] = byte(w)
	return mac, true
}

// State returns the current state (one atomic load).
func (n *Neighbor) State() State { return State(n.word.Load() >> stateShift) }

// Addr returns the neighbour's IPv4 address.
func (n *Neighbor) Addr() netip.Addr { return n.addr }

// Ifindex returns the index of the interface the neighbour is on.
func (n *Neighbor) Ifindex() int { return n.ifindex }

// Drop counts one frame the data path dropped because the neighbour is
// unresolved. One atomic add; no allocation.
func (n *Neighbor) Drop() { n.drops.Add(1) }

// Drops returns the number of Drop calls so far.
func (n *Neighbor) Drops() uint64 { return n.drops.Load() }

func (n *Neighbor) String() string {
	return fmt.Sprintf("%s on ifindex %d", n.addr, n.ifindex)
}

// setState publishes state and MAC to the data path. Caller holds r.mu (or
// owns n exclusively).
func (n *Neighbor) setState(s State) {
	n.state = s
	var mac [6]byte
	if s == Reachable {
		mac = n.mac
	}
	n.word.Store(pack(s, mac))
}

// NeighborInfo is a snapshot of one neighbour, for listings.
type NeighborInfo struct {
	Addr    netip.Addr
	Ifindex int
	// MAC is the last learnt address (kept while Failed), nil if never
	// resolved.
	MAC   net.HardwareAddr
	State State
	// Updated is when the neighbour last changed state or was last
	// confirmed by a frame from it.
	Updated time.Time
	Refs    int    // outstanding Resolver.Neighbor references
	Probes  int    // requests sent since the last reply (0 when fresh)
	Drops   uint64 // frames dropped by the data path for want of a MAC
	// LearnedFrom says where MAC came from: "reply" (an ARP reply to
	// gvs's request), "request" (an ARP request the neighbour sent),
	// "static" (NewStatic), or "" (never resolved).
	LearnedFrom string
}

// Info returns a snapshot of the neighbour (for gvs --trace: how its MAC
// was learnt and when). It takes the resolver's lock; the data path never
// calls it.
func (n *Neighbor) Info() NeighborInfo {
	if n.r == nil {
		return n.info()
	}
	n.r.mu.Lock()
	defer n.r.mu.Unlock()
	return n.info()
}

func (n *Neighbor) info() NeighborInfo {
	ni := NeighborInfo{
		Addr:    n.addr,
		Ifindex: n.ifindex,
		State:   n.state,
		Updated: n.updated,
		Refs:    n.refs,
		Probes:  n.probes,
		Drops:   n.drops.Load(),
	}
	if n.everMAC {
		ni.MAC = net.HardwareAddr(append([]byte(nil), n.mac[:]...))
	}
	switch {
	case n.r == nil:
		ni.LearnedFrom = "static"
	case n.learnedBy == OpReply:
		ni.LearnedFrom = "reply"
	case n.learnedBy == OpRequest:
		ni.LearnedFrom = "request"
	}
	return ni
}
