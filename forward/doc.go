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
// # Verdicts
//
// Every frame gets a verdict, counted per worker by reason: forwarded,
// not for gvs (left alone: gvs never forwards a frame it does not own),
// or dropped for a named reason (no real server available, MAC of the
// real server not resolved, connection table full, transmit ring full,
// truncated or malformed frame, a non-SYN TCP packet with no connection).
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
// IPv4 only; no VLAN tags (frames with a tag are left alone); IPv4
// fragments are left alone (the kernel's filter passes them on); IP options
// are allowed and left untouched.
package forward
