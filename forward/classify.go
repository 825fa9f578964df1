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
	src, dst [4]byte
	sport    uint16
	dport    uint16
	tcpFlags uint8
}

// classify checks a frame's Ethernet, IPv4 and TCP/UDP headers and fills
// p. It returns Forwarded when the frame is a well-formed, unfragmented
// IPv4 TCP or UDP packet addressed to this host's MAC, and otherwise the
// verdict that leaves it alone.
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
	if ip.IsFragment() {
		return Fragment
	}
	l4 := ip[hl:]
	if proto == hdr.ProtoTCP {
		if len(l4) < hdr.TCPMinLen {
			return Malformed
		}
		t := hdr.TCP(l4)
		if off := t.DataOffset(); off < hdr.TCPMinLen || off > total-hl {
			return Malformed
		}
		p.sport, p.dport, p.tcpFlags = t.SourcePort(), t.DestinationPort(), t.Flags()
		return Forwarded
	}
	if len(l4) < hdr.UDPLen || total-hl < hdr.UDPLen {
		return Malformed
	}
	u := hdr.UDP(l4)
	p.sport, p.dport = u.SourcePort(), u.DestinationPort()
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
	if r := classify(f, &p); r != Forwarded {
		if r == NotOurs && p.proto == hdr.ProtoICMP {
			return w.handleICMP(f, &p, now, snap)
		}
		return r
	}
	svc := snap.Lookup(service.Key{Addr: p.dst, Port: p.dport, Protocol: p.proto})
	if svc == nil {
		if snap.MayBeReply(p.proto, p.src, p.sport, p.dst) {
			return w.handleReply(f, &p, now)
		}
		return NotOurs
	}
	if f.Len > len(f.Data) {
		return Truncated
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
		if c, r = w.connect(f, &p, svc, now); r != Forwarded {
			return r
		}
	}
	real := c.Dest
	n := uint64(p.ipLen)
	real.InPkts.Add(1)
	real.InBytes.Add(n)
	svc.InPkts.Add(1)
	svc.InBytes.Add(n)
	switch c.Aux.Forward {
	case fwdRoute:
		return w.forwardDR(f, &p, real)
	case fwdMasq:
		return w.forwardNAT(f, &p, &c)
	case fwdFullNAT:
		return w.forwardFullNAT(f, &p, &c)
	case fwdTunnel:
		return w.forwardTunnel(f, &p, real)
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
	c, ok := w.e.cfg.Conns.GetReply(rk, p.tcpFlags, now)
	if !ok {
		return NotOurs
	}
	real := c.Dest
	n := uint64(p.ipLen)
	real.OutPkts.Add(1)
	real.OutBytes.Add(n)
	if svc := real.Service(); svc != nil {
		svc.OutPkts.Add(1)
		svc.OutBytes.Add(n)
	}
	return w.reverse(f, p, &c)
}
