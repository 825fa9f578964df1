// Package trace shows what gvs does to frames: a readable trace of the
// fields each forwarding method changed and the decisions behind them
// (gvs --trace, gvsadm --trace on|off), and a pcapng capture of every
// frame gvs receives and sends (gvs --pcap FILE), so that a learner can
// open the frame before and after the rewrite side by side in Wireshark
// or tcpdump.
//
// A Tap implements forward.Tap. The data path calls it only while it is
// set on the engine (while tracing or capturing), and then only copies:
// the trace's records and the capture's frames go to a goroutine each,
// through bounded queues, so that writing never holds up forwarding. A
// full queue drops what does not fit, and the drops are counted.
//
// # Trace
//
// For each traced packet (rate-limited: Config.Rate packets a second,
// default 10; the others are counted and summarised once a second as
// "trace: N packets not traced ...") the trace prints one block:
//
//	trace 10:42:07.123456 eth0 #3: TCP 192.168.150.10:40312 > 192.168.150.100:80 [SYN] -> forwarded, DR to 192.168.150.13
//	  conn   new entry: NONE -> SYN_RECV
//	  sched  rr: 192.168.150.13, the next available after 192.168.150.12, the last pick
//	  hop    192.168.150.13 on eth0 is 02:42:c0:a8:96:0d, learned from an ARP reply 1.2s ago
//	  out    eth0, fields changed:
//	           eth.dst   02:42:c0:a8:96:01 -> 02:42:c0:a8:96:0d
//	           eth.src   02:42:c0:a8:96:0a -> 02:42:c0:a8:96:01
//	           ip.ttl    64 -> 63
//	           ip.sum    0x4b6c -> 0x4c6c
//
// The header names the frame as it arrived and the verdict. conn is the
// connection entry: new or found (for a NAT or FULLNAT reply, found by
// its reply key) and its state before and after the packet, with IPVS's
// state names. sched, for a packet that starts a connection, is the
// scheduler's reason (see sched.Explain) or the persistence template that
// decided. hop is where the frame went next: the next hop towards the
// real server and how its MAC was learnt (ARP reply or the neighbour's
// own request, and how long ago), or for a reply the MAC and interface
// the client's frames come from. out lists, for each frame sent, exactly
// the header fields that differ from the frame received, decoded with
// gopacket: Ethernet addresses, IP addresses, TTL, length, ID and header
// checksum, ports, and the TCP/UDP checksum (marked "partial" when the
// frame leaves it to offload: the field then holds only the pseudo-header
// sum, which the kernel completes on transmit); for TUN the outer IPIP
// header, which is all new, then the inner packet's changes.
//
// The decision is read from the connection table and the scheduler just
// before and just after the frame is handled (forward.Decision): another
// worker may act on the same connection in between, and the trace then
// says what it saw.
//
// Tracing is switched on at start (Config.On, gvs --trace) or at run
// time (SetTrace, gvsadm --trace on|off [-t|-u service]), for every
// service or for the services named.
//
// # Capture
//
// The capture is a pcapng file (gopacket's pcapgo.NgWriter) with two
// interfaces per gvs interface, NAME-in (frames received, direction
// inbound) and NAME-out (frames sent, outbound). Every received frame is
// written (or only those of virtual services: Config.PcapServicesOnly; or
// one in Config.PcapSample), followed by the frames gvs sent because of
// it. Each packet carries a comment that pairs them,
//
//	gvs #17 in eth0: forwarded; csum partial (start 34, offset 16)
//	gvs #17 out eth1; csum partial (start 34, offset 16)
//
// naming the verdict of a received frame and the virtio-net header's
// offload state of both: a frame received or sent with a checksum left to
// offload (CHECKSUM_PARTIAL, TP_STATUS_CSUMNOTREADY) is written as it is,
// with the pseudo-header sum in its TCP/UDP checksum field, which
// Wireshark flags as wrong; the comment says why. Likewise "gso tcpv4 size
// 1448" marks a super-frame the kernel segments on transmit. Frames are
// written whole (snap length 262144). ARP frames gvs's resolver sends on
// its own socket are not in the file (those it receives are).
//
// The file is bounded (Config.PcapMaxBytes, gvs --pcap-max-bytes, default
// 64 MiB): when the next packet would pass the bound, the capture stops
// there, the file is closed complete and readable, and gvs logs it; later
// frames are counted as not written. It does not rotate: the frames a
// learner wants are the first ones.
package trace
