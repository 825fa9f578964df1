package forward

import (
	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/internal/hdr"
	"github.com/gvs-project/gvs/service"
)

// forwardNAT sends a client's frame to its real server by NAT (LVS-NAT,
// ipvsadm -m): destination address and port become the real server's
// (D-NAT: VIP:vport -> RIP:rport), the TTL drops by one, and the IP and
// TCP/UDP checksums are updated incrementally (RFC 1624; a checksum left to
// offload gets only the pseudo-header change). The real server answers
// the client through the director, its default gateway; reverse rewrites
// those replies back.
func (w *Worker) forwardNAT(f *afpacket.Frame, p *packet, c *conntrack.Conn[*service.Real]) Reason {
	r := c.Dest
	rport := r.Port
	if rport == 0 {
		rport = p.dport
	}
	o, mac, why := w.toReal(f, p, r)
	if why != Forwarded {
		return why
	}
	ip := hdr.IPv4(o.b[hdr.EthernetLen:])
	decTTL(ip)
	rip := r.Addr.As4()
	x := newL4(&o, p)
	ip.SetDestinationWithChecksumUpdate(rip)
	x.addr(p.dst, rip)
	x.port(2, rport)
	p.dst = rip
	prepareOffload(o.vnet, o.b, p)
	return w.send(&o, mac)
}

// forwardFullNAT sends a client's frame to its real server by FULLNAT
// (gvs's own method, as DPVS has it): both ends change, the client's
// address and port to the connection's local address and port
// (LADDR:lport), the VIP and port to the real server's (RIP:rport), so the
// real server answers the director whatever its routes.
func (w *Worker) forwardFullNAT(f *afpacket.Frame, p *packet, c *conntrack.Conn[*service.Real]) Reason {
	r := c.Dest
	rport := r.Port
	if rport == 0 {
		rport = p.dport
	}
	o, mac, why := w.toReal(f, p, r)
	if why != Forwarded {
		return why
	}
	ip := hdr.IPv4(o.b[hdr.EthernetLen:])
	decTTL(ip)
	rip, laddr := r.Addr.As4(), c.Aux.LocalAddr
	x := newL4(&o, p)
	ip.SetSourceWithChecksumUpdate(laddr)
	ip.SetDestinationWithChecksumUpdate(rip)
	x.addr(p.src, laddr)
	x.addr(p.dst, rip)
	x.port(0, c.Aux.LocalPort)
	x.port(2, rport)
	p.src, p.dst = laddr, rip
	prepareOffload(o.vnet, o.b, p)
	return w.send(&o, mac)
}

// toReal checks what sending a client's frame to real server r needs
// (its next hop's MAC, an egress interface, a TTL above 1) and copies the
// frame into a slot of that interface.
func (w *Worker) toReal(f *afpacket.Frame, p *packet, r *service.Real) (o out, mac [6]byte, why Reason) {
	link := r.Link()
	mac, ok := link.Hop.MAC()
	if !ok {
		link.Hop.Drop()
		return o, mac, Unresolved
	}
	ei := w.egressFor(link.Hop.Ifindex())
	if ei < 0 {
		return o, mac, NoEgress
	}
	if p.ip.TTL() <= 1 {
		w.timeExceeded(f, p)
		return o, mac, TTLExceeded
	}
	o, why = w.copyOut(f, ei)
	return o, mac, why
}

// reverse rewrites a NAT or FULLNAT real server's reply back to the
// client (S-NAT: RIP:rport -> VIP:vport; FULLNAT also LADDR:lport ->
// client:cport), drops its TTL by one, and sends it out of the interface
// the client's frames came in on, to the MAC they came from.
func (w *Worker) reverse(f *afpacket.Frame, p *packet, c *conntrack.Conn[*service.Real]) Reason {
	ei := w.egressFor(int(c.Aux.PeerIfindex))
	if ei < 0 {
		return NoEgress
	}
	if p.ip.TTL() <= 1 {
		w.timeExceeded(f, p)
		return TTLExceeded
	}
	o, why := w.copyOut(f, ei)
	if why != Forwarded {
		return why
	}
	ip := hdr.IPv4(o.b[hdr.EthernetLen:])
	decTTL(ip)
	vip := [4]byte(c.Key.Virtual[12:])
	x := newL4(&o, p)
	ip.SetSourceWithChecksumUpdate(vip)
	x.addr(p.src, vip)
	x.port(0, c.Key.VirtualPort)
	p.src = vip
	if c.Aux.Forward == fwdFullNAT {
		client := [4]byte(c.Key.Client[12:])
		ip.SetDestinationWithChecksumUpdate(client)
		x.addr(p.dst, client)
		x.port(2, c.Key.ClientPort)
		p.dst = client
	}
	prepareOffload(o.vnet, o.b, p)
	return w.send(&o, c.Aux.PeerMAC)
}
