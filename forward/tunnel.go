package forward

import (
	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/internal/hdr"
	"github.com/gvs-project/gvs/service"
)

// outerLen is the IPIP outer header gvs writes: IPv4 without options.
const outerLen = hdr.IPv4MinLen

// defaultMTU is the MTU of an Egress that does not say.
const defaultMTU = 1500

// forwardTunnel sends a frame to its real server by IPIP tunnelling
// (LVS-TUN, ipvsadm -i), as ip_vs_tunnel_xmit does: the client's packet,
// its TTL one less, is wrapped in an outer IPv4 header from the director's
// address towards the real server (protocol 4, TTL and TOS copied from the
// inner header, DF copied) and sent to the next hop towards the real
// server. The real server unwraps it (its ipip module, or gvs realserver
// --tun) and answers the client directly from the VIP.
//
// A virtio-net header cannot ask the kernel to segment or checksum inside
// an IPIP packet, so gvs does both itself: a GSO super-frame is cut into
// segments before they are wrapped, and a checksum left to offload is
// completed. A packet that would not fit the egress MTU with its outer
// header gets, if DF is set, an ICMP fragmentation-needed with room for
// the outer header (MTU - 20), from the VIP to the client; otherwise the
// outer packet is fragmented. Both are counted.
func (w *Worker) forwardTunnel(f *afpacket.Frame, p *packet, r *service.Real) Reason {
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
	eg := &w.egress[ei]
	mtu := eg.MTU
	if mtu == 0 {
		mtu = defaultMTU
	}
	// The frame in the receive ring is gvs's to change: rewrite the inner
	// packet in place, then copy it behind the outer header.
	inner := f.Data[hdr.EthernetLen : hdr.EthernetLen+p.ipLen]
	decTTL(hdr.IPv4(inner))
	t := tunnel{w: w, eg: eg, ei: ei, mac: mac, src: link.Source, dst: r.Addr.As4(), inner: hdr.IPv4(inner)}

	if f.VNet.IsGSO() && p.proto == hdr.ProtoTCP {
		mss := int(f.VNet.GSOSize)
		hl := p.l4off - hdr.EthernetLen + hdr.TCP(inner[p.l4off-hdr.EthernetLen:]).DataOffset()
		if hl+mss+outerLen > mtu {
			if p.ip.DontFragment() {
				w.fragNeeded(f, p, mtu-outerLen)
				return FragNeeded
			}
			mss = mtu - outerLen - hl
		}
		if err := hdr.SegmentTCPv4(inner, mss, t.next); err != nil {
			t.abort()
			if t.full {
				return TxFull
			}
			return Malformed
		}
		t.finish()
		w.segmented.Add(1)
		return Forwarded
	}
	if f.VNet.Flags&afpacket.NeedsCsum != 0 {
		if err := hdr.CompletePartial(inner, int(f.VNet.CsumStart)-hdr.EthernetLen, int(f.VNet.CsumOffset)); err != nil {
			return Malformed
		}
	}
	if len(inner)+outerLen <= mtu {
		b := t.next(len(inner))
		if b == nil {
			return TxFull
		}
		copy(b, inner)
		t.finish()
		return Forwarded
	}
	if p.ip.DontFragment() {
		w.fragNeeded(f, p, mtu-outerLen)
		return FragNeeded
	}
	// Too big, and fragmenting allowed: build the outer packet whole in
	// the worker's scratch, then cut it into fragments straight into
	// transmit slots (the inner packet rides in the fragments' payload).
	pkt := w.scratch[:outerLen+len(inner)]
	t.outer(hdr.IPv4(pkt), len(inner))
	copy(pkt[outerLen:], inner)
	err := hdr.FragmentIPv4(pkt, mtu, func(size int) []byte {
		if !t.commitPending() {
			return nil
		}
		vnet, buf, ok := eg.TX.Slot()
		if !ok || len(buf) < hdr.EthernetLen+size {
			t.full = true
			return nil
		}
		*vnet = afpacket.VNetHdr{}
		t.pending, t.pendingLen = buf, hdr.EthernetLen+size
		return buf[hdr.EthernetLen:]
	})
	if err != nil {
		t.abort()
		if t.full {
			return TxFull
		}
		return Malformed
	}
	t.finish()
	w.fragmented.Add(1)
	return Forwarded
}

// tunnel writes IPIP packets into transmit slots: next gives the room for
// one inner packet behind an Ethernet and outer IP header, and the header
// is completed when the next packet starts or finish is called.
type tunnel struct {
	w        *Worker
	eg       *Egress
	ei       int
	mac      [6]byte
	src, dst [4]byte
	inner    hdr.IPv4 // the packet being wrapped: its TOS, DF and TTL go outside

	pending    []byte // the slot filled last, not yet committed
	pendingLen int
	innerLen   int // its inner packet's length (0 for ready fragments)
	full       bool
}

// outer writes the outer header for an inner packet of n bytes.
func (t *tunnel) outer(ip hdr.IPv4, n int) {
	t.w.ipID++
	ip.Encode(&hdr.IPv4Fields{
		TOS:      t.inner.TOS(),
		TotalLen: uint16(outerLen + n),
		ID:       t.w.ipID,
		DF:       t.inner.DontFragment(),
		TTL:      t.inner.TTL(),
		Protocol: hdr.ProtoIPIP,
		Src:      t.src,
		Dst:      t.dst,
	})
}

// next returns room for an inner packet of size bytes in a fresh slot,
// or nil when no slot is free.
func (t *tunnel) next(size int) []byte {
	if !t.commitPending() {
		return nil
	}
	vnet, buf, ok := t.eg.TX.Slot()
	off := hdr.EthernetLen + outerLen
	if !ok || len(buf) < off+size {
		t.full = true
		return nil
	}
	*vnet = afpacket.VNetHdr{}
	t.pending, t.pendingLen, t.innerLen = buf, off+size, size
	return buf[off : off+size]
}

// commitPending completes and commits the slot filled last, if any.
func (t *tunnel) commitPending() bool {
	if t.full {
		return false
	}
	if t.pending == nil {
		return true
	}
	b := t.pending
	e := hdr.Ethernet(b)
	e.SetDestination(t.mac)
	e.SetSource(t.eg.MAC)
	e.SetType(hdr.EtherTypeIPv4)
	if t.innerLen > 0 {
		t.outer(hdr.IPv4(b[hdr.EthernetLen:]), t.innerLen)
	}
	t.eg.TX.Commit(t.pendingLen)
	t.w.dirty[t.ei] = true
	t.pending, t.innerLen = nil, 0
	return true
}

// finish commits the last slot.
func (t *tunnel) finish() { t.commitPending() }

// abort drops the slot filled last without sending it (a failed
// segmentation or fragmentation: its frames already committed go out,
// TCP retransmits the rest).
func (t *tunnel) abort() { t.pending = nil }
