// Package pktgen is the bench tool's traffic generator: UDP/IPv4 frames of a
// fixed size over a fixed set of flows, written into a TPACKET_V2 transmit
// ring (internal/afpacket) by one OS thread pinned to one CPU, for a bounded
// time.
//
// # Frames
//
// Spec describes the traffic: Ethernet addresses, the source address (or
// Srcs consecutive ones), one or more destination addresses, the
// destination port, and Flows flows that differ by source address and UDP
// source port: flow i comes from Src+i%Srcs, port BasePort+i/Srcs, and
// goes to Dsts[i%len(Dsts)], so flows alternate between destinations.
// With one source address a flow is a source port (up to 55 K flows from
// port 10000); a million flows take 32 addresses of 32768 ports. Size is the
// frame's length on the wire including the 4-byte FCS, as RFC 2544 counts
// it: a 64-byte frame is 60 bytes in the ring (14 Ethernet + 20 IPv4 + 8 UDP
// + 18 payload), and the largest, 1518, carries a 1500-byte IP packet. The
// IPv4 header has DF set and a valid checksum; the UDP checksum is valid
// too (precomputed per flow), so a later path that checks or rewrites it
// sees honest frames. The payload starts with "gvsbench" and is zero after,
// or, written by WriteStamped, carries a timestamp after the marker.
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
// Generator.RunPaced sends one stamped frame per sendto at a fixed rate
// instead, for latency: each frame carries the time it was handed to the
// kernel. Receiver, on the receiving interface, reads the kernel's arrival
// time of each stamped frame from its receive ring's slot header and keeps
// the difference.
//
// The pinned thread is never unlocked: when Run returns it exits with its
// goroutine instead of going back to the Go scheduler with a CPU mask the
// rest of the program did not ask for.
package pktgen
