package arp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults and fixed intervals. The numbers are the ones the Config doc
// promises; see there and the package doc for why.
const (
	DefaultRefresh    = 30 * time.Second // well under the 300 s a bridge keeps a MAC
	DefaultRetry      = time.Second      // as Linux's retrans_time_ms (1000)
	DefaultMaxProbes  = 3                // as Linux's mcast_solicit (3)
	DefaultStaleAfter = 3                // unanswered refresh requests in a row
	DefaultMaxRetry   = 10 * time.Second // cap of the backoff while Failed

	// addrTTL is how long the namespace's address list (which addresses
	// the kernel holds, and each interface's IPv4 addresses) is reused
	// before it is read again through netlink.
	addrTTL = time.Second
	// garpRepeats gratuitous ARP rounds go out garpInterval apart when an
	// address becomes owned: a second round covers a lost first one without
	// flooding the link (keepalived sends 5 by default; arping -U -c 2 is
	// common for VIP failover scripts).
	garpRepeats  = 2
	garpInterval = 100 * time.Millisecond
	// logEvery bounds the rate of repeated error logs (send and read
	// errors, address conflicts): one per key per interval.
	logEvery = 10 * time.Second
	// readBufLen is the largest untagged Ethernet frame without FCS; ARP
	// frames are 42 to 60 octets, anything longer is malformed anyway.
	readBufLen = 1514
	// readErrPause keeps a persistently failing socket from spinning.
	readErrPause = 100 * time.Millisecond
)

// Errors returned by Resolver methods.
var (
	// ErrUnknownInterface: the ifindex is not one the Resolver was
	// created with.
	ErrUnknownInterface = errors.New("arp: unknown interface")
	// ErrNotEthernet: an interface has no 6-octet hardware address.
	ErrNotEthernet = errors.New("arp: interface is not Ethernet")
	// ErrNotSupported: the platform has no AF_PACKET sockets.
	ErrNotSupported = errors.New("arp: not supported on this platform")
)

// Config tunes a Resolver. A nil *Config, and zero (or negative) fields,
// mean the defaults.
type Config struct {
	// Refresh is how often a Reachable neighbour is requested again
	// (default 30 s): well under the 300 s a Linux bridge (and most
	// switches) keeps a learnt MAC, so switches never forget a real server
	// and flood gvs's frames to every port.
	Refresh time.Duration
	// Retry is the interval between requests for a neighbour that has not
	// answered (default 1 s).
	Retry time.Duration
	// MaxProbes unanswered requests make an Incomplete neighbour Failed
	// (default 3); it is logged once and counted, and probing goes on with
	// exponential backoff up to MaxRetry. A later reply makes it Reachable
	// again (logged once).
	MaxProbes int
	// StaleAfter unanswered refresh requests in a row (the one sent after
	// Refresh and its re-sends every Retry) make a Reachable neighbour
	// Failed (default 3).
	StaleAfter int
	// MaxRetry caps the probe backoff of a Failed neighbour (default 10 s).
	MaxRetry time.Duration
	// Logf (verbose: resolutions, recoveries, MAC changes, VIP hand-overs)
	// and Errorf (failures, conflicts, socket errors) are optional.
	Logf, Errorf func(format string, args ...any)
}

func (c *Config) normalize() Config {
	var n Config
	if c != nil {
		n = *c
	}
	if n.Refresh <= 0 {
		n.Refresh = DefaultRefresh
	}
	if n.Retry <= 0 {
		n.Retry = DefaultRetry
	}
	if n.MaxProbes <= 0 {
		n.MaxProbes = DefaultMaxProbes
	}
	if n.StaleAfter <= 0 {
		n.StaleAfter = DefaultStaleAfter
	}
	if n.MaxRetry <= 0 {
		n.MaxRetry = DefaultMaxRetry
	}
	n.MaxRetry = max(n.MaxRetry, n.Retry)
	return n
}

// frameConn reads and writes whole Ethernet frames (destination MAC first,
// no FCS) on one interface. It is the seam between the state machine and
// AF_PACKET; tests use an in-memory fake.
type frameConn interface {
	// ReadFrame blocks for the next frame and copies it into b. After
	// Close it returns an error.
	ReadFrame(b []byte) (int, error)
	// WriteFrame sends one frame. It may be called concurrently with
	// ReadFrame and with itself.
	WriteFrame(b []byte) error
	Close() error
}

// link is one interface the Resolver works on. Immutable after New.
type link struct {
	index int
	name  string
	mac   [6]byte
	conn  frameConn
}

func (l *link) String() string { return fmt.Sprintf("%s (ifindex %d)", l.name, l.index) }

// ifAddr is one IPv4 address of the namespace and the interface holding it.
type ifAddr struct {
	ifindex int
	prefix  netip.Prefix
}

// sysDeps is what a Resolver takes from the system; tests replace it.
type sysDeps struct {
	clock clock
	// addrs lists the IPv4 addresses of every interface of the namespace.
	addrs func() ([]ifAddr, error)
	// close releases what addrs uses (may be nil).
	close func() error
}

type neighKey struct {
	ifindex int
	addr    netip.Addr
}

// ownedAddr is one address SetOwned gave the Resolver.
type ownedAddr struct {
	kernel bool // the director's kernel holds it, so gvs stays silent
}

// Stats are cumulative counters since New.
type Stats struct {
	RequestsSent   uint64 // resolution and refresh requests written
	Learned        uint64 // mappings accepted (replies, or requests' sender fields)
	AnswersSent    uint64 // replies sent for owned addresses
	GratuitousSent uint64 // gratuitous ARP frames written (each request and reply counts)
	Failures       uint64 // transitions to Failed
	Received       uint64 // frames read, counted once fully handled (answer sent)
	Ignored        uint64 // well-formed frames needing nothing: unsolicited, for others, own echoes
	Malformed      uint64 // not Ethernet/IPv4 ARP, or truncated
	Conflicts      uint64 // frames from another MAC claiming an owned address
	SendErrors     uint64
	ReadErrors     uint64
	Drops          uint64 // sum of Neighbor.Drop over all neighbours, released ones included
}

// Resolver resolves neighbours and answers for owned addresses on a fixed
// set of Ethernet interfaces. Safe for concurrent use. Create it with New;
// the zero value is not usable.
type Resolver struct {
	cfg     Config
	clk     clock
	links   []*link
	byIndex map[int]*link
	sys     sysDeps
	wg      sync.WaitGroup

	stats struct {
		requests, learned, answers, garp, failures, received,
		ignored, malformed, conflicts, sendErrs, readErrs atomic.Uint64
	}

	mu           sync.Mutex
	closed       bool
	neigh        map[neighKey]*Neighbor
	retiredDrops uint64
	owned        map[netip.Addr]*ownedAddr
	ownedTimer   timer
	addrs        struct {
		fetched bool
		at      time.Time
		kernel  map[netip.Addr]bool    // every address of the namespace
		byLink  map[int][]netip.Prefix // IPv4 prefixes per ifindex, in kernel order
	}
	lastLog map[string]time.Time // rate-limited log keys
}

// newResolver builds a Resolver over ready links and starts a reader per
// link. On error it closes nothing: the caller owns links and sys.
func newResolver(links []*link, cfg *Config, sys sysDeps) (*Resolver, error) {
	r := &Resolver{
		cfg:     cfg.normalize(),
		clk:     sys.clock,
		links:   links,
		byIndex: make(map[int]*link, len(links)),
		sys:     sys,
		neigh:   make(map[neighKey]*Neighbor),
		owned:   make(map[netip.Addr]*ownedAddr),
		lastLog: make(map[string]time.Time),
	}
	if r.clk == nil {
		r.clk = systemClock{}
	}
	for _, l := range links {
		if _, dup := r.byIndex[l.index]; dup {
			return nil, fmt.Errorf("arp: interface %s given twice", l)
		}
		r.byIndex[l.index] = l
	}
	for _, l := range links {
		r.wg.Add(1)
		go r.readLoop(l)
	}
	return r, nil
}

// Neighbor returns the shared neighbour for ip on the interface, taking
// one reference. A new neighbour starts resolving at once: its first
// request is sent before Neighbor returns. Call Release when done.
func (r *Resolver) Neighbor(ifindex int, ip netip.Addr) (*Neighbor, error) {
	ip = ip.Unmap()
	if !ip.Is4() || ip.IsUnspecified() || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return nil, fmt.Errorf("arp: neighbour %s: %w", ip, ErrInvalidAddr)
	}
	var out outbox
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("arp: resolver closed: %w", net.ErrClosed)
	}
	l := r.byIndex[ifindex]
	if l == nil {
		r.mu.Unlock()
		return nil, fmt.Errorf("arp: neighbour %s on ifindex %d: %w", ip, ifindex, ErrUnknownInterface)
	}
	k := neighKey{ifindex, ip}
	n := r.neigh[k]
	if n != nil {
		n.refs++
		r.mu.Unlock()
		return n, nil
	}
	now := r.clk.Now()
	n = &Neighbor{addr: ip, ifindex: ifindex, r: r, refs: 1, updated: now}
	n.setState(Incomplete)
	r.neigh[k] = n
	r.probe(n, now, &out)
	r.schedule(n, r.cfg.Retry)
	r.mu.Unlock()
	r.flush(out)
	return n, nil
}

// Release drops one reference taken by Neighbor; the last one stops the
// neighbour's requests and forgets it (its Drop counts stay in Stats).
// Releasing a static neighbour, or one of another Resolver, does nothing;
// releasing more often than Neighbor was called panics.
func (r *Resolver) Release(n *Neighbor) {
	if n == nil || n.r != r {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n.refs <= 0 {
		panic("arp: Release of a neighbour with no references left")
	}
	n.refs--
	if n.refs > 0 {
		return
	}
	k := neighKey{n.ifindex, n.addr}
	if r.neigh[k] == n {
		delete(r.neigh, k)
	}
	r.stopTimer(n)
	r.retiredDrops += n.drops.Load()
}

// SetOwned replaces the set of addresses gvs answers ARP requests for, on
// every interface. Non-IPv4 addresses are ignored. An address the
// director's kernel holds itself is left to the kernel. Each address newly
// owned and not held by the kernel is announced at once with gratuitous
// ARP on every interface (see the package doc), and again 100 ms later.
func (r *Resolver) SetOwned(addrs []netip.Addr) {
	var out outbox
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	now := r.clk.Now()
	want := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		if a = a.Unmap(); a.Is4() && !a.IsUnspecified() {
			want[a] = true
		}
	}
	for a := range r.owned {
		if !want[a] {
			delete(r.owned, a)
		}
	}
	// Read the addresses afresh: the operator may just have moved a VIP
	// off (or onto) the kernel. This also updates addresses already owned.
	r.refreshAddrs(now, true, &out)
	for a := range want {
		if r.owned[a] != nil {
			continue
		}
		o := &ownedAddr{kernel: r.addrs.kernel[a]}
		r.owned[a] = o
		if o.kernel {
			r.logf("arp: %s is held by the kernel, which answers ARP for it; gvs stays silent", a)
			continue
		}
		r.announce(a, o, &out)
	}
	r.scheduleOwnedCheck()
	r.mu.Unlock()
	r.flush(out)
}

// Owned returns the owned addresses and whether gvs answers for each
// (false: the kernel holds it).
func (r *Resolver) Owned() map[netip.Addr]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[netip.Addr]bool, len(r.owned))
	for a, o := range r.owned {
		m[a] = !o.kernel
	}
	return m
}

// Stats returns the counters.
func (r *Resolver) Stats() Stats {
	s := Stats{
		RequestsSent:   r.stats.requests.Load(),
		Learned:        r.stats.learned.Load(),
		AnswersSent:    r.stats.answers.Load(),
		GratuitousSent: r.stats.garp.Load(),
		Failures:       r.stats.failures.Load(),
		Received:       r.stats.received.Load(),
		Ignored:        r.stats.ignored.Load(),
		Malformed:      r.stats.malformed.Load(),
		Conflicts:      r.stats.conflicts.Load(),
		SendErrors:     r.stats.sendErrs.Load(),
		ReadErrors:     r.stats.readErrs.Load(),
	}
	r.mu.Lock()
	s.Drops = r.retiredDrops
	for _, n := range r.neigh {
		s.Drops += n.drops.Load()
	}
	r.mu.Unlock()
	return s
}

// Neighbors returns a snapshot of every neighbour, sorted by interface and
// address.
func (r *Resolver) Neighbors() []NeighborInfo {
	r.mu.Lock()
	out := make([]NeighborInfo, 0, len(r.neigh))
	for _, n := range r.neigh {
		out = append(out, n.info())
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b NeighborInfo) int {
		if a.Ifindex != b.Ifindex {
			return a.Ifindex - b.Ifindex
		}
		return a.Addr.Compare(b.Addr)
	})
	return out
}

// Close stops the timers, closes the sockets and waits for the readers.
// Neighbours keep their last state. Close is idempotent.
func (r *Resolver) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	for _, n := range r.neigh {
		r.stopTimer(n)
	}
	if r.ownedTimer != nil {
		r.ownedTimer.Stop()
	}
	r.mu.Unlock()
	var errs []error
	for _, l := range r.links {
		if err := l.conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("arp: closing %s: %w", l, err))
		}
	}
	r.wg.Wait()
	if r.sys.close != nil {
		errs = append(errs, r.sys.close())
	}
	return errors.Join(errs...)
}

// ---- timers (all called with r.mu held) ----

func (r *Resolver) schedule(n *Neighbor, d time.Duration) {
	if n.timer != nil {
		n.timer.Stop()
	}
	n.timerGen++
	gen := n.timerGen
	n.timer = r.clk.AfterFunc(d, func() { r.onTimer(n, gen) })
}

func (r *Resolver) stopTimer(n *Neighbor) {
	if n.timer != nil {
		n.timer.Stop()
		n.timer = nil
	}
	n.timerGen++
}

// onTimer is a neighbour's timer: a retry, a refresh, or a backoff probe.
func (r *Resolver) onTimer(n *Neighbor, gen uint64) {
	var out outbox
	r.mu.Lock()
	if r.closed || n.refs == 0 || gen != n.timerGen {
		r.mu.Unlock()
		return
	}
	now := r.clk.Now()
	switch n.state {
	case Incomplete:
		if n.probes >= r.cfg.MaxProbes {
			r.fail(n, now, fmt.Sprintf("no reply to %d requests", n.probes), &out)
			break
		}
		r.probe(n, now, &out)
		r.schedule(n, r.cfg.Retry)
	case Reachable:
		if n.probes >= r.cfg.StaleAfter {
			r.fail(n, now, fmt.Sprintf("no reply to %d refresh requests", n.probes), &out)
			break
		}
		// A refresh (probes == 0) or the re-send of an unanswered one.
		r.probe(n, now, &out)
		r.schedule(n, r.cfg.Retry)
	case Failed:
		r.probe(n, now, &out)
		r.schedule(n, n.backoff)
		n.backoff = min(2*n.backoff, r.cfg.MaxRetry)
	}
	r.mu.Unlock()
	r.flush(out)
}

// fail moves n to Failed, logs and counts it once, and starts the backoff
// probes with one request now.
func (r *Resolver) fail(n *Neighbor, now time.Time, why string, out *outbox) {
	n.setState(Failed)
	n.updated = now
	r.stats.failures.Add(1)
	r.errorf("arp: neighbour %s on %s failed: %s; frames to it are dropped until it answers", n.addr, r.byIndex[n.ifindex], why)
	r.probe(n, now, out)
	n.backoff = min(2*r.cfg.Retry, r.cfg.MaxRetry)
	r.schedule(n, n.backoff)
	n.backoff = min(2*n.backoff, r.cfg.MaxRetry)
}

// probe queues one broadcast request for n.
func (r *Resolver) probe(n *Neighbor, now time.Time, out *outbox) {
	l := r.byIndex[n.ifindex]
	n.probes++
	f := Frame{
		Dst:       Broadcast,
		Src:       l.mac,
		Op:        OpRequest,
		SenderMAC: l.mac,
		SenderIP:  r.senderIP(l, n.addr, now, out),
		TargetIP:  n.addr,
	}
	out.add(l, &f, &r.stats.requests)
}

// senderIP picks the request's sender address: the interface's IPv4
// address whose subnet holds target, else its first IPv4 address, else
// 0.0.0.0 (an ARP probe, RFC 5227 section 2.1.1).
func (r *Resolver) senderIP(l *link, target netip.Addr, now time.Time, out *outbox) netip.Addr {
	r.refreshAddrs(now, false, out)
	ps := r.addrs.byLink[l.index]
	for _, p := range ps {
		if p.Contains(target) {
			return p.Addr()
		}
	}
	if len(ps) > 0 {
		return ps[0].Addr()
	}
	return netip.IPv4Unspecified()
}

// scheduleOwnedCheck keeps a timer that re-reads the namespace's
// addresses every addrTTL while there are owned addresses, to notice the
// kernel dropping (or taking) a VIP.
func (r *Resolver) scheduleOwnedCheck() {
	if len(r.owned) == 0 || r.ownedTimer != nil {
		return
	}
	r.ownedTimer = r.clk.AfterFunc(addrTTL, r.onOwnedCheck)
}

func (r *Resolver) onOwnedCheck() {
	var out outbox
	r.mu.Lock()
	r.ownedTimer = nil
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.refreshAddrs(r.clk.Now(), false, &out)
	r.scheduleOwnedCheck()
	r.mu.Unlock()
	r.flush(out)
}

// refreshAddrs re-reads the namespace's addresses when the cached list is
// older than addrTTL (or force is set), and acts on owned addresses the
// kernel has dropped or taken since.
func (r *Resolver) refreshAddrs(now time.Time, force bool, out *outbox) {
	if !force && r.addrs.fetched && now.Sub(r.addrs.at) < addrTTL {
		return
	}
	r.addrs.fetched, r.addrs.at = true, now
	if r.sys.addrs == nil {
		return
	}
	list, err := r.sys.addrs()
	if err != nil {
		r.errorLimited(now, "addrs", "arp: listing the namespace's addresses: %v (keeping the previous list)", err)
		return
	}
	kernel := make(map[netip.Addr]bool, len(list))
	byLink := make(map[int][]netip.Prefix)
	for _, a := range list {
		kernel[a.prefix.Addr()] = true
		byLink[a.ifindex] = append(byLink[a.ifindex], a.prefix)
	}
	r.addrs.kernel, r.addrs.byLink = kernel, byLink
	for a, o := range r.owned {
		switch held := kernel[a]; {
		case o.kernel && !held:
			o.kernel = false
			r.logf("arp: the kernel no longer holds %s; gvs answers ARP for it now", a)
			r.announce(a, o, out)
		case !o.kernel && held:
			o.kernel = true
			r.logf("arp: the kernel now holds %s; gvs leaves ARP for it to the kernel", a)
		}
	}
}

// announce queues a round of gratuitous ARP for a on every link and
// schedules the repeats.
func (r *Resolver) announce(a netip.Addr, o *ownedAddr, out *outbox) {
	r.garpRound(a, out)
	for i := 1; i < garpRepeats; i++ {
		r.clk.AfterFunc(time.Duration(i)*garpInterval, func() {
			var out outbox
			r.mu.Lock()
			if !r.closed && r.owned[a] == o && !o.kernel {
				r.garpRound(a, &out)
			}
			r.mu.Unlock()
			r.flush(out)
		})
	}
}

// garpRound queues one gratuitous request and one gratuitous reply for a
// on every link, both to broadcast. The reply's target MAC equals its
// sender MAC, which Linux (arp_is_garp) requires to treat a reply as
// gratuitous.
func (r *Resolver) garpRound(a netip.Addr, out *outbox) {
	for _, l := range r.links {
		req := Frame{Dst: Broadcast, Src: l.mac, Op: OpRequest, SenderMAC: l.mac, SenderIP: a, TargetIP: a}
		rep := Frame{Dst: Broadcast, Src: l.mac, Op: OpReply, SenderMAC: l.mac, SenderIP: a, TargetMAC: l.mac, TargetIP: a}
		out.add(l, &req, &r.stats.garp)
		out.add(l, &rep, &r.stats.garp)
	}
}

// ---- receive path ----

func (r *Resolver) readLoop(l *link) {
	defer r.wg.Done()
	buf := make([]byte, readBufLen)
	for {
		n, err := l.conn.ReadFrame(buf)
		if err != nil {
			if r.isClosed() || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return
			}
			r.stats.readErrs.Add(1)
			r.mu.Lock()
			r.errorLimited(r.clk.Now(), "read "+l.name, "arp: reading on %s: %v", l, err)
			r.mu.Unlock()
			time.Sleep(readErrPause)
			continue
		}
		r.handle(l, buf[:n])
	}
}

func (r *Resolver) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// handle processes one received frame: learn from it, answer it, or
// count it as ignored or malformed.
func (r *Resolver) handle(l *link, b []byte) {
	defer r.stats.received.Add(1)
	var f Frame
	if f.decode(b) != badNone {
		r.stats.malformed.Add(1)
		return
	}
	// Our own frames (or the kernel's outgoing ARP) looped back: kernels
	// older than 4.20 lack PACKET_IGNORE_OUTGOING.
	if r.isOwnMAC(f.Src) ||
		// Promiscuous capture of frames for other hosts.
		(f.Dst != l.mac && f.Dst != Broadcast) ||
		(f.Op != OpRequest && f.Op != OpReply) {
		r.stats.ignored.Add(1)
		return
	}
	var out outbox
	acted := false
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	now := r.clk.Now()
	if r.owned[f.SenderIP] != nil {
		// Never learn anything about an owned address. Another host
		// claiming it is a conflict worth an operator's attention.
		if !r.isOwnMAC(f.SenderMAC) {
			r.stats.conflicts.Add(1)
			r.errorLimited(now, "conflict "+f.SenderIP.String(),
				"arp: %s (owned by gvs) claimed by %s on %s", f.SenderIP, net.HardwareAddr(f.SenderMAC[:]), l)
		}
	} else if n := r.neigh[neighKey{l.index, f.SenderIP}]; n != nil && validUnicast(f.SenderMAC) {
		r.learn(n, l, f.SenderMAC, now)
		n.learnedBy = f.Op
		acted = true
	}
	if f.Op == OpRequest && f.SenderIP != f.TargetIP && validUnicast(f.SenderMAC) {
		if o := r.owned[f.TargetIP]; o != nil {
			r.refreshAddrs(now, false, &out)
			if !o.kernel {
				rep := Frame{
					Dst:       f.SenderMAC,
					Src:       l.mac,
					Op:        OpReply,
					SenderMAC: l.mac,
					SenderIP:  f.TargetIP,
					TargetMAC: f.SenderMAC,
					TargetIP:  f.SenderIP, // 0.0.0.0 when answering a probe, as Linux does
				}
				out.add(l, &rep, &r.stats.answers)
				acted = true
			}
		}
	}
	r.mu.Unlock()
	if !acted {
		r.stats.ignored.Add(1)
	}
	r.flush(out)
}

// learn records mac for n from a frame that arrived on l.
func (r *Resolver) learn(n *Neighbor, l *link, mac [6]byte, now time.Time) {
	prev, old, had := n.state, n.mac, n.everMAC
	n.mac, n.everMAC = mac, true
	n.probes, n.backoff, n.updated = 0, 0, now
	n.setState(Reachable)
	r.stats.learned.Add(1)
	hw := net.HardwareAddr(mac[:])
	switch {
	case prev == Failed && had && old != mac:
		r.logf("arp: neighbour %s on %s reachable again, at new MAC %s (was %s)", n.addr, l, hw, net.HardwareAddr(old[:]))
	case prev == Failed:
		r.logf("arp: neighbour %s on %s reachable again at %s", n.addr, l, hw)
	case prev == Incomplete:
		r.logf("arp: neighbour %s on %s resolved to %s", n.addr, l, hw)
	case old != mac:
		r.logf("arp: neighbour %s on %s changed MAC from %s to %s", n.addr, l, net.HardwareAddr(old[:]), hw)
	}
	r.schedule(n, r.cfg.Refresh)
}

func (r *Resolver) isOwnMAC(mac [6]byte) bool {
	for _, l := range r.links {
		if l.mac == mac {
			return true
		}
	}
	return false
}

// validUnicast reports whether mac can be a neighbour's address: not zero
// and not a group (multicast or broadcast) address, so a forged reply
// cannot make gvs flood the data path's frames.
func validUnicast(mac [6]byte) bool {
	return mac != [6]byte{} && mac[0]&1 == 0
}

// ---- sending ----

// outbox collects frames built under r.mu, to be written after it is
// released.
type outbox []outFrame

type outFrame struct {
	l     *link
	b     []byte
	count *atomic.Uint64 // bumped once written
}

func (o *outbox) add(l *link, f *Frame, count *atomic.Uint64) {
	b := make([]byte, FrameLen)
	f.put(b)
	*o = append(*o, outFrame{l, b, count})
}

func (r *Resolver) flush(out outbox) {
	for _, f := range out {
		if err := f.l.conn.WriteFrame(f.b); err != nil {
			r.stats.sendErrs.Add(1)
			r.mu.Lock()
			if !r.closed {
				r.errorLimited(r.clk.Now(), "send "+f.l.name, "arp: sending on %s: %v", f.l, err)
			}
			r.mu.Unlock()
			continue
		}
		f.count.Add(1)
	}
}

// ---- logging ----

func (r *Resolver) logf(format string, args ...any) {
	if r.cfg.Logf != nil {
		r.cfg.Logf(format, args...)
	}
}

func (r *Resolver) errorf(format string, args ...any) {
	if r.cfg.Errorf != nil {
		r.cfg.Errorf(format, args...)
	}
}

// errorLimited logs at most once per logEvery per key. Caller holds r.mu.
func (r *Resolver) errorLimited(now time.Time, key, format string, args ...any) {
	if last, ok := r.lastLog[key]; ok && now.Sub(last) < logEvery {
		return
	}
	r.lastLog[key] = now
	r.errorf(format, args...)
}
