package forward

import (
	"encoding/binary"

	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/internal/hdr"
)

// out is a frame being written into a transmit slot: the copy of the
// received frame that the forwarding method rewrites in place.
type out struct {
	eg   *Egress
	ei   int
	vnet *afpacket.VNetHdr
	b    []byte // the frame in the slot
	// direct: b is the frame in its receive slot, to go out with
	// SendDirect.
	direct bool
}

// copyOut copies the frame into a slot of egress ei with its virtio-net
// header. ok is false (and r the verdict) when there is no slot.
//
// A super-frame (of the egress's directMin bytes or more) is not copied:
// it is rewritten where it lies, in its receive slot, and send hands it
// to the egress's direct socket, which copies it once into the kernel.
func (w *Worker) copyOut(f *afpacket.Frame, ei int) (o out, r Reason) {
	eg := &w.egress[ei]
	if eg.directMin > 0 && len(f.Data) >= eg.directMin && !w.tapping {
		return out{eg: eg, ei: ei, vnet: &f.VNet, b: f.Data, direct: true}, Forwarded
	}
	vnet, buf, ok := eg.TX.Slot()
	if !ok {
		return o, TxFull
	}
	if len(buf) < len(f.Data) {
		// The transmit slots are smaller than the receive slots: a
		// configuration error, never expected.
		return o, Truncated
	}
	n := copy(buf, f.Data)
	*vnet = f.VNet
	return out{eg: eg, ei: ei, vnet: vnet, b: buf[:n]}, Forwarded
}

// send commits the frame, from the egress interface's MAC to dst.
func (w *Worker) send(o *out, dst [6]byte) Reason {
	e := hdr.Ethernet(o.b)
	e.SetDestination(dst)
	e.SetSource(o.eg.MAC)
	if o.direct {
		if o.eg.direct.SendDirect(o.vnet, o.b) != nil {
			return TxFull // counted by the transmitter's drops
		}
		return Forwarded
	}
	o.eg.TX.Commit(len(o.b))
	w.dirty[o.ei] = true
	return Forwarded
}

// decTTL takes one from the packet's TTL, as a router does (IPVS's
// decrement_ttl), and updates the header checksum incrementally. It
// reports false when the packet would leave with TTL 0: the caller drops
// it and sends time-exceeded.
func decTTL(ip hdr.IPv4) bool {
	ttl := ip.TTL()
	if ttl <= 1 {
		return false
	}
	ip.SetTTLWithChecksumUpdate(ttl - 1)
	return true
}

// l4sum says how a frame's TCP or UDP checksum is kept right when
// addresses and ports change.
type l4sum uint8

const (
	// sumFull: a complete checksum, updated incrementally (RFC 1624).
	sumFull l4sum = iota
	// sumPartial: a checksum left to offload (NeedsCsum): the field holds
	// the pseudo-header sum, which only address changes touch; the
	// kernel sums the (rewritten) segment on transmit.
	sumPartial
	// sumNone: a UDP datagram without a checksum (0): stays 0.
	sumNone
	// noHeader: a later fragment, without a TCP/UDP header: only its IP
	// header changes (the first fragment carries the checksum update).
	noHeader
)

// l4 is the TCP or UDP header of a frame being rewritten.
type l4 struct {
	b    []byte // the L4 header and what follows
	csum int    // offset of the checksum field in b
	mode l4sum
	udp  bool
}

func newL4(o *out, p *packet) l4 {
	if p.frag == fragLater {
		return l4{mode: noHeader}
	}
	x := l4{b: o.b[p.l4off:], csum: hdr.TCPChecksumOffset}
	if p.proto == hdr.ProtoUDP {
		x.udp = true
		x.csum = hdr.UDPChecksumOffset
	}
	switch {
	case o.vnet.Flags&afpacket.NeedsCsum != 0:
		x.mode = sumPartial
	case x.udp && binary.BigEndian.Uint16(x.b[x.csum:]) == 0:
		x.mode = sumNone
	}
	return x
}

func (x *l4) sum() uint16     { return binary.BigEndian.Uint16(x.b[x.csum:]) }
func (x *l4) setSum(c uint16) { binary.BigEndian.PutUint16(x.b[x.csum:], c) }

// addr accounts for an address of the pseudo-header changing.
func (x *l4) addr(old, new [4]byte) {
	switch x.mode {
	case sumFull:
		c := hdr.Update32(x.sum(), old, new)
		if c == 0 && x.udp {
			c = 0xffff // RFC 768: a computed 0 is sent as all ones
		}
		x.setSum(c)
	case sumPartial:
		x.setSum(hdr.UpdatePartial32(x.sum(), old, new))
	}
}

// port sets the port at offset off (0 source, 2 destination) of the
// header, keeping the checksum right.
func (x *l4) port(off int, new uint16) {
	if x.mode == noHeader {
		return
	}
	old := binary.BigEndian.Uint16(x.b[off:])
	binary.BigEndian.PutUint16(x.b[off:], new)
	if x.mode == sumFull {
		c := hdr.Update16(x.sum(), old, new)
		if c == 0 && x.udp {
			c = 0xffff
		}
		x.setSum(c)
	}
	// A partial checksum does not cover the header yet: the kernel will
	// sum the new port in.
}
