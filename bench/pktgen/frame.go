package pktgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/gvs-project/gvs/internal/hdr"
)

// Frame sizes, counted on the wire with the FCS (RFC 2544).
const (
	// FCSLen is the Ethernet frame check sequence, which the NIC (here:
	// nobody, on veth) appends; it is not in the ring.
	FCSLen = 4
	// MinSize is the smallest Ethernet frame.
	MinSize = 64
	// MaxSize is the largest untagged frame of a 1500-byte MTU.
	MaxSize = 1518
	// headersLen is Ethernet + IPv4 without options + UDP.
	headersLen = hdr.EthernetLen + hdr.IPv4MinLen + hdr.UDPLen
	// ttl is the IPv4 TTL of every frame: Linux's default (64).
	ttl = 64
)

// marker starts every payload, so that a frame in a capture is recognisable.
var marker = []byte("gvsbench")

// ErrSpec is wrapped by every error about an invalid Spec.
var ErrSpec = errors.New("pktgen: invalid traffic spec")

// Spec describes the generated traffic; see the package doc.
type Spec struct {
	SrcMAC, DstMAC [6]byte
	Src            [4]byte
	// Srcs is the number of source addresses, consecutive from Src
	// (0 means 1): flow i comes from Src+i%Srcs, source port
	// BasePort+i/Srcs. More than one lets Flows exceed the 16 bits of a
	// port (a million flows: 32 addresses of 32768 ports).
	Srcs int
	// Dsts are the destination addresses; flow i goes to Dsts[i%len(Dsts)].
	Dsts    [][4]byte
	DstPort uint16
	// BasePort is flow 0's source port; flow i uses BasePort+i/Srcs.
	BasePort uint16
	// Flows is the number of flows (distinct source address and port
	// pairs), at least 1.
	Flows int
	// Size is the frame size on the wire, FCS included: MinSize..MaxSize.
	Size int
}

// Frames are the prepared frames of a Spec. A Frames is read-only after
// Build and may be shared.
type Frames struct {
	n         int      // bytes per frame in the ring (Size - FCSLen)
	templates [][]byte // one per destination
	dsts      int
	srcs      int
	src       [4]byte
	base      uint16
	csum      []uint16 // the UDP checksum of each flow
	ipCsum    []uint16 // the IPv4 header checksum of each source × destination
}

// Build checks the spec and prepares its frames.
func (s Spec) Build() (*Frames, error) {
	switch {
	case s.Size < MinSize || s.Size > MaxSize:
		return nil, fmt.Errorf("%w: frame size %d not in [%d, %d]", ErrSpec, s.Size, MinSize, MaxSize)
	case len(s.Dsts) == 0:
		return nil, fmt.Errorf("%w: no destination", ErrSpec)
	case s.Srcs < 0 || s.Srcs > MaxSrcs:
		return nil, fmt.Errorf("%w: %d source addresses not in [1, %d]", ErrSpec, s.Srcs, MaxSrcs)
	case s.Flows < 1 || int(s.BasePort)+(s.Flows-1)/max(s.Srcs, 1) > 0xffff:
		return nil, fmt.Errorf("%w: %d flows from %d source addresses and source port %d do not fit in 16 bits", ErrSpec, s.Flows, max(s.Srcs, 1), s.BasePort)
	case s.BasePort == 0 || s.DstPort == 0:
		return nil, fmt.Errorf("%w: port 0", ErrSpec)
	}
	n := s.Size - FCSLen
	srcs := max(s.Srcs, 1)
	f := &Frames{n: n, dsts: len(s.Dsts), srcs: srcs, src: s.Src, base: s.BasePort, csum: make([]uint16, s.Flows)}
	for _, dst := range s.Dsts {
		b := make([]byte, n)
		e := hdr.Ethernet(b)
		e.SetDestination(s.DstMAC)
		e.SetSource(s.SrcMAC)
		e.SetType(hdr.EtherTypeIPv4)
		hdr.IPv4(b[hdr.EthernetLen:]).Encode(&hdr.IPv4Fields{
			TotalLen: uint16(n - hdr.EthernetLen),
			DF:       true,
			TTL:      ttl,
			Protocol: hdr.ProtoUDP,
			Src:      s.Src,
			Dst:      dst,
		})
		udp := b[hdr.EthernetLen+hdr.IPv4MinLen:]
		binary.BigEndian.PutUint16(udp[0:], s.BasePort)
		binary.BigEndian.PutUint16(udp[2:], s.DstPort)
		binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
		copy(udp[hdr.UDPLen:], marker)
		f.templates = append(f.templates, b)
	}
	// The IPv4 header checksum of each source with each destination
	// (Encode computed the templates' own, for Src).
	for si := range srcs {
		for _, t := range f.templates {
			ip := hdr.IPv4(slices.Clone(t[hdr.EthernetLen : hdr.EthernetLen+hdr.IPv4MinLen]))
			a := f.srcAddr(si)
			copy(ip[12:16], a[:])
			ip.SetChecksum(0)
			f.ipCsum = append(f.ipCsum, ^hdr.Fold(hdr.Sum(ip, 0)))
		}
	}
	for i := range f.csum {
		t := f.templates[i%f.dsts]
		udp := hdr.UDP(t[hdr.EthernetLen+hdr.IPv4MinLen:])
		binary.BigEndian.PutUint16(udp[0:], f.port(i))
		udp.SetChecksum(0)
		c := hdr.TransportChecksum(f.srcAddr(i%srcs), s.Dsts[i%f.dsts], hdr.ProtoUDP, udp)
		if c == 0 {
			c = 0xffff // RFC 768: a computed 0 is sent as all ones
		}
		f.csum[i] = c
	}
	return f, nil
}

// MaxSrcs bounds Spec.Srcs: the addresses are consecutive, and 256 of
// them with 65536 ports each already give 16 million flows.
const MaxSrcs = 256

// srcAddr is the i-th source address: Src + i.
func (f *Frames) srcAddr(i int) [4]byte {
	v := binary.BigEndian.Uint32(f.src[:]) + uint32(i)
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], v)
	return a
}

// port is flow's source port.
func (f *Frames) port(flow int) uint16 { return f.base + uint16(flow/f.srcs) }

// Len is the number of bytes Write writes: the frame without its FCS.
func (f *Frames) Len() int { return f.n }

// Flows is the number of flows.
func (f *Frames) Flows() int { return len(f.csum) }

// Write writes flow's frame into buf and returns its length. buf must hold
// Len bytes and flow must be in [0, Flows). Write does not allocate.
func (f *Frames) Write(buf []byte, flow int) int {
	di := flow % f.dsts
	n := copy(buf[:f.n], f.templates[di])
	if f.srcs > 1 {
		si := flow % f.srcs
		ip := buf[hdr.EthernetLen:]
		a := f.srcAddr(si)
		copy(ip[12:16], a[:])
		binary.BigEndian.PutUint16(ip[10:], f.ipCsum[si*f.dsts+di])
	}
	udp := buf[hdr.EthernetLen+hdr.IPv4MinLen:]
	binary.BigEndian.PutUint16(udp[0:], f.port(flow))
	binary.BigEndian.PutUint16(udp[6:], f.csum[flow])
	return n
}

// StampOffset is where a stamped frame's timestamp sits in the UDP
// payload: right after the marker.
const StampOffset = 8

// WriteStamped is Write with a timestamp (nanoseconds; the bench uses
// time.Now().UnixNano(), the clock the kernel stamps received frames with)
// written big-endian into the payload after the marker, and the UDP
// checksum updated for it (RFC 1624). It does not allocate.
func (f *Frames) WriteStamped(buf []byte, flow int, stamp int64) int {
	n := f.Write(buf, flow)
	udp := buf[hdr.EthernetLen+hdr.IPv4MinLen:]
	p := udp[hdr.UDPLen+StampOffset:]
	binary.BigEndian.PutUint64(p, uint64(stamp))
	// The payload held zeros there: the sum grows by the stamp's words.
	c := binary.BigEndian.Uint16(udp[6:])
	sum := uint32(^c) + uint32(hdr.Fold(hdr.Sum(p[:8], 0))) // folded first: no carry lost
	c = ^hdr.Fold(sum)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], c)
	return n
}

// Stamp returns the timestamp of a frame WriteStamped wrote (possibly
// forwarded since, or wrapped in IPIP: one outer IPv4 header is skipped),
// and whether the frame is one.
func Stamp(frame []byte) (int64, bool) {
	if len(frame) < hdr.EthernetLen+hdr.IPv4MinLen || binary.BigEndian.Uint16(frame[12:]) != hdr.EtherTypeIPv4 {
		return 0, false
	}
	ip := frame[hdr.EthernetLen:]
	for range 2 {
		if len(ip) < hdr.IPv4MinLen || ip[0]>>4 != 4 {
			return 0, false
		}
		ihl := int(ip[0]&0x0f) * 4
		if ihl < hdr.IPv4MinLen || len(ip) < ihl {
			return 0, false
		}
		switch ip[9] {
		case ipProtoIPIP:
			ip = ip[ihl:]
			continue
		case hdr.ProtoUDP:
			p := ip[ihl:]
			if len(p) < hdr.UDPLen+StampOffset+8 || string(p[hdr.UDPLen:hdr.UDPLen+StampOffset]) != string(marker) {
				return 0, false
			}
			return int64(binary.BigEndian.Uint64(p[hdr.UDPLen+StampOffset:])), true
		}
		return 0, false
	}
	return 0, false
}

// ipProtoIPIP is IPv4-in-IPv4 (RFC 2003), LVS-TUN's encapsulation.
const ipProtoIPIP = 4
