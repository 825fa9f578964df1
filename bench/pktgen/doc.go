// Package pktgen is the bench tool's traffic generator: UDP/IPv4 frames of a
// fixed size over a fixed set of flows, written into a TPACKET_V2 transmit
// ring (internal/afpacket) by one OS thread pinned to one CPU, for a bounded
// time.
//
// # Frames
//
// Spec describes the traffic: Ethernet addresses, the source address, one or
// more destination addresses, the destination port, and Flows flows that
// differ by UDP source port (BasePort, BasePort+1, ...). Flow i goes to
// Dsts[i%len(Dsts)], so flows alternate between destinations. Size is the
// frame's length on the wire including the 4-byte FCS, as RFC 2544 counts
// it: a 64-byte frame is 60 bytes in the ring (14 Ethernet + 20 IPv4 + 8 UDP
// + 18 payload), and the largest, 1518, carries a 1500-byte IP packet. The
// IPv4 header has DF set and a valid checksum; the UDP checksum is valid
// too (precomputed per flow), so a later path that checks or rewrites it
// sees honest frames. The payload starts with "gvsbench" and is zero after.
//
// Frames.Write copies the destination's template into a ring slot and
// patches the source port and UDP checksum: two small stores after one
// copy, no allocation (tested with testing.AllocsPerRun).
//
// # Sending
//
// Generator.Run locks its goroutine to an OS thread, pins that thread with
// sched_setaffinity to Config.CPU, and loops: up to Batch frames into the
// ring, one Flush (one sendto), a clock read, until the duration is over
// or the context is done. There is no rate limit: the generator offers as
// much as the ring and the kernel accept, so a point measures the
// forwarder at saturation. On veth the kernel's receive work for each frame
// (and, for the kernel's own forwarding, the whole forwarding path) runs in
// softirq on the sending CPU, at the end of that sendto.
//
// The pinned thread is never unlocked: when Run returns it exits with its
// goroutine instead of going back to the Go scheduler with a CPU mask the
// rest of the program did not ask for.
package pktgen
