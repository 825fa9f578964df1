package forward

import (
	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/internal/hdr"
	"github.com/gvs-project/gvs/service"
)

// packet is what classify learns of a frame: where its headers are and
// the fields the rest of the path needs. It lives on the stack.
type packet struct {
	ip       hdr.IPv4
	l4off    int // offset of the TCP/UDP header in the frame
	ipLen    int // IPv4 total length
	proto    uint8
	frag     uint8 // fragNone, fragFirst or fragLater
	src, dst [4]byte
	sport    uint16
	dport    uint16
	tcpFlags uint8
}

// A packet's place in its datagram.
const (
	fragNone  = iota // not a fragment
	fragFirst        // the first fragment (offset 0, MF set): it has the TCP/UDP header
	fragLater        // a later fragment: no TCP/UDP header, no ports
)

// classify checks a frame's Ethernet, IPv4 and TCP/UDP headers and fills
// p. It returns Forwarded when the frame is a well-formed IPv4 TCP or UDP
// packet (or first fragment) addressed to this host's MAC, Fragment for a
// later fragment of a TCP or UDP datagram (its addresses filled in, for
// handleFragment to place), and otherwise the verdict that leaves it
// alone.
//
// The TCP/UDP header must hold together, or the verdict is MalformedL4:
//   - a TCP data offset of at least 20 bytes, within the packet;
//   - a UDP length field of at least 8 that does not reach past the
//     packet (a shorter one is allowed: the receiving kernel trims the
//     rest, as __udp4_lib_rcv does), and in a first fragment does;
//   - a first fragment holds the whole TCP or UDP header (RFC 1858's tiny
//     fragments);
//   - no TCP fragment starts at offset 8 (RFC 1858's overlapping fragment,
//     which would rewrite the first one's flags on reassembly);
//   - no fragment asks for checksum offload or segmentation (a fragment's
//     checksum cannot be completed alone).
func classify(f *afpacket.Frame, p *packet) Reason {
	if f.PktType != afpacket.PacketHost {
		return NotHost
	}
	if f.Status&afpacket.StatusVLANValid != 0 {
		return VLAN
	}
	b := f.Data
	if len(b) < hdr.EthernetLen {
		return Malformed
	}
	switch hdr.Ethernet(b).Type() {
	case hdr.EtherTypeIPv4:
	case hdr.EtherTypeVLAN, hdr.EtherTypeQinQ:
		return VLAN
	default:
		return NotIPv4
	}
	ip := hdr.IPv4(b[hdr.EthernetLen:])
	if len(ip) < hdr.IPv4MinLen || ip.Version() != 4 {
		return Malformed
	}
	hl := ip.HeaderLen()
	total := ip.TotalLen()
	// A truncated frame (f.Len > len(b)) still has all its headers in b;
	// its IP length is checked against the frame's full length.
	avail := len(ip)
	if f.Len > len(b) {
		avail = f.Len - hdr.EthernetLen
	}
	if hl < hdr.IPv4MinLen || total < hl || total > avail || len(ip) < hl {
		return Malformed
	}
	proto := ip.Protocol()
	p.ip = ip
	p.l4off = hdr.EthernetLen + hl
	p.ipLen = total
	p.proto = proto
	p.src = ip.Source()
	p.dst = ip.Destination()
	if proto != hdr.ProtoTCP && proto != hdr.ProtoUDP {
		// ICMP comes back with the addresses filled in: errors about a
		// tracked connection are relayed (icmp.go).
		return NotOurs
	}
	l4 := ip[hl:]
	l4len := total - hl // TCP/UDP bytes in this packet (or fragment)
	if ip.IsFragment() {
		if f.VNet.Flags&afpacket.NeedsCsum != 0 || f.VNet.IsGSO() {
			return MalformedL4
		}
		if off := ip.FragmentOffset(); off != 0 {
			if off == 1 && proto == hdr.ProtoTCP {
				return MalformedL4
			}
			p.frag = fragLater
			return Fragment
		}
		p.frag = fragFirst
	}
	if proto == hdr.ProtoTCP {
		if len(l4) < hdr.TCPMinLen || l4len < hdr.TCPMinLen {
			return MalformedL4
		}
		t := hdr.TCP(l4)
		if off := t.DataOffset(); off < hdr.TCPMinLen || off > l4len {
			return MalformedL4
		}
		p.sport, p.dport, p.tcpFlags = t.SourcePort(), t.DestinationPort(), t.Flags()
		return Forwarded
	}
	if len(l4) < hdr.UDPLen || l4len < hdr.UDPLen {
		return MalformedL4
	}
	u := hdr.UDP(l4)
	// The UDP length covers the whole datagram: in a first fragment it
	// reaches past the fragment, otherwise it must not.
	if ulen := u.Length(); ulen < hdr.UDPLen || (ulen > l4len) != (p.frag == fragFirst) {
		return MalformedL4
	}
	p.sport, p.dport = u.SourcePort(), u.DestinationPort()
	return Forwarded
}

// validTCPFlags has a bit for each combination of FIN, SYN, RST, ACK and
// URG that a TCP stack sends: Linux conntrack's tcp_valid_flags
// (nf_conntrack_proto_tcp.c), which marks every other combination INVALID.
// PSH, ECE and CWR do not matter. A packet with another combination
// (SYN+FIN, SYN+RST, FIN without ACK, none at all: scanners and flood
// tools make them) is dropped before it reaches the connection table,
// where IPVS's state machine would take it as a SYN, or close the
// connection for want of a known flag.
const validTCPFlags = 1<<hdr.TCPFlagSYN |
	1<<(hdr.TCPFlagSYN|hdr.TCPFlagURG) |
	1<<(hdr.TCPFlagSYN|hdr.TCPFlagACK) |
	1<<hdr.TCPFlagRST |
	1<<(hdr.TCPFlagRST|hdr.TCPFlagACK) |
	1<<(hdr.TCPFlagFIN|hdr.TCPFlagACK) |
	1<<(hdr.TCPFlagFIN|hdr.TCPFlagACK|hdr.TCPFlagURG) |
	1<<hdr.TCPFlagACK |
	1<<(hdr.TCPFlagACK|hdr.TCPFlagURG)

// tcpFlagsValid reports whether a TCP flags byte is a combination stacks
// send (validTCPFlags).
func tcpFlagsValid(flags uint8) bool {
	const mask = hdr.TCPFlagFIN | hdr.TCPFlagSYN | hdr.TCPFlagRST | hdr.TCPFlagACK | hdr.TCPFlagURG
	return uint64(validTCPFlags)>>(flags&mask)&1 != 0
}

// check is the last test of a frame that is gvs's to forward, before it
// changes any state: the IPv4 header checksum (gvs reads frames before the
// kernel's ip_rcv would drop a bad one; the TCP/UDP checksum is left to
// the real server, see the package doc) and the TCP flags.
func (p *packet) check() Reason {
	if !p.ip.ChecksumValid() {
		return BadChecksum
	}
	if p.proto == hdr.ProtoTCP && p.frag != fragLater && !tcpFlagsValid(p.tcpFlags) {
		return BadFlags
	}
	return Forwarded
}

// schedule picks the real server of a new connection. For a persistent
// service it follows ip_vs_sched_persist: the client's template (its
// address under the service's netmask, client port 0, the virtual port, or
// 0 for a port-0 service) names the real server while it lives; a new or
// invalid template (its server removed, or quiesced with
// ExpireQuiescentTemplate, as ip_vs_check_template says) is scheduled and
// created. The template's timer restarts with each connection it places.
func (w *Worker) schedule(svc *service.Service, k *conntrack.Key, now int64) (*service.Real, conntrack.TemplateRef[*service.Real]) {
	var none conntrack.TemplateRef[*service.Real]
	p := svc.Persistence()
	if p == nil {
		return svc.Pick(k), none
	}
	tk := &w.tkey
	*tk = *k
	tk.ClientPort = 0
	for i := range 4 {
		tk.Client[12+i] &= p.Mask[i]
	}
	if svc.Key.Port == 0 || svc.Key.Port == ftpPort {
		tk.VirtualPort = 0
	}
	conns := w.e.cfg.Conns
	if r, ref, ok := conns.Template(tk, p.Timeout, now); ok {
		if !r.Removed() && (!w.e.cfg.ExpireQuiescentTemplate || r.Weight() > 0) {
			return r, ref
		}
	}
	r := svc.Pick(k)
	if r == nil {
		return nil, none
	}
	ref, err := conns.InsertTemplate(tk, r, p.Timeout, now)
	if err != nil {
		// No room for the template: the connection still goes to the
		// picked server, without persistence.
		return r, none
	}
	return r, ref
}

// ftpPort is FTP's control port: IPVS gives persistent FTP services
// templates with virtual port 0, so that the data connections on other
// ports follow the control connection.
const ftpPort = 21

// Forwarding methods as connection entries record them (conntrack.Aux).
const (
	fwdRoute   = uint8(service.Route)
	fwdTunnel  = uint8(service.Tunnel)
	fwdMasq    = uint8(service.Masq)
	fwdFullNAT = uint8(service.FullNAT)
)

// handle is the whole path of one frame: classify, find the service (or,
// for a frame from a NAT real server or to a FULLNAT local address, the
// connection it answers), find or create the connection (scheduling a
// real server for a new one), count, and hand the frame to the
// connection's forwarding method.
func (w *Worker) handle(f *afpacket.Frame, now int64, snap *service.Snapshot) Reason {
	var p packet
	return w.handleClassified(f, &p, classify(f, &p), now, snap)
}

// handleClassified is handle after classify(f, p) returned r.
func (w *Worker) handleClassified(f *afpacket.Frame, p *packet, r Reason, now int64, snap *service.Snapshot) Reason {
	if r != Forwarded {
		switch {
		case r == Fragment:
			return w.handleFragment(f, p, now, snap)
		case r == NotOurs && p.proto == hdr.ProtoICMP && !p.ip.IsFragment():
			return w.handleICMP(f, p, now, snap)
		}
		return r
	}
	svc := snap.Lookup(service.Key{Addr: p.dst, Port: p.dport, Protocol: p.proto})
	if svc == nil {
		if snap.MayBeReply(p.proto, p.src, p.sport, p.dst) {
			return w.handleReply(f, p, now)
		}
		if snap.IsVirtual(p.dst, 0) {
			return NoService
		}
		return NotOurs
	}
	if f.Len > len(f.Data) {
		return Truncated
	}
	if r := p.check(); r != Forwarded {
		return r
	}
	// The key lives in the worker: passed on to the scheduler through an
	// interface, a key on the stack would escape and cost an allocation.
	k := &w.key
	*k = conntrack.KeyV4(p.proto, p.src, p.sport, p.dst, p.dport)
	conns := w.e.cfg.Conns
	c, ok := conns.Get(k, conntrack.Input, p.tcpFlags, now)
	if ok && c.Dest.Unavailable() {
		// A SYN on the entry of a server that is gone (removed with
		// expire_nodest_conn, or down by its health check) is a new
		// connection from a reused client port: the old entry expires
		// and the SYN is scheduled, as ip_vs_in reschedules
		// (conn_reuse_mode). Other packets of such a connection are
		// dropped with expire_nodest_conn, and kept going without it.
		syn := p.proto == hdr.ProtoTCP && p.tcpFlags&(hdr.TCPFlagSYN|hdr.TCPFlagACK|hdr.TCPFlagRST) == hdr.TCPFlagSYN
		if w.e.cfg.ExpireNodestConn || syn && c.Dest.Failed() {
			conns.Remove(k)
			if !syn {
				return DestGone
			}
			ok = false
		}
	}
	if !ok {
		// Only a SYN starts a TCP connection (tcp_conn_schedule: th->syn
		// and not th->rst); anything else without an entry is dropped.
		if p.proto == hdr.ProtoTCP && p.tcpFlags&(hdr.TCPFlagSYN|hdr.TCPFlagRST) != hdr.TCPFlagSYN {
			return NoConn
		}
		var r Reason
		if c, r = w.connect(f, p, svc, now); r != Forwarded {
			return r
		}
	}
	if p.frag == fragFirst {
		w.e.frags.put(p, false, now)
	}
	return w.forward(f, p, &c, svc)
}

// forward counts a client's frame for its connection and hands it to the
// connection's forwarding method. svc is the frame's service, or nil when
// it was not looked up.
func (w *Worker) forward(f *afpacket.Frame, p *packet, c *conntrack.Conn[*service.Real], svc *service.Service) Reason {
	real := c.Dest
	n := uint64(p.ipLen)
	real.InPkts.Add(1)
	real.InBytes.Add(n)
	if svc == nil {
		svc = real.Service() // a later fragment's: not looked up
	}
	if svc != nil {
		svc.InPkts.Add(1)
		svc.InBytes.Add(n)
	}
	switch c.Aux.Forward {
	case fwdRoute:
		return w.forwardDR(f, p, real)
	case fwdMasq:
		return w.forwardNAT(f, p, c)
	case fwdFullNAT:
		return w.forwardFullNAT(f, p, c)
	case fwdTunnel:
		return w.forwardTunnel(f, p, real)
	}
	return NoEgress
}

// connect creates the connection of a first packet: schedules a real
// server (with persistence if the service has it) and enters the
// connection in the table with what its method needs (NAT and FULLNAT: the
// reply key and where the client's frames come from; FULLNAT: a local
// address and port).
func (w *Worker) connect(f *afpacket.Frame, p *packet, svc *service.Service, now int64) (c conntrack.Conn[*service.Real], r Reason) {
	k := &w.key
	picked, tmpl := w.schedule(svc, k, now)
	if picked == nil {
		return c, NoDest
	}
	fwd := picked.Forward()
	opts := &w.opts
	*opts = conntrack.InsertOpts[*service.Real]{NoOutput: fwd != service.Masq && fwd != service.FullNAT, Template: tmpl}
	opts.Aux.Forward = uint8(fwd)
	rport := picked.Port
	if rport == 0 {
		rport = p.dport // a port-0 service: the real server's port is the client's
	}
	switch fwd {
	case service.Masq:
		// The real server answers the client from RIP:rport.
		w.rkey = conntrack.KeyV4(p.proto, picked.Addr.As4(), rport, p.src, p.sport)
		opts.Reply = &w.rkey
		opts.Aux.PeerMAC = [6]byte(f.Data[6:12])
		opts.Aux.PeerIfindex = int32(w.ifindex)
	case service.FullNAT:
		laddr, lport, ok := w.localPort(svc, p.proto)
		if !ok {
			return c, NoLocalPort
		}
		w.rkey = conntrack.KeyV4(p.proto, picked.Addr.As4(), rport, laddr, lport)
		opts.Reply = &w.rkey
		opts.Aux.PeerMAC = [6]byte(f.Data[6:12])
		opts.Aux.PeerIfindex = int32(w.ifindex)
		opts.Aux.LocalAddr, opts.Aux.LocalPort = laddr, lport
	}
	c, err := w.e.cfg.Conns.InsertWith(k, picked, opts, p.tcpFlags, now)
	if err != nil {
		if fwd == service.FullNAT {
			w.e.cfg.Ports.Release(&w.key, &opts.Aux)
		}
		return c, TableFull
	}
	if !c.Created && fwd == service.FullNAT {
		// Another worker made the connection first: its port stands.
		w.e.cfg.Ports.Release(&w.key, &opts.Aux)
	}
	if c.Created {
		c.Dest.Conns.Add(1)
		svc.Conns.Add(1)
	}
	return c, Forwarded
}

// handleReply handles a frame that may be a NAT or FULLNAT real server's
// reply: if it is, the connection it belongs to rewrites it back and sends
// it to the client.
func (w *Worker) handleReply(f *afpacket.Frame, p *packet, now int64) Reason {
	if f.Len > len(f.Data) {
		return Truncated
	}
	rk := &w.rkey
	*rk = conntrack.KeyV4(p.proto, p.src, p.sport, p.dst, p.dport)
	if r := p.check(); r != Forwarded {
		// Dropped if it belongs to a connection (without touching its
		// state), left alone otherwise.
		if _, ok := w.e.cfg.Conns.PeekReply(rk, now); ok {
			return r
		}
		return NotOurs
	}
	c, ok := w.e.cfg.Conns.GetReply(rk, p.tcpFlags, now)
	if !ok {
		return NotOurs
	}
	if p.frag == fragFirst {
		w.e.frags.put(p, true, now)
	}
	return w.backward(f, p, &c)
}

// backward counts a real server's reply for its connection and rewrites
// it back to the client.
func (w *Worker) backward(f *afpacket.Frame, p *packet, c *conntrack.Conn[*service.Real]) Reason {
	real := c.Dest
	n := uint64(p.ipLen)
	real.OutPkts.Add(1)
	real.OutBytes.Add(n)
	if svc := real.Service(); svc != nil {
		svc.OutPkts.Add(1)
		svc.OutBytes.Add(n)
	}
	return w.reverse(f, p, c)
}
