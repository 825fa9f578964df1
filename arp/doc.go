// Package arp is gvs's own IPv4 neighbour resolution and VIP announcement
// over Ethernet (RFC 826), independent of the director kernel's neighbour
// table.
//
// # Why gvs does its own ARP
//
// In DR mode gvs forwards a frame to a real server by rewriting the
// destination MAC address and sending the frame out of a raw AF_PACKET
// socket. The kernel's routing and neighbour code never sees those frames,
// so nothing would make the kernel resolve (or keep resolved) the real
// servers' addresses. A Resolver therefore sends its own ARP requests and
// keeps one Neighbor per (interface, address) the data path asked for.
//
// gvs also serves virtual IPs (VIPs) that the director's kernel does not
// hold (there is no ip_vs module and the VIP need not be configured on any
// interface). Clients and routers on the link must still resolve such a
// VIP to the director, so the Resolver answers ARP requests for the owned
// addresses (SetOwned) and announces them with gratuitous ARP when they
// appear. A VIP that the kernel holds itself is left to the kernel, so that
// exactly one reply answers each request.
//
// # Data path contract
//
// The data path keeps a *Neighbor and calls Neighbor.MAC once per packet:
// one atomic load, no locks, no allocation. While the neighbour is
// unresolved or failed MAC returns ok=false and the caller drops the frame
// and calls Neighbor.Drop, which bumps an atomic counter. Everything else
// (timers, sockets, logging, the tables behind one mutex) is control plane:
// ARP is low-rate, so it allocates freely.
//
// # Neighbour life cycle
//
//	            reply                        StaleAfter unanswered
//	Incomplete -------> Reachable ----------------------------------+
//	    |                 ^   | every Refresh: one broadcast request |
//	    | MaxProbes       |   | (then re-sent every Retry until a    |
//	    | unanswered      |   |  reply arrives)                      |
//	    v                 |   v                                      |
//	  Failed <------------+---+--------------------------------------+
//	    probes go on with exponential backoff from 2*Retry up to
//	    MaxRetry (10 s); any later reply makes it Reachable again.
//
// A new Neighbor sends its first request at once and re-sends every Retry.
// After MaxProbes unanswered requests it becomes Failed (logged once with
// Errorf, counted in Stats.Failures). A Reachable neighbour is re-requested
// every Refresh (default 30 s, well under the 300 s that a Linux bridge and
// most switches keep a learnt MAC, so the switch never forgets the real
// server and floods gvs's frames); if that refresh is not answered within
// Retry it is re-sent every Retry, and StaleAfter unanswered refresh
// requests in a row make it Failed. So with the defaults a vanished real
// server is Failed about Refresh + 3 s after its last reply. The return to
// Reachable is logged once with Logf; a changed MAC is logged with Logf.
//
// Neighbours are shared and reference counted: Resolver.Neighbor returns the
// existing one for the same interface and address, and the last
// Resolver.Release stops its timers.
//
// # What is learnt from the wire (cache-poisoning defence)
//
// The Resolver only learns mappings it asked for: the sender fields of an
// ARP reply or request update a neighbour only when a Neighbor exists for
// that sender IP on the interface the frame arrived on, the frame was
// addressed to the interface MAC or to broadcast, and the sender MAC is a
// unicast, non-zero address that is not one of gvs's own. Nothing is ever
// learnt about an owned address (a VIP); a frame from another host
// claiming an owned address is counted in Stats.Conflicts and logged
// (rate limited).
//
// A Reachable neighbour claimed at another MAC (a spoofed reply, or a
// gratuitous ARP from another host) is not switched at once, as Linux
// switches after its 1 s locktime: in the spirit of RFC 5227's address
// defence, the current MAC is asked with a unicast request, and frames go
// on to it meanwhile. If it answers within Retry, the claim is refused
// (Stats.Refuted, logged: a spoofer, or two hosts with one address); if
// not, the claimed MAC is taken (a real server's new NIC, or its address
// moved). Every such check is counted in Stats.Disputes; claims for Retry
// after a refusal are ignored, so a flood of them costs one request per
// Retry. An Incomplete or Failed neighbour has nothing to defend and takes
// the first valid answer, as Linux does. Frames that are not
// Ethernet/IPv4 ARP (wrong hardware or protocol type or length, truncated)
// are counted in Stats.Malformed; valid frames that need nothing from gvs
// are counted in Stats.Ignored.
//
// # Answering and announcing owned addresses
//
// A request whose target IP is owned, and not held by the director's kernel
// (any interface of the namespace, checked through netlink and cached for
// about one second), is answered with a reply from the interface MAC,
// unicast to the requester's MAC. Nothing else is answered. When an address
// becomes owned (SetOwned), or an owned address stops being held by the
// kernel, the Resolver sends gratuitous ARP on every interface: an ARP
// request with sender IP = target IP = the VIP, and an ARP reply with
// sender and target IP = the VIP and target MAC = sender MAC (the form
// Linux's arp_is_garp accepts), both to broadcast, and the pair again
// 100 ms later in case the first was lost. Linux updates an existing
// neighbour entry from either of them without arp_accept (the gratuitous
// ARP overrides the entry's locktime); arp_accept only matters for
// creating entries.
//
// # Sockets
//
// On Linux, New opens one SOCK_RAW AF_PACKET socket bound to ETH_P_ARP per
// interface (github.com/mdlayher/packet) and sets PACKET_IGNORE_OUTGOING so
// that the kernel's own outgoing ARP (and gvs's) is not read back; frames
// whose Ethernet source is one of gvs's interface MACs are dropped as well,
// for kernels older than 4.20. The socket layer sits behind a small
// interface (frameConn) so the state machine is tested without root over
// an in-memory fake and an injected clock.
//
// # Limits
//
// IPv4 over Ethernet only (no IPv6 neighbour discovery yet, no VLAN tags
// inside the frame: use the VLAN interface). The interface MAC and the
// interface list are read once, at New. Addresses of the namespace are
// re-read at most once a second, so for up to a second after the kernel
// adds an owned VIP both the kernel and gvs may answer (with the same MAC
// when it is on the same interface).
package arp
