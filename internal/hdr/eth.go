package hdr

import "encoding/binary"

// Ethernet is an Ethernet II header (IEEE 802.3):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 Destination MAC (6 bytes)                     |
//	+                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                               |   Source MAC (6 bytes)        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          EtherType            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type Ethernet []byte

const (
	// EthernetLen is the length of an untagged Ethernet header.
	EthernetLen = 14

	ethDst  = 0
	ethSrc  = 6
	ethType = 12
)

// EtherTypes gvs looks at.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeVLAN = 0x8100 // IEEE 802.1Q tag
	EtherTypeQinQ = 0x88a8 // IEEE 802.1ad outer tag
	EtherTypeIPv6 = 0x86dd
)

// Destination returns the destination MAC address.
func (e Ethernet) Destination() [6]byte { return [6]byte(e[ethDst : ethDst+6]) }

// Source returns the source MAC address.
func (e Ethernet) Source() [6]byte { return [6]byte(e[ethSrc : ethSrc+6]) }

// Type returns the EtherType.
func (e Ethernet) Type() uint16 { return binary.BigEndian.Uint16(e[ethType:]) }

// SetDestination sets the destination MAC address.
func (e Ethernet) SetDestination(mac [6]byte) { copy(e[ethDst:ethDst+6], mac[:]) }

// SetSource sets the source MAC address.
func (e Ethernet) SetSource(mac [6]byte) { copy(e[ethSrc:ethSrc+6], mac[:]) }

// SetType sets the EtherType.
func (e Ethernet) SetType(t uint16) { binary.BigEndian.PutUint16(e[ethType:], t) }
