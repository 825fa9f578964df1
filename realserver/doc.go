// Package realserver prepares a host to be an LVS real server, for direct
// routing and for tunnelling, and on hosts without the ipip module it
// decapsulates the director's IPIP tunnel in user space.
//
// # Direct routing (and the part of tunnelling that is the same)
//
// Setup does what the seed notes do by hand on node02 and node03:
//
//	echo 1 > /proc/sys/net/ipv4/conf/eth0/arp_ignore
//	echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore
//	echo 2 > /proc/sys/net/ipv4/conf/eth0/arp_announce
//	echo 2 > /proc/sys/net/ipv4/conf/all/arp_announce
//	ifconfig lo:3 192.168.150.100 netmask 255.255.255.255
//
// The VIP on the loopback makes the real server's kernel accept packets
// for the VIP that the director forwards to it, and answer from the VIP.
// arp_ignore=1 keeps it from answering ARP requests for the VIP (only the
// director may: otherwise clients would bypass it), since the VIP is not on
// the interface the request arrives on; arp_announce=2 keeps it from using
// the VIP as the sender address of its own ARP requests, which would teach
// the LAN's switches and hosts the wrong MAC for the VIP.
//
// Setup records the sysctl values it replaces in a state file under
// StateDir (/run/gvs), so that Undo can put them back.
//
// # Tunnelling without the ipip module
//
// In LVS-TUN the director wraps the client's packet (CLIENT -> VIP) in an
// outer IPv4 header (director -> real server, protocol 4, RFC 2003). A
// kernel with the ipip module unwraps it on tunl0. A kernel without it
// (many minimal hosts, and the one gvs is developed on) has no handler for
// protocol 4 and answers ICMP protocol-unreachable instead.
//
// Tunnel does the unwrapping in user space. A raw IPPROTO_IPIP socket
// receives every IPIP datagram delivered to the host, already reassembled
// (the director's kernel may have fragmented the outer packet), and while
// such a socket is open the kernel sends no protocol-unreachable
// (ip_protocol_deliver_rcu sends it only when no raw socket took the
// packet). For each datagram Tunnel checks the outer header (IPv4,
// protocol 4, whole; optionally from a known director), then the inner one
// (IPv4, lengths, header checksum) and that the inner destination is one
// of the VIPs: anything else, such as a spoofed packet aimed at the real
// server's own address through the tunnel, is dropped and counted by
// reason (DropReason). The inner packet is written to a TUN device
// (IFF_TUN|IFF_NO_PI, "gvstun0"), from which the kernel receives it as if
// it had arrived on an interface: it is local (the VIP is on lo), so the
// server's sockets get it, and they answer the client from the VIP through
// the ordinary route, not through any tunnel. ECN is decapsulated as RFC
// 6040 says (outer CE is copied inward; CE over a not-ECN-capable packet
// is dropped).
//
// The kernel needs rp_filter off for packets from the TUN device: their
// source is a client whose route goes out another interface. NewTunnel
// sets it to 0 on the device and on conf/all, first raising every other
// interface (and conf/default) to conf/all's old value so that their
// filtering, which the kernel takes as the larger of the two, does not
// change. accept_local is not needed. The device has no address and IPv6
// off, so it sends nothing. Close (and UndoTunnel after a kill) restores
// every value; the device goes with the process's file descriptor.
//
// Serve (`gvs realserver --tun`) puts it together: Setup for each VIP,
// NewTunnel, Run until stopped, counters logged at most every 10 s, then
// everything undone.
//
// Limits and assumptions (as of 2026): IPv4 only (no IPv6-in-IPv6 or 4in6). The
// inner transport checksum must be complete, because a packet written to a
// TUN device without a virtio-net header is CHECKSUM_NONE and the kernel
// verifies it: a director that captured the client's packet with checksum
// offload pending (TP_STATUS_CSUMNOTREADY) must finish the checksum
// before encapsulating. No GSO: each inner packet
// is one write (IFF_VNET_HDR could carry GSO packets later). One
// goroutine decapsulates; a real server's own stack, not this loop, is
// expected to be the bottleneck.
//
// # With the ipip module
//
// Where the kernel has ipip (`modprobe ipip` works, or tunl0 exists), use
// it instead; it costs no copies through user space:
//
//	modprobe ipip
//	ip link set tunl0 up
//	ip addr add VIP/32 dev lo                     # or: dev tunl0
//	echo 0 > /proc/sys/net/ipv4/conf/tunl0/rp_filter
//	echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter
//	gvs realserver --vip VIP                      # arp_ignore/arp_announce
//
// Do not run both: with tunl0 up, every packet would be delivered twice,
// so NewTunnel refuses to start then (ErrKernelTunnel).
package realserver
