// Package service is gvs's virtual-service table: the services (protocol,
// virtual address, port) with their scheduler and settings, and each
// service's real servers, as ipvsadm -A/-E/-D/-a/-e/-d/-C/-Z change them.
//
// Two kinds of readers use it. The data path looks a frame's destination
// up in an immutable Snapshot (one atomic load per batch, then a map
// lookup), and asks the Service it finds for a real server for each new
// connection. The control plane changes the table through Apply, which
// takes a whole list of operations (one gvsadm command, or a whole restore
// file) and applies all of them or none: it first checks every operation
// against a model of the table, then lets the caller prepare what the new
// real servers need (their next hop, the kernel filter) and may still
// refuse, and only then changes the live objects, which cannot fail, and
// publishes a new Snapshot. Forwarding never pauses and established flows
// keep their real servers: a connection entry points at its *Real, which
// lives on (unlisted) after the server is removed, until its flows expire.
package service

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/health"
	"github.com/gvs-project/gvs/sched"
)

// Key identifies a virtual service. It holds no pointers, so the data path
// can look it up in a map cheaply.
type Key struct {
	Addr     [4]byte
	Port     uint16
	Protocol uint8 // 6 TCP, 17 UDP
}

// KeyOf builds a Key. addr must be IPv4.
func KeyOf(proto uint8, addr netip.Addr, port uint16) Key {
	return Key{Addr: addr.As4(), Port: port, Protocol: proto}
}

// AddrPort returns the virtual address and port.
func (k Key) AddrPort() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4(k.Addr), k.Port)
}

// ProtocolName returns "tcp" or "udp".
func (k Key) ProtocolName() string {
	if k.Protocol == 17 {
		return "udp"
	}
	return "tcp"
}

func (k Key) String() string {
	if k.Protocol == 17 {
		return "UDP " + k.AddrPort().String()
	}
	return "TCP " + k.AddrPort().String()
}

// Forward is a real server's forwarding method.
type Forward uint8

const (
	// Route is direct routing (DR, ipvsadm -g, listed as "Route"): only
	// the destination MAC changes.
	Route Forward = iota + 1
	// Tunnel is IPIP encapsulation (-i, "Tunnel").
	Tunnel
	// Masq is NAT (-m, "Masq").
	Masq
	// FullNAT rewrites both addresses (gvs's --fullnat, "FullNat").
	FullNAT
)

// Hop is where frames for a real server leave: the egress interface and
// the next hop's MAC address (for DR, the real server's own MAC). The arp
// package's *Neighbor implements it. MAC and Drop are called per packet and
// must not allocate.
type Hop interface {
	MAC() (mac [6]byte, ok bool)
	Ifindex() int
	// Drop counts a frame dropped because MAC had no address.
	Drop()
}

// Counters are a service's or real server's traffic counters, as ipvsadm
// --stats shows them. All fields are updated atomically by the data path.
type Counters struct {
	Conns, InPkts, InBytes, OutPkts, OutBytes atomic.Uint64
}

// Zero resets the counters (ipvsadm -Z).
func (c *Counters) Zero() {
	c.Conns.Store(0)
	c.InPkts.Store(0)
	c.InBytes.Store(0)
	c.OutPkts.Store(0)
	c.OutBytes.Store(0)
}

// Link is where frames for a real server leave: the next hop (for DR the
// server itself, for the other methods the next hop the routing table
// names) and the director's address towards the server (the outer source
// address of TUN's IPIP packets).
type Link struct {
	Hop    Hop
	Source [4]byte
}

// Real is one real server of one service. It embeds the scheduler's view
// (weight, connection counts), so a *Real is the destination the
// connection table binds flows to. Its address and port never change;
// weight, thresholds, forwarding method and link change in place (ipvsadm
// -e), and the data path reads them atomically.
type Real struct {
	sched.Dest
	Counters

	Addr netip.Addr
	Port uint16

	fwd  atomic.Uint32
	link atomic.Pointer[Link]

	service *Service
	// flags are flagRemoved, flagFailed and flagOut (health.go),
	// changed under the service's mu and read by the data path.
	flags atomic.Uint32
	// cfgWeight is the weight -a/-e set; the scheduler's weight (Dest)
	// is 0 while a health check has the server quiesced.
	cfgWeight atomic.Int32
	// check is the server's health check, nil if none.
	check atomic.Pointer[health.Spec]
}

// NewReal returns a real server (for tests and the service table).
func NewReal(addr netip.Addr, port uint16, fwd Forward, link *Link) *Real {
	r := &Real{Addr: addr, Port: port}
	r.fwd.Store(uint32(fwd))
	r.link.Store(link)
	return r
}

// Forward returns the forwarding method of new connections.
func (r *Real) Forward() Forward { return Forward(r.fwd.Load()) }

// Link returns where frames for the server leave. It is nil only before
// the service table's prepare step has given the server one.
func (r *Real) Link() *Link { return r.link.Load() }

// SetLink sets the server's link (the service table's prepare callback
// does, for new and re-linked servers).
func (r *Real) SetLink(l *Link) { r.link.Store(l) }

// Service returns the service the real server belongs (or belonged) to.
func (r *Real) Service() *Service { return r.service }

// Removed reports whether the real server was removed from its service
// (its flows may still run until they expire), or is out of it while its
// health check has it down and the service removes failed servers.
// Persistence templates to a removed server are not followed.
func (r *Real) Removed() bool { return r.flags.Load()&(flagRemoved|flagOut) != 0 }

// AddrPort returns the real server's address and port.
func (r *Real) AddrPort() netip.AddrPort { return netip.AddrPortFrom(r.Addr, r.Port) }

// DefaultPersistTimeout is the persistence timeout of ipvsadm -p without
// a value (IPVS_SVC_PERSISTENT_TIMEOUT, 6 minutes).
const DefaultPersistTimeout = 360

// Persistence is what the data path needs of a persistent service.
type Persistence struct {
	// Timeout is how long a client's template outlives the last
	// connection it placed.
	Timeout time.Duration
	// Mask is the persistence granularity (ipvsadm -M) as an IPv4 mask:
	// clients whose addresses agree under it share a real server.
	Mask [4]byte
}

// Settings are a service's settings, as ipvsadm -A and -E set them.
type Settings struct {
	Scheduler  string
	SchedFlags []string
	Persistent bool
	Timeout    uint32 // persistence timeout in seconds
	Netmask    uint8  // persistence granularity as a prefix length
	OnePacket  bool
	// OnFailure is what a failed health check does to a real server
	// (gvsadm --on-failure). In EditService, KeepOnFailure leaves it as
	// it is; a service added with it quiesces.
	OnFailure OnFailure
}

// Service is a virtual service. Its real servers and scheduler are guarded
// by its own mutex, which Pick holds while the scheduler runs, as IPVS
// holds svc->sched_lock.
type Service struct {
	Key Key
	Counters

	// persist is nil for a service that is not persistent.
	persist atomic.Pointer[Persistence]
	// laddrs are FULLNAT's local addresses (gvsadm -P), replaced as a
	// whole under mu and read by the data path without a lock.
	laddrs atomic.Pointer[[]netip.Addr]

	mu       sync.Mutex
	settings Settings
	sched    sched.Scheduler
	reals    []*Real // list order: most recently added first
	// active are the servers the scheduler chooses from: reals without
	// those a health check took out (FailRemove). A server back from
	// being out goes first, as IPVS lists a server added again.
	active []*Real
	dests  []*sched.Dest // the active servers, as the scheduler sees them
}

// Pick asks the scheduler for a real server for a new connection. It
// returns nil when no real server is available.
func (s *Service) Pick(k *conntrack.Key) *Real {
	s.mu.Lock()
	i := s.sched.Pick(s.dests, k)
	var r *Real
	if i >= 0 && i < len(s.active) {
		r = s.active[i]
	}
	s.mu.Unlock()
	return r
}

// LocalAddrs returns the service's FULLNAT local addresses. The slice must
// not be modified.
func (s *Service) LocalAddrs() []netip.Addr {
	if p := s.laddrs.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *Service) setLocalAddrs(as []netip.Addr) { s.laddrs.Store(&as) }

// Persistence returns the service's persistence, or nil if it is not
// persistent. The data path calls it for each new connection.
func (s *Service) Persistence() *Persistence { return s.persist.Load() }

func (s *Service) setPersistence(st *Settings) {
	if !st.Persistent {
		s.persist.Store(nil)
		return
	}
	var m [4]byte
	bits := uint32(0xffffffff) << (32 - uint(st.Netmask))
	if st.Netmask == 0 {
		bits = 0
	}
	m[0], m[1], m[2], m[3] = byte(bits>>24), byte(bits>>16), byte(bits>>8), byte(bits)
	s.persist.Store(&Persistence{Timeout: time.Duration(st.Timeout) * time.Second, Mask: m})
}

// Settings returns the service's settings.
func (s *Service) Settings() Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settings
}

// Reals returns the service's real servers in list order (a copy).
func (s *Service) Reals() []*Real {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Real(nil), s.reals...)
}

// Snapshot is an immutable view of the services, for the data path.
type Snapshot struct {
	services map[Key]*Service
	portZero bool // some service has port 0 (takes every port of its VIP)
	// natSources are the NAT real servers (address, port, protocol):
	// frames from them are the replies gvs rewrites back.
	natSources map[Key]bool
	// localAddrs are FULLNAT's local addresses: frames to them are the
	// real servers' replies.
	localAddrs map[[4]byte]bool
	// virtual are the services' addresses, each with the protocols it has
	// services for (a bit per protocol, protoBit).
	virtual map[[4]byte]uint8
}

// protoBit is a protocol's bit in Snapshot.virtual.
func protoBit(proto uint8) uint8 {
	switch proto {
	case 6:
		return 1
	case 17:
		return 2
	}
	return 0
}

// IsVirtual reports whether addr is the address of a virtual service of
// protocol proto (of any protocol if proto is 0): the data path counts
// frames to such an address on a port no service has, and places the
// later fragments of datagrams to it.
func (s *Snapshot) IsVirtual(addr [4]byte, proto uint8) bool {
	b, ok := s.virtual[addr]
	if proto == 0 {
		return ok
	}
	return b&protoBit(proto) != 0
}

// IsLocalAddr reports whether addr is a FULLNAT local address.
func (s *Snapshot) IsLocalAddr(addr [4]byte) bool { return s.localAddrs[addr] }

// MayBeReply reports whether a frame from src:sport to dst could be a
// real server's reply that gvs rewrites (NAT or FULLNAT), and so is worth
// a lookup in the connection table's reply index.
func (s *Snapshot) MayBeReply(proto uint8, src [4]byte, sport uint16, dst [4]byte) bool {
	if len(s.natSources) > 0 && s.natSources[Key{Addr: src, Port: sport, Protocol: proto}] {
		return true
	}
	return len(s.localAddrs) > 0 && s.localAddrs[dst]
}

// Lookup returns the service for a frame's protocol, destination address
// and port: the service of that port, else a port-0 service of the
// address (which takes every port, as IPVS's port-zero services do), else
// nil.
func (s *Snapshot) Lookup(k Key) *Service {
	if svc := s.services[k]; svc != nil {
		return svc
	}
	if s.portZero {
		k.Port = 0
		return s.services[k]
	}
	return nil
}

// Len returns the number of services.
func (s *Snapshot) Len() int { return len(s.services) }
