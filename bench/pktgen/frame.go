package pktgen

import (
	"encoding/binary"
	"errors"
	"fmt"

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
	// Dsts are the destination addresses; flow i goes to Dsts[i%len(Dsts)].
	Dsts    [][4]byte
	DstPort uint16
	// BasePort is flow 0's source port; flow i uses BasePort+i.
	BasePort uint16
	// Flows is the number of flows (distinct source ports), at least 1.
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
	base      uint16
	csum      []uint16 // the UDP checksum of each flow
}

// Build checks the spec and prepares its frames.
func (s Spec) Build() (*Frames, error) {
	switch {
	case s.Size < MinSize || s.Size > MaxSize:
		return nil, fmt.Errorf("%w: frame size %d not in [%d, %d]", ErrSpec, s.Size, MinSize, MaxSize)
	case len(s.Dsts) == 0:
		return nil, fmt.Errorf("%w: no destination", ErrSpec)
	case s.Flows < 1 || int(s.BasePort)+s.Flows-1 > 0xffff:
		return nil, fmt.Errorf("%w: %d flows from source port %d do not fit in 16 bits", ErrSpec, s.Flows, s.BasePort)
	case s.BasePort == 0 || s.DstPort == 0:
		return nil, fmt.Errorf("%w: port 0", ErrSpec)
	}
	n := s.Size - FCSLen
	f := &Frames{n: n, dsts: len(s.Dsts), base: s.BasePort, csum: make([]uint16, s.Flows)}
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
	for i := range f.csum {
		t := f.templates[i%f.dsts]
		udp := hdr.UDP(t[hdr.EthernetLen+hdr.IPv4MinLen:])
		binary.BigEndian.PutUint16(udp[0:], s.BasePort+uint16(i))
		udp.SetChecksum(0)
		c := hdr.TransportChecksum(s.Src, s.Dsts[i%f.dsts], hdr.ProtoUDP, udp)
		if c == 0 {
			c = 0xffff // RFC 768: a computed 0 is sent as all ones
		}
		f.csum[i] = c
	}
	return f, nil
}

// Len is the number of bytes Write writes: the frame without its FCS.
func (f *Frames) Len() int { return f.n }

// Flows is the number of flows.
func (f *Frames) Flows() int { return len(f.csum) }

// Write writes flow's frame into buf and returns its length. buf must hold
// Len bytes and flow must be in [0, Flows). Write does not allocate.
func (f *Frames) Write(buf []byte, flow int) int {
	n := copy(buf[:f.n], f.templates[flow%f.dsts])
	udp := buf[hdr.EthernetLen+hdr.IPv4MinLen:]
	binary.BigEndian.PutUint16(udp[0:], f.base+uint16(flow))
	binary.BigEndian.PutUint16(udp[6:], f.csum[flow])
	return n
}
