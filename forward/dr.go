package forward

import (
	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/internal/hdr"
	"github.com/gvs-project/gvs/service"
)

// forwardDR sends a frame to its real server by direct routing (LVS-DR,
// ipvsadm -g): the frame is copied into a transmit slot of the interface
// the real server is on, with the real server's MAC as its destination and
// that interface's MAC as its source, and its TTL one less (as IPVS does
// in every mode). The addresses are not touched: the real server accepts
// the packet because it holds the VIP on its loopback, and answers the
// client directly.
func (w *Worker) forwardDR(f *afpacket.Frame, p *packet, r *service.Real) Reason {
	link := r.Link()
	mac, ok := link.Hop.MAC()
	if !ok {
		link.Hop.Drop()
		return Unresolved
	}
	ei := w.egressFor(link.Hop.Ifindex())
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
	decTTL(hdr.IPv4(o.b[hdr.EthernetLen:]))
	prepareOffload(o.vnet, o.b, p)
	return w.send(&o, mac)
}

// prepareOffload makes a received frame's virtio-net header right for
// sending it on, after its addresses are rewritten (p holds the new ones).
// A frame with a partial checksum (NeedsCsum) keeps it: the kernel
// completes it on transmit, and csum_start still points at the same L4
// header. A GRO super-frame from a NIC arrives instead with its checksum
// verified (DataValid) and the TCP checksum of its first segment only: it
// is given a partial checksum (the pseudo-header sum over the whole
// segment, as tcp_v4_send_check would leave it) so that the kernel
// computes a right one for each segment, wherever it segments. Verified
// non-GSO frames carry a valid checksum already and need no flags.
func prepareOffload(v *afpacket.VNetHdr, frame []byte, p *packet) {
	if v.Flags&afpacket.NeedsCsum != 0 {
		return
	}
	if !v.IsGSO() {
		v.Flags = 0
		return
	}
	l4len := p.ipLen - p.ip.HeaderLen()
	off := hdr.TCPChecksumOffset
	if p.proto == hdr.ProtoUDP {
		off = hdr.UDPChecksumOffset
	}
	v.Flags = afpacket.NeedsCsum
	v.CsumStart = uint16(p.l4off)
	v.CsumOffset = uint16(off)
	sum := hdr.Fold(hdr.PseudoHeaderSum(p.src, p.dst, p.proto, l4len))
	frame[p.l4off+off] = byte(sum >> 8)
	frame[p.l4off+off+1] = byte(sum)
}
