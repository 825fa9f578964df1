// Package forward is gvs's data path. It reads frames in batches from the
// interfaces gvs serves, and for each frame addressed to a virtual service
// it finds or creates the frame's connection, has the service's scheduler
// pick a real server for a new one, rewrites the frame for the real
// server's forwarding method and queues it for transmission. Reading top
// to bottom, a frame goes:
//
//	frame in (RX ring) -> classify -> conntrack -> schedule -> rewrite -> frame out (TX ring)
//
// # Batches and buffers
//
// Each interface has a worker goroutine that owns a receive ring on it and
// a transmit ring on every interface gvs serves. A worker takes every
// frame the kernel has ready (at most BatchSize, never waiting for more),
// handles each, copies each frame it forwards once, from its receive slot
// into a transmit slot where it is rewritten, flushes every transmit ring
// once per batch (one sendto each), and gives the receive slots back. The
// clock and the service snapshot are read once per batch. Nothing on this
// path allocates, logs or takes a lock other than the connection table's
// shard lock and, for a new connection, the service's scheduler lock.
//
// With a large connection table (prefetchFrom entries and up) a worker
// first classifies the whole batch and has the table prefetch every
// frame's connection (conntrack.Table.Prefetch), so that the cache misses
// of the batch's lookups overlap; then it handles the frames.
//
// # Large frames
//
// The rings carry a virtio-net header (PACKET_VNET_HDR), so GSO/GRO
// super-frames of up to 64 KiB and frames whose checksum was left to
// offload arrive whole and leave whole: the kernel segments them and
// completes their checksums on transmit. A GRO super-frame from a real NIC
// arrives with a valid checksum flag rather than a partial checksum; it is
// turned into a partial one (NeedsCsum) before transmit, because the
// receiver of an unsegmented frame would otherwise check a checksum that
// belongs to the first segment only.
//
// A super-frame of 8 KiB or more (an egress transmitter's DirectMin) is
// not copied into a transmit slot: it is rewritten in its receive slot and
// sent from there through the ring's companion socket
// (afpacket.TX.SendDirect), which copies it once into the kernel. Through
// a slot it would be copied twice, by gvs and then by veth or any device
// that hands frames to a stack (the slot's pages are user memory). While a
// tap is set, every frame goes through the slots, where the tap sees it.
//
// # Verdicts
//
// Every frame gets a verdict, counted per worker by reason: forwarded,
// not for gvs (left alone: gvs never forwards a frame it does not own),
// or dropped for a named reason (no real server available, MAC of the
// real server not resolved, connection table full, transmit ring full,
// truncated or malformed frame, a non-SYN TCP packet with no connection).
//
// # Bad input
//
// Nothing a frame holds can make the data path read out of bounds, panic
// or change state for it unless it is a sound packet of a virtual service
// (FuzzClassify and FuzzHandle check both). In order:
//
//   - VLAN-tagged frames (a tag in the frame, or one the kernel stripped)
//     are left to the kernel (VLAN): serve the VLAN interface instead;
//   - an IPv4 header that does not hold together (too short for its IHL,
//     version, IHL below 5, total length below the header or beyond the
//     frame) is Malformed; a TCP or UDP header that does not (TCP data
//     offset, UDP length below 8 or past the packet, tiny or overlapping
//     fragments, see classify) is MalformedL4: both left alone;
//   - TCP or UDP to a virtual address on a port or protocol no service
//     has is left to the kernel, counted as NoService (a VIP the kernel
//     holds gets its RST or port unreachable, as under IPVS);
//   - a frame of a virtual service (or a NAT/FULLNAT reply, or an ICMP
//     error about a connection) whose IPv4 header checksum is wrong is
//     dropped (BadChecksum): gvs reads frames before the kernel's ip_rcv,
//     which drops them (IPVS never sees one). TCP and UDP checksums are
//     not verified: the real server's kernel does that, as behind IPVS,
//     and gvs's incremental updates (RFC 1624) keep a wrong checksum
//     exactly as wrong, so it is still dropped there;
//   - a TCP flag combination no stack sends (SYN+FIN, SYN+RST, FIN
//     without ACK, none at all: conntrack's tcp_valid_flags) is dropped
//     before the connection table (BadFlags): IPVS would take SYN+FIN as a
//     SYN and a flagless packet as a reason to close the connection;
//   - IP options are allowed and forwarded untouched, as IPVS does; the
//     real server's kernel applies its own policy to them.
//
// # Fragments
//
// frag.go: the first fragment of a TCP or UDP datagram is handled as any
// packet, and the datagram's later fragments, which have no ports, follow
// it to the same real server through a small bounded table keyed by
// (source, destination, protocol, IP ID). A later fragment seen before
// its first one is dropped (Fragment, "frag_no_first"); gvs does not
// reassemble.
//
// # Tap
//
// gvs --trace and --pcap watch the data path through a Tap (tap.go;
// package trace implements it). Unset, it costs one atomic load and one
// predictable branch per batch, and nothing with -tags notrace. Set, each
// batch runs the same handle per frame with copies around it: the frame
// as received, each frame as committed for transmission, and for traced
// frames the connection's state and the scheduler's reason read from the
// tables before and after.
//
// # Modes
//
// dr.go holds direct routing: only the Ethernet addresses change, the
// destination to the real server's MAC and the source to the egress
// interface's. Other modes (NAT, TUN) get their own files.
//
// # Limits (2026-11)
//
// IPv4 only; no VLAN tags (frames with a tag are left alone); a later IPv4
// fragment that arrives before its datagram's first fragment is dropped;
// IP options are allowed and left untouched.
package forward
