package arp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// Frame layout: an Ethernet II header followed by an ARP packet for IPv4
// over Ethernet (RFC 826; RFC 5227 for probes and announcements).
//
//	offset  octets  field
//	     0       6  Ethernet destination
//	     6       6  Ethernet source
//	    12       2  EtherType (0x0806, ARP)
//	    14       2  hardware type (1, Ethernet)
//	    16       2  protocol type (0x0800, IPv4)
//	    18       1  hardware address length (6)
//	    19       1  protocol address length (4)
//	    20       2  operation (1 request, 2 reply)
//	    22       6  sender hardware address (SHA)
//	    28       4  sender protocol address (SPA)
//	    32       6  target hardware address (THA)
//	    38       4  target protocol address (TPA)
//	    42          end
//
// Frames on the wire are padded to 60 octets (plus FCS); the padding is
// ignored on input and not written on output (the NIC driver pads, as it
// does for the kernel's own 42-octet ARP frames).
const (
	ethDst   = 0
	ethSrc   = 6
	ethType  = 12
	arpHType = 14
	arpPType = 16
	arpHLen  = 18
	arpPLen  = 19
	arpOp    = 20
	arpSHA   = 22
	arpSPA   = 28
	arpTHA   = 32
	arpTPA   = 38

	// FrameLen is the length of an Ethernet+ARP frame for IPv4 over
	// Ethernet without padding: 14 octets of Ethernet header and 28 of ARP.
	FrameLen = 42

	etherTypeARP  = 0x0806 // IEEE 802 EtherType for ARP
	etherTypeIPv4 = 0x0800 // ARP protocol type for IPv4 (same as its EtherType)
	hwTypeEther   = 1      // ARP hardware type for Ethernet (RFC 826, IANA)
	hwLenEther    = 6      // octets in an Ethernet address
	protoLenIPv4  = 4      // octets in an IPv4 address
)

// Operation is the ARP opcode (IANA "ARP Operation Codes").
type Operation uint16

// The two operations gvs sends and acts on. Others decode but are ignored.
const (
	OpRequest Operation = 1
	OpReply   Operation = 2
)

func (o Operation) String() string {
	switch o {
	case OpRequest:
		return "request"
	case OpReply:
		return "reply"
	}
	return fmt.Sprintf("Operation(%d)", uint16(o))
}

// Broadcast is the Ethernet broadcast address.
var Broadcast = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// Errors returned by Frame's methods.
var (
	// ErrInvalidFrame: the frame is not an Ethernet II frame carrying ARP
	// for IPv4 over Ethernet (wrong EtherType, hardware or protocol type,
	// or address lengths). UnmarshalBinary wraps it with the offending
	// field.
	ErrInvalidFrame = errors.New("arp: not an Ethernet/IPv4 ARP frame")
	// ErrInvalidAddr: an address is not IPv4 (or is the zero netip.Addr).
	ErrInvalidAddr = errors.New("arp: address is not IPv4")
)

// Frame is one Ethernet II frame carrying an ARP packet for IPv4 over
// Ethernet. The zero value is not a valid frame to marshal (its IP
// addresses are the zero netip.Addr); use netip.IPv4Unspecified() for the
// 0.0.0.0 of an ARP probe. A Frame is a plain value, not safe for
// concurrent mutation.
type Frame struct {
	Dst, Src  [6]byte // Ethernet destination and source
	Op        Operation
	SenderMAC [6]byte
	SenderIP  netip.Addr
	TargetMAC [6]byte
	TargetIP  netip.Addr
}

// MarshalBinary returns the frame's FrameLen octets.
func (f *Frame) MarshalBinary() ([]byte, error) {
	return f.AppendBinary(make([]byte, 0, FrameLen))
}

// AppendBinary appends the frame's FrameLen octets to b. It does not
// allocate when b has room for them.
func (f *Frame) AppendBinary(b []byte) ([]byte, error) {
	if !f.SenderIP.Is4() || !f.TargetIP.Is4() {
		return b, ErrInvalidAddr
	}
	n := len(b)
	b = append(b, make([]byte, FrameLen)...)
	f.put(b[n : n+FrameLen])
	return b, nil
}

// put writes the frame into b, which must be FrameLen long and the
// addresses IPv4.
func (f *Frame) put(b []byte) {
	_ = b[FrameLen-1] // one bounds check for the rest
	copy(b[ethDst:], f.Dst[:])
	copy(b[ethSrc:], f.Src[:])
	binary.BigEndian.PutUint16(b[ethType:], etherTypeARP)
	binary.BigEndian.PutUint16(b[arpHType:], hwTypeEther)
	binary.BigEndian.PutUint16(b[arpPType:], etherTypeIPv4)
	b[arpHLen] = hwLenEther
	b[arpPLen] = protoLenIPv4
	binary.BigEndian.PutUint16(b[arpOp:], uint16(f.Op))
	copy(b[arpSHA:], f.SenderMAC[:])
	spa := f.SenderIP.As4()
	copy(b[arpSPA:], spa[:])
	copy(b[arpTHA:], f.TargetMAC[:])
	tpa := f.TargetIP.As4()
	copy(b[arpTPA:], tpa[:])
}

// UnmarshalBinary decodes the first FrameLen octets of b (trailing padding
// is ignored). It returns io.ErrUnexpectedEOF if b is shorter, and an error
// wrapping ErrInvalidFrame if b is not Ethernet/IPv4 ARP. Any operation
// code is accepted.
func (f *Frame) UnmarshalBinary(b []byte) error {
	switch bad := f.decode(b); bad {
	case badNone:
		return nil
	case badShort:
		return io.ErrUnexpectedEOF
	default:
		return fmt.Errorf("%w: %s", ErrInvalidFrame, bad.describe(b))
	}
}

// badField says why decode rejected a frame, without allocating.
type badField uint8

const (
	badNone badField = iota
	badShort
	badEtherType
	badHType
	badPType
	badHLen
	badPLen
)

func (w badField) describe(b []byte) string {
	switch w {
	case badEtherType:
		return fmt.Sprintf("EtherType %#04x", binary.BigEndian.Uint16(b[ethType:]))
	case badHType:
		return fmt.Sprintf("hardware type %d", binary.BigEndian.Uint16(b[arpHType:]))
	case badPType:
		return fmt.Sprintf("protocol type %#04x", binary.BigEndian.Uint16(b[arpPType:]))
	case badHLen:
		return fmt.Sprintf("hardware address length %d", b[arpHLen])
	case badPLen:
		return fmt.Sprintf("protocol address length %d", b[arpPLen])
	}
	return "truncated"
}

// decode is UnmarshalBinary without the error values: the receive loop
// uses it so that a flood of bad frames costs no allocation.
func (f *Frame) decode(b []byte) badField {
	if len(b) < FrameLen {
		return badShort
	}
	b = b[:FrameLen:FrameLen]
	switch {
	case binary.BigEndian.Uint16(b[ethType:]) != etherTypeARP:
		return badEtherType
	case binary.BigEndian.Uint16(b[arpHType:]) != hwTypeEther:
		return badHType
	case binary.BigEndian.Uint16(b[arpPType:]) != etherTypeIPv4:
		return badPType
	case b[arpHLen] != hwLenEther:
		return badHLen
	case b[arpPLen] != protoLenIPv4:
		return badPLen
	}
	copy(f.Dst[:], b[ethDst:])
	copy(f.Src[:], b[ethSrc:])
	f.Op = Operation(binary.BigEndian.Uint16(b[arpOp:]))
	copy(f.SenderMAC[:], b[arpSHA:])
	f.SenderIP = netip.AddrFrom4([4]byte(b[arpSPA : arpSPA+4]))
	copy(f.TargetMAC[:], b[arpTHA:])
	f.TargetIP = netip.AddrFrom4([4]byte(b[arpTPA : arpTPA+4]))
	return badNone
}
