package forward

import (
	"encoding/binary"

	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/internal/hdr"
	"github.com/gvs-project/gvs/service"
)

// icmpTTL is the TTL of the ICMP errors gvs sends (Linux's default
// net.ipv4.ip_default_ttl).
const icmpTTL = 64

// sendICMP answers frame f with an ICMP error of type typ and code from
// address src, out of the interface the frame came in on, to the MAC it
// came from (the sender, or the router in front of it). It gives up
// quietly when there is no slot or RFC 1122 forbids the error (an error
// about an error, a non-first fragment, a broadcast source).
func (w *Worker) sendICMP(f *afpacket.Frame, p *packet, typ, code uint8, extra uint32, src [4]byte) {
	if w.in < 0 || src == ([4]byte{}) {
		return
	}
	eg := &w.egress[w.in]
	vnet, buf, ok := eg.TX.Slot()
	if !ok {
		return
	}
	orig := f.Data[hdr.EthernetLen : hdr.EthernetLen+p.ipLen]
	n, err := hdr.BuildICMPv4Error(buf[hdr.EthernetLen:], typ, code, extra, src, p.src, icmpTTL, orig)
	if err != nil {
		return
	}
	*vnet = afpacket.VNetHdr{}
	e := hdr.Ethernet(buf)
	e.SetDestination([6]byte(f.Data[6:12]))
	e.SetSource(eg.MAC)
	e.SetType(hdr.EtherTypeIPv4)
	eg.TX.Commit(hdr.EthernetLen + n)
	w.dirty[w.in] = true
	w.icmpSent.Add(1)
}

// timeExceeded tells the sender of a packet gvs would have to send with
// TTL 0 that it died (ICMP 11/0, from the interface's address), as a
// router, and IPVS's decrement_ttl, do.
func (w *Worker) timeExceeded(f *afpacket.Frame, p *packet) {
	var src [4]byte
	if w.in >= 0 {
		src = w.egress[w.in].Addr
	}
	w.sendICMP(f, p, 11, 0, 0, src)
}

// fragNeeded tells the client that its packet, with DF set, is too big for
// the tunnel: ICMP 3/4 with the MTU that leaves room for the outer header,
// from the VIP it sent to (as IPVS's icmp_send does for a local VIP), so
// that the client lowers its path MTU to the VIP.
func (w *Worker) fragNeeded(f *afpacket.Frame, p *packet, mtu int) {
	w.sendICMP(f, p, 3, 4, uint32(mtu), p.dst)
	w.fragNeededN.Add(1)
}

// handleICMP relays ICMP errors about tracked connections, as IPVS's
// ip_vs_in_icmp and ip_vs_out_icmp do: an error about what a connection
// sent towards its client (for example a router's fragmentation-needed
// about a real server's reply, in every mode) goes to the connection's
// real server, rewritten for its forwarding method; an error from the
// real server's side of a NAT or FULLNAT connection goes to the client,
// rewritten back.
func (w *Worker) handleICMP(f *afpacket.Frame, p *packet, now int64, snap *service.Snapshot) Reason {
	if f.Len > len(f.Data) || p.ipLen < p.ip.HeaderLen()+8 {
		return NotOurs
	}
	_, _, quoted, ql4, ok := hdr.ParseICMPv4Error(p.ip[:p.ipLen])
	if !ok || len(ql4) < 4 {
		return NotOurs
	}
	qproto := quoted.Protocol()
	if qproto != hdr.ProtoTCP && qproto != hdr.ProtoUDP {
		return NotOurs
	}
	qsrc, qdst := quoted.Source(), quoted.Destination()
	qsport, qdport := binary.BigEndian.Uint16(ql4), binary.BigEndian.Uint16(ql4[2:])
	conns := w.e.cfg.Conns

	// An error about a packet from a VIP (a real server's reply on its way
	// to the client): the connection is client:cport <-> VIP:vport.
	if snap.Lookup(service.Key{Addr: qsrc, Port: qsport, Protocol: qproto}) != nil {
		k := &w.key
		*k = conntrack.KeyV4(qproto, qdst, qdport, qsrc, qsport)
		c, ok := conns.Peek(k, now)
		if !ok {
			return NotOurs
		}
		if !p.ip.ChecksumValid() {
			return BadChecksum
		}
		w.icmpRelayed.Add(1)
		switch c.Aux.Forward {
		case fwdRoute:
			return w.forwardDR(f, p, c.Dest)
		case fwdTunnel:
			return w.forwardTunnel(f, p, c.Dest)
		case fwdMasq, fwdFullNAT:
			return w.icmpToReal(f, p, &c)
		}
		return NotOurs
	}
	// An error from the real server's side of a NAT or FULLNAT connection
	// about a packet gvs sent it: that packet went to RIP:rport from the
	// client (NAT) or from the local address (FULLNAT).
	if snap.MayBeReply(qproto, qdst, qdport, qsrc) {
		rk := &w.rkey
		*rk = conntrack.KeyV4(qproto, qdst, qdport, qsrc, qsport)
		c, ok := conns.PeekReply(rk, now)
		if !ok {
			return NotOurs
		}
		if !p.ip.ChecksumValid() {
			return BadChecksum
		}
		w.icmpRelayed.Add(1)
		return w.icmpToClient(f, p, &c)
	}
	return NotOurs
}

// icmpRewrite rewrites an ICMP error in o: the outer destination (or
// source) and the quoted packet's matching source (or destination)
// address and port, with every checksum brought up to date.
type icmpRewrite struct {
	outerSrc, outerDst   *[4]byte // new outer addresses, or nil
	quotedSrc, quotedDst *[4]byte // new quoted addresses, or nil
	quotedSport          *uint16
	quotedDport          *uint16
}

func applyICMP(b []byte, p *packet, rw *icmpRewrite) {
	ip := hdr.IPv4(b[hdr.EthernetLen:])
	if rw.outerSrc != nil {
		ip.SetSourceWithChecksumUpdate(*rw.outerSrc)
	}
	if rw.outerDst != nil {
		ip.SetDestinationWithChecksumUpdate(*rw.outerDst)
	}
	icmp := b[p.l4off : hdr.EthernetLen+p.ipLen]
	q := hdr.IPv4(icmp[8:])
	qhl := q.HeaderLen()
	if rw.quotedSrc != nil {
		q.SetSourceWithChecksumUpdate(*rw.quotedSrc)
	}
	if rw.quotedDst != nil {
		q.SetDestinationWithChecksumUpdate(*rw.quotedDst)
	}
	ql4 := icmp[8+qhl:]
	if rw.quotedSport != nil {
		binary.BigEndian.PutUint16(ql4[0:], *rw.quotedSport)
	}
	if rw.quotedDport != nil {
		binary.BigEndian.PutUint16(ql4[2:], *rw.quotedDport)
	}
	// The quoted L4 checksum is usually cut off or left as it was sent,
	// and nobody checks it; the ICMP checksum covers everything: redo it
	// in full, as ip_vs_nat_icmp does.
	binary.BigEndian.PutUint16(icmp[2:], 0)
	binary.BigEndian.PutUint16(icmp[2:], ^hdr.Fold(hdr.Sum(icmp, 0)))
}

// icmpToReal relays an error from the client's side to a NAT or FULLNAT
// connection's real server: the VIP (outer destination, quoted source)
// becomes the real server, and for FULLNAT the client (quoted destination)
// becomes the local address.
func (w *Worker) icmpToReal(f *afpacket.Frame, p *packet, c *conntrack.Conn[*service.Real]) Reason {
	r := c.Dest
	o, mac, why := w.toReal(f, p, r)
	if why != Forwarded {
		return why
	}
	decTTL(hdr.IPv4(o.b[hdr.EthernetLen:]))
	rip := r.Addr.As4()
	rport := r.Port
	if rport == 0 {
		rport = c.Key.VirtualPort
	}
	rw := icmpRewrite{outerDst: &rip, quotedSrc: &rip, quotedSport: &rport}
	if c.Aux.Forward == fwdFullNAT {
		la, lp := c.Aux.LocalAddr, c.Aux.LocalPort
		rw.outerSrc, rw.quotedDst, rw.quotedDport = &la, &la, &lp
	}
	applyICMP(o.b, p, &rw)
	o.vnet.Flags = 0
	return w.send(&o, mac)
}

// icmpToClient relays an error from a NAT or FULLNAT real server's side to
// the client: the real server (outer source, quoted destination) becomes
// the VIP, and for FULLNAT the local address (outer destination, quoted
// source) becomes the client.
func (w *Worker) icmpToClient(f *afpacket.Frame, p *packet, c *conntrack.Conn[*service.Real]) Reason {
	ei := w.egressFor(int(c.Aux.PeerIfindex))
	if ei < 0 {
		return NoEgress
	}
	if p.ip.TTL() <= 1 {
		return TTLExceeded
	}
	o, why := w.copyOut(f, ei)
	if why != Forwarded {
		return why
	}
	decTTL(hdr.IPv4(o.b[hdr.EthernetLen:]))
	vip := [4]byte(c.Key.Virtual[12:])
	vport := c.Key.VirtualPort
	rw := icmpRewrite{outerSrc: &vip, quotedDst: &vip, quotedDport: &vport}
	if c.Aux.Forward == fwdFullNAT {
		client := [4]byte(c.Key.Client[12:])
		cport := c.Key.ClientPort
		rw.outerDst, rw.quotedSrc, rw.quotedSport = &client, &client, &cport
	}
	applyICMP(o.b, p, &rw)
	o.vnet.Flags = 0
	return w.send(&o, c.Aux.PeerMAC)
}
