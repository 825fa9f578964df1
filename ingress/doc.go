// Package ingress keeps the director's own kernel away from the frames gvs
// handles, with an nftables table of gvs's own at the netdev ingress hook.
//
// # Why
//
// gvs reads frames from AF_PACKET sockets, beside the kernel's stack, not
// instead of it. Every frame gvs handles also travels up the kernel's
// normal path, and two things go wrong there:
//
//   - When the VIP is also an address of the director (classic LVS:
//     "ip addr add VIP/24 dev eth0 label eth0:8"), the kernel's TCP stack
//     sees the client's SYN to VIP:port, finds no listener and answers RST,
//     racing gvs's forwarded SYN and killing the connection. UDP gets ICMP
//     port unreachable.
//   - With net.ipv4.ip_forward=1 the kernel routes a second copy of frames
//     gvs already forwards (DR to a VIP that is not local, NAT replies).
//
// Open therefore creates a table (family netdev, default name "gvs") with
// one base chain per interface gvs serves, hooked at ingress, which drops
// exactly the frames gvs handles. The ingress hook runs in
// __netif_receive_skb_core after the packet taps: gvs's sockets listen with
// ETH_P_ALL and still receive every dropped frame (verified on Linux 6.18
// and by this package's tests), while IP, routing and sockets never see
// them.
//
// # What it matches
//
// Each chain holds two rules, in nft syntax:
//
//	meta protocol ip ip daddr . ip protocol . th dport @dst counter drop
//	meta protocol ip ip saddr . ip protocol . th sport @src counter drop
//
// dst and src are named hash sets keyed by the concatenation
// ipv4_addr . inet_proto . inet_service. A Rule with Source=false (client
// to VIP:port, every mode) goes into dst; Source=true (a real server's
// RIP:port replies that NAT mode rewrites) into src. Set rewrites both sets
// in one transaction (flush, then add), so a change never rewrites chains
// and no frame sees a half-updated rule set. Everything else, including
// ARP, other addresses and ports, ICMP and IPv6, passes (policy accept).
//
// Limits (2025):
//
//   - IPv4 only; Set rejects other address families, naming the rule.
//   - TCP and UDP only, one port per rule; port 0 ("all ports", IPVS
//     persistent port-0 services) is refused.
//   - Non-first IPv4 fragments carry no transport header, so "th dport"
//     cannot match them and they pass: the kernel queues them for
//     reassembly, which never completes because the first fragment was
//     dropped; they expire after net.ipv4.ipfrag_time without an ICMP
//     error (Linux sends one only when it holds the first fragment).
//     Frames whose IPv4 header the kernel finds invalid pass too.
//   - "meta protocol ip" is the frame's ethertype after VLAN acceleration
//     has taken the tag off; frames still carrying an 802.1Q tag at the
//     hook do not match.
//   - Counters count socket buffers at the hook, after GRO, so one count
//     may stand for several wire segments.
//
// # Priority
//
// The chains use priority Priority (-500). Netdev ingress has no standard
// priorities; running below 0 puts gvs's drop ahead of an administrator's
// own netdev chains at the default 0. Priority does not change what gvs
// receives.
//
// # Lifetime
//
// Open first deletes any netdev table of the same name, left behind by a
// run that crashed, and builds the new one in the same transaction. Close
// deletes the table, after which the kernel sees everything again. A table
// left by a killed gvs keeps dropping its frames until the next Open or an
// "nft delete table netdev gvs"; that is deliberate, since the kernel
// answering RST to a restarting director's clients is worse.
//
// # Without nf_tables
//
// When the kernel lacks nfnetlink, nf_tables, the netdev family
// (CONFIG_NF_TABLES_NETDEV), the ingress hook (CONFIG_NETFILTER_INGRESS) or
// one of the expressions used, Open fails with an error matching
// ErrNotSupported and changes nothing. gvs can still run then, but the
// director's kernel will answer for VIPs it owns: run it without the VIP
// on an interface (put the VIP on a dummy device with arp_ignore, or not
// at all, since gvs answers ARP itself) and with ip_forward=0.
//
// Everything the Filter does happens in the network namespace of the
// thread that called Open. On systems other than Linux, Open always
// returns ErrNotSupported.
package ingress
