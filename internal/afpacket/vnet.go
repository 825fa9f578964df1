package afpacket

import "encoding/binary"

// VNetHdr is struct virtio_net_hdr (include/uapi/linux/virtio_net.h), the
// 10-byte header the kernel puts in front of every frame of a packet socket
// with PACKET_VNET_HDR set. It carries what the frame's sk_buff knew about
// segmentation and checksum offload, so a super-frame can travel through
// user space whole:
//
//	 0               1               2               3
//	+---------------+---------------+-------------------------------+
//	|     flags     |   gso_type    |            hdr_len            |
//	+---------------+---------------+-------------------------------+
//	|           gso_size            |          csum_start           |
//	+-------------------------------+-------------------------------+
//	|          csum_offset          |
//	+-------------------------------+
//
// The 16-bit fields are in host byte order: packet sockets use the legacy
// virtio layout, whose byte order is the host's (vio_le() in
// net/packet/af_packet.c is virtio_legacy_is_little_endian()).
//
// On receive the kernel fills it from the sk_buff (virtio_net_hdr_from_skb):
// GSOType/GSOSize describe a GSO/GRO super-frame, HdrLen is only a hint (the
// length of the sk_buff's linear part), and NeedsCsum says the L4 checksum
// has not been computed: the 16-bit checksum field at CsumStart+CsumOffset
// holds only the pseudo-header sum, and whoever finally sends the frame
// (the kernel, when the header is passed back on transmit) completes it over
// the bytes from CsumStart to the end. CsumStart counts from the first byte of
// the Ethernet header. DataValid says the checksum was already verified.
//
// On transmit the kernel reads it back (virtio_net_hdr_to_skb) and segments
// and checksums the frame as needed, in the driver or in software.
type VNetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16
	GSOSize    uint16
	CsumStart  uint16
	CsumOffset uint16
}

// VNetHdrLen is sizeof(struct virtio_net_hdr), the size of the header that
// PACKET_VNET_HDR adds (the 12-byte virtio_net_hdr_mrg_rxbuf is only used
// with PACKET_VNET_HDR_SZ, which this package does not set).
const VNetHdrLen = 10

// Flags (VIRTIO_NET_HDR_F_*).
const (
	// NeedsCsum: the L4 checksum is partial; complete it from CsumStart,
	// storing the result at CsumStart+CsumOffset.
	NeedsCsum = 1
	// DataValid: the checksum has been verified (receive only).
	DataValid = 2
)

// GSO types (VIRTIO_NET_HDR_GSO_*).
const (
	GSONone  = 0    // not a super-frame
	GSOTCPv4 = 1    // TSO over IPv4
	GSOUDP   = 3    // UFO, IP fragmentation of a large UDP datagram (legacy)
	GSOTCPv6 = 4    // TSO over IPv6
	GSOUDPL4 = 5    // USO, UDP segmentation (UDP_SEGMENT), since Linux 6.2
	GSOECN   = 0x80 // flag: the TCP super-frame carries CWR, keep ECN semantics
)

// Packet types (sll_pkttype, PACKET_* in include/uapi/linux/if_packet.h):
// how the receiving interface classified the destination MAC.
const (
	PacketHost      = 0 // addressed to this interface's MAC
	PacketBroadcast = 1 // ff:ff:ff:ff:ff:ff
	PacketMulticast = 2 // a group address
	PacketOtherHost = 3 // unicast to some other MAC (promiscuous, veth, bridge)
	PacketOutgoing  = 4 // sent by this host (never seen: PACKET_IGNORE_OUTGOING)
)

// Frame status bits (tp_status, TP_STATUS_* in include/uapi/linux/if_packet.h)
// as reported in Frame.Status.
const (
	StatusUser          = 0x1   // the slot belongs to user space (always set in Frame.Status)
	StatusCopy          = 0x2   // a copy went to the socket queue (PACKET_COPY_THRESH, unused here)
	StatusLosing        = 0x4   // the socket dropped frames since the last Stats call
	StatusCsumNotReady  = 0x8   // ip_summed == CHECKSUM_PARTIAL: see NeedsCsum
	StatusVLANValid     = 0x10  // Frame.VLANTCI holds the stripped 802.1Q tag
	StatusVLANTPIDValid = 0x40  // Frame.VLANTPID holds the stripped tag's TPID
	StatusCsumValid     = 0x80  // the checksum was verified (by the NIC or the stack)
	StatusGSOTCP        = 0x100 // a TCP GSO super-frame (since Linux 5.12)
)

// IsGSO reports whether the header describes a super-frame that the kernel
// must segment (GSOType other than GSONone; the ECN bit alone does not count).
func (h *VNetHdr) IsGSO() bool { return h.GSOType&^GSOECN != GSONone }

// Decode fills h from the first VNetHdrLen bytes of b (host byte order).
// It panics if b is shorter.
func (h *VNetHdr) Decode(b []byte) {
	_ = b[VNetHdrLen-1] // one bounds check
	h.Flags = b[0]
	h.GSOType = b[1]
	h.HdrLen = binary.NativeEndian.Uint16(b[2:])
	h.GSOSize = binary.NativeEndian.Uint16(b[4:])
	h.CsumStart = binary.NativeEndian.Uint16(b[6:])
	h.CsumOffset = binary.NativeEndian.Uint16(b[8:])
}

// Encode writes h to the first VNetHdrLen bytes of b (host byte order).
// It panics if b is shorter.
func (h *VNetHdr) Encode(b []byte) {
	_ = b[VNetHdrLen-1]
	b[0] = h.Flags
	b[1] = h.GSOType
	binary.NativeEndian.PutUint16(b[2:], h.HdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.GSOSize)
	binary.NativeEndian.PutUint16(b[6:], h.CsumStart)
	binary.NativeEndian.PutUint16(b[8:], h.CsumOffset)
}
