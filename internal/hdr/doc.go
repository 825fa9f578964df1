// Package hdr provides typed views over the bytes of Ethernet, IPv4, TCP and
// UDP headers, and Internet checksums (RFC 1071) with incremental updates
// (RFC 1624), for gvs's data path.
//
// A view is a byte slice type (type IPv4 []byte) whose accessors read and
// write fields at fixed offsets without copying or allocating. Accessors
// do no bounds checks of their own beyond Go's: callers validate a header
// once, with the package's Parse functions or IsValid methods, and then use
// the view freely. This follows gVisor's pkg/tcpip/header.
//
// # Doing in user space what the kernel does for tunnels
//
// In TUN (IPIP) mode gvs must hand the real server finished packets: a
// virtio-net header cannot describe segmentation of an IPIP-encapsulated
// super-packet, so what offload would have done is done here:
//
//   - CompletePartial finishes a checksum left to offload
//     (VIRTIO_NET_HDR_F_NEEDS_CSUM), as skb_checksum_help does;
//     UpdatePartial16 and UpdatePartial32 keep such a pending checksum
//     right when NAT rewrites a pseudo-header field.
//   - SegmentTCPv4 is software TSO (inet_gso_segment + tcp_gso_segment).
//   - FragmentIPv4 is ip_fragment, for packets that exceed the tunnel MTU
//     and may be fragmented.
//   - BuildICMPv4Error answers those that may not (DF set) with
//     "fragmentation needed", as icmp_send would, and ParseICMPv4Error
//     reads the errors that come back, for relaying.
//
// SegmentTCPv4 and FragmentIPv4 write each output packet straight into a
// buffer the caller hands out through a next(size) callback, so the data
// path can point it at a TX ring slot after the headroom it keeps for the
// outer headers, and no packet is copied twice. All of them validate their
// input before writing anything, and return package-level sentinel errors.
//
// Everything here is allocation-free and safe to call per packet, with no
// state of its own: concurrent calls on distinct buffers are safe.
package hdr
