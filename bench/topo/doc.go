// Package topo builds the bench tool's network: five network namespaces
// wired with veth pairs and one Linux bridge, with addresses from
// 198.18.0.0/15 (RFC 2544's benchmarking range), so that no frame of a
// benchmark can leave the machine or meet a real network.
//
//	            198.18.0.0/24                        198.18.1.0/24
//	  gen eth0 -------------- eth0 dir eth1 ---- [br0 in sw] ---- eth0 sink1
//	  .0.1                  .0.2       .1.1            |          .1.11
//	                                                    +--------- eth0 sink2
//	                                                               .1.12
//
//	VIP 198.18.3.1: the virtual service of the load balancers, held by nobody
//
// The generator's namespace (gen) sends; the director's namespace (dir)
// forwards, with whichever forwarder a benchmark point sets up (the kernel,
// nftables, gvs); the sinks receive. The sinks are on a bridge in their own
// namespace (sw), the same L2 segment as the director's eth1, because gvs's
// direct routing needs its real servers on-link.
//
// The sinks count and swallow: an nftables netdev ingress rule on each
// sink's eth0 drops every IPv4 frame (ARP passes, so the sinks answer ARP),
// after the interface counted it (rx_packets) and before the IP layer sees
// it. What a sink's eth0 counts as received is therefore what the forwarder
// delivered, and receiving costs the sink, whose work runs on the
// forwarder's CPU on veth, next to nothing. (Without nf_tables the sinks'
// IP stack drops the frames instead, at a higher cost: SinkDropStack.)
//
// Nothing floods or resolves during a measurement: every namespace has
// IPv6 off (no neighbour discovery, no router solicitations), the bridge
// has static forwarding entries for every MAC behind it and its netfilter
// hooks off (net.bridge.bridge-nf-call-*=0), the director and the
// generator have permanent neighbour entries, and reverse-path filtering
// is off everywhere. RPS is off on every interface (rps_cpus=0) so the
// receive work stays on the CPU that sent the frame. Offloads keep the
// kernel's defaults.
//
// The sinks' side (the director's eth1, the bridge, the sinks) has MTU
// SinkMTU (1600): LVS-TUN's outer header fits behind a full 1500-byte
// packet there, as on a real TUN deployment's server network. The
// generator's side keeps 1500.
//
// Config.TCP builds the variant for TCP with real clients and servers: no
// ingress drop; the generator and the sinks route through the director,
// which forwards (the "direct" baseline, and the return path of direct
// routing and tunnelling, as a router would be); the sinks hold the VIP on
// lo with arp_ignore/arp_announce (LVS-DR's real-server set-up). See tcp.go.
//
// Offloads reads each interface's offload settings (SIOCETHTOOL), so that
// a report can say what they were.
//
// Names are unique per process (a prefix with the pid); Close deletes every
// namespace New created, and with them every interface.
package topo
