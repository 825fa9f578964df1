// Package afpacket is the frame I/O of gvs's data path: memory-mapped
// AF_PACKET rings (TPACKET_V2; TPACKET_V3 as an option for receive) for
// receive (RX) and transmit (TX), with
// PACKET_VNET_HDR, so that GSO/GRO super-frames of up to 64 KiB and frames
// whose checksum is left to offload cross user space whole, and go back out
// whole for the kernel (or the NIC) to segment and checksum.
//
// # Why rings, why TPACKET_V2 (and when V3), why the vnet header
//
// On this project's test machine (2025), reading and writing frames through
// mdlayher/packet's ReadFrom/WriteTo moved 59 Kpps, recvmmsg/sendmmsg 341
// Kpps, and TPACKET rings 655 Kpps: a ring costs no system call per frame on
// receive (the kernel writes frames into shared memory and the reader polls
// a status word) and one per batch on transmit.
//
// TPACKET_V2 has one fixed-size slot per frame, each with its own status
// word: a frame is the reader's the moment the kernel has written it, and a
// batch is handed back slot by slot, in order, the moment it has been
// forwarded. But every frame takes a whole slot, and a slot must hold a
// 64 KiB super-frame, so the default ring of 18 MiB holds 270 frames of any
// size. TPACKET_V3 (RXConfig.Version = V3) packs frames back to back into
// blocks, each frame taking its own length plus about 100 bytes, and hands
// a block over only when the next frame does not fit or its retire timeout
// (tp_retire_blk_tov: whole milliseconds, at least 1 ms; 0 lets the kernel
// derive one from the link speed, which for veth is 1 ms too) expires; the
// block goes back whole once its last frame is released. On this kernel the
// retire timer runs periodically (every timeout, not restarted when a block
// opens), so a lone frame waits between 0 and one timeout. V3's TX ring has
// V2's fixed slots, so TX is always V2. V1 has no VLAN fields.
//
// Veth and most NICs hand the stack TCP super-frames (GRO, or TSO from a
// local sender) with the checksum not yet computed (CHECKSUM_PARTIAL). A
// plain packet socket sees those super-frames but not the metadata needed to
// send them on; with PACKET_VNET_HDR every frame carries a virtio_net_hdr
// (VNetHdr) saying how to segment it and where its checksum goes, and the
// same header given back on transmit makes the kernel finish the job. A
// forwarder that rewrites MACs (gvs's DR mode) copies the header unchanged.
//
// Measured (BenchmarkRingCompare, below): V2 stays the default, because at
// moderate rates V3 adds half to one retire timeout to the median frame
// (0.6 to 0.9 ms with the smallest timeout, 1 ms), and the data path's
// target is a p99 under 100 µs over the kernel's own forwarding.
// V3 is the better choice where ring drops cost more than a millisecond of
// latency: bursty traffic, a forwarder that shares its CPU (a stalled
// consumer starts losing frames after 270 with V2, after about BlockCount ×
// RetireTimeout of traffic with V3), or saving CPU at moderate rates. Both
// deliver 64 KiB super-frames whole, and both accept PACKET_VNET_HDR.
//
// The figures, in a minimal DR-style forwarder (RX ring, copy into a V2 TX
// ring, MAC rewrite, one sendto per batch of 64, Release), gen -> F -> sink
// over veth in namespaces, generator pinned to CPU 0 and forwarder to CPU 1,
// medians of 5 repeats with the variants interleaved. The machine (2 vCPU
// VM, Linux 6.18, HZ=250) was shared with other test runs: load average 3
// to 11 during the run, which makes rates and tail latencies noisy; the
// burst figures are exact and repeat. V2 is the default ring (270 slots of
// 64 KiB + 256 B), V3 the V3 defaults (72 blocks of 256 KiB, 1 ms); both
// 18 MiB.
//
//	                                           V2 default   V3 tov 1 ms  V3 tov 8 ms
//	a lone frame, sendto to Receive, p50/p90     0.27/0.41    0.84/0.93    4.8/6.9 ms
//	latency at 20 Kpps, p50                      0.10         0.71         6.0 ms
//	latency at 50 Kpps, p50                      0.12         0.99         6.7 ms
//	latency p99 (20 and 50 Kpps)                 tens of ms in both: the other load
//	forwarder CPU per frame, 20 Kpps             8.9          5.0          4.8 µs
//	forwarder CPU per frame, 50 Kpps             5.3          2.7          3.0 µs
//	saturation, 64 B: ring drops of offered      5.6 %        0.0 %
//	saturation, 64 B: forwarder CPU per frame    1.62         1.44         µs
//	burst at 250 Kpps into a stalled ring, held:
//	  64-byte frames                             270          17,800       72,000
//	  1518-byte frames                           270          9,000        11,100
//	TCP, 1 GiB at default offloads               2.8          3.2 Gbit/s (1.31x in the same repeat)
//
// At equal memory the burst figures grow with the number of blocks, not
// their size: 18 blocks of 1 MiB held 4,400 frames of either size at 1 ms,
// and 8 MiB rings held 4,096 (V2, 2 KiB slots, which truncate super-frames)
// against 8,200 small or 4,000 large frames (V3, 32 blocks of 256 KiB). A
// block is retired when full or at the next timer tick, whichever comes
// first, so a stalled ring holds about BlockCount × rate × RetireTimeout
// frames (half that when blocks fill before the tick), and never more than
// its memory. At saturation the delivered rate was set by the generator,
// which shared CPU 0 with the other load (15 to 420 Kpps offered): V3
// delivered 0.86x to 1.25x of V2 in two runs, within the noise; the
// forwarder's CPU per frame (CLOCK_THREAD_CPUTIME_ID, including the kernel
// work in its sendto) is the steadier figure. Through TCP both rings carried
// every super-frame whole (largest 65,226 bytes, none truncated, 16,500 per
// GiB), and the throughput ratio swung between 0.76x and 1.43x over three
// runs: with 64 KiB frames the ring is not the bottleneck.
//
// To measure again (as root, about 5 minutes; flags -ringcompare.repeats
// and -ringcompare.dur):
//
//	go test ./internal/afpacket -run '^$' -bench RingCompare -benchtime 1x -v
//
// # The data path loop
//
//	frames := make([]afpacket.Frame, 64)
//	for {
//		n, err := rx.Receive(frames) // waits for ≥ 1 frame, returns ≤ 64
//		if errors.Is(err, net.ErrClosed) {
//			return
//		}
//		for i := range n {
//			f := &frames[i]
//			if f.Len > len(f.Data) { // truncated by the slot: drop, count
//				continue
//			}
//			vnet, buf, ok := tx.Slot()
//			if !ok { // TX ring full: drop, count
//				continue
//			}
//			m := copy(buf, f.Data) // then rewrite headers in buf
//			*vnet = f.VNet
//			tx.Commit(m)
//		}
//		tx.Flush() // one sendto for the batch
//		rx.Release() // the batch's RX slots go back to the kernel
//	}
//
// Receive, Release, Slot, Commit and Flush do not allocate (the tests prove
// it with testing.AllocsPerRun). Receive waits through the Go netpoller with
// a callback made once: no busy loop and no thread parked in the kernel; or,
// with RXConfig.ThreadWait (what gvs's workers use), in poll(2) on the
// consumer's own thread, which the kernel wakes directly: for a consumer
// locked to its thread, the netpoller's wait is two epoll_ctl calls, a
// wake-up of the poller's thread and a hand-off to the locked thread
// through a futex, a quarter of a gvs worker's time under TCP load
// (`go tool pprof` of `gvs bench --profile`). The thread keeps its P while
// it waits, so the consumers that wait this way each need a P of their own.
// No ring's socket is in the netpoller itself: through it, every frame the
// kernel frees from a transmit ring, and every frame it puts in a receive
// ring, would wake the process's idle thread, on someone's CPU, for nothing
// (unpolled says what that cost). Flush and SendDirect call sendto and
// sendmsg on the descriptor directly, a full ring's wait looks at the slot,
// and Receive parks on an epoll instance of its own that holds the socket
// only while it waits.
//
// # Ring layout
//
// A ring is BlockCount blocks of BlockSize bytes; a block is a power of two
// pages, physically contiguous (the kernel allocates it with
// __get_free_pages, falling back to vmalloc), and holds
// BlockSize/FrameSize slots. Slots never cross blocks; the rest of a block
// is unused. The mapping shows the blocks back to back:
//
//	block 0                                  block 1
//	+--------+--------+-...-+--------+------+--------+--------+-...
//	| slot 0 | slot 1 |     | slot k | free | slot k+1 ...
//	+--------+--------+-...-+--------+------+--------+--------+-...
//
// An RX slot, as tpacket_rcv fills it for a SOCK_RAW socket with
// PACKET_VNET_HDR. The kernel puts the network header at
// tp_net = TPACKET_ALIGN(52 + max(maclen, 16)) + 10, which for Ethernet is
// 90, and the MAC header maclen bytes before it at tp_mac = 76; the vnet
// header lies just before tp_mac:
//
//	0           32           52        66         76 = tp_mac           FrameSize
//	+-----------+------------+---------+----------+---------------------+-------+
//	| tpacket2_ | sockaddr_ll| (zero)  | virtio_  | Ethernet frame      |       |
//	| hdr       | pkttype @42|         | net_hdr  | tp_snaplen bytes    |       |
//	+-----------+------------+---------+----------+---------------------+-------+
//	 tp_status @0  tp_len @4  tp_snaplen @8  tp_mac @12  tp_net @14
//	 tp_vlan_tci @24  tp_vlan_tpid @26
//
// A frame longer than FrameSize - tp_mac is cut: tp_snaplen < tp_len, and
// Frame.Len > len(Frame.Data). If the interface stripped an 802.1Q tag (the
// kernel does so before packet sockets see a frame), tp_status has
// TP_STATUS_VLAN_VALID and the tag is in tp_vlan_tci.
//
// A TPACKET_V3 RX ring has no slots. The kernel fills one block at a time,
// frame after frame, each frame starting at an 8-byte boundary: a struct
// tpacket3_hdr, the struct sockaddr_ll, the vnet header just before tp_mac
// (92 for Ethernet: TPACKET_ALIGN(68 + 16) + 10 - 14) and the frame. A
// frame takes ALIGN(tp_mac + tp_snaplen, 8) bytes: 152 for a 60-byte frame.
//
//	0            48
//	+------------+-----------+-----------+-...-+-----------+------+
//	| block desc | frame 0   | frame 1   |     | frame n-1 | free |
//	+------------+-----------+-----------+-...-+-----------+------+
//	 block_status @8  num_pkts @12  offset_to_first_pkt @16
//
//	frame: tp_next_offset @0  tp_snaplen @12  tp_len @16  tp_status @20
//	       tp_mac @24  tp_vlan_tci @32  tp_vlan_tpid @36  sll_pkttype @58
//
// A frame longer than the block can hold (BlockSize - 48 - tp_mac) is cut
// at the block's end, and reported as on V2.
//
// A TX slot, as tpacket_snd reads it (PACKET_TX_HAS_OFF off): the data
// starts at tp_hdrlen - sizeof(sockaddr_ll) = 52 - 20 = 32, with the
// virtio_net_hdr first, and tp_len counts both:
//
//	0           32         42                     42 + n           FrameSize
//	+-----------+----------+----------------------+----------------+
//	| tpacket2_ | virtio_  | Ethernet frame       |                |
//	| hdr       | net_hdr  | n bytes              |                |
//	+-----------+----------+----------------------+----------------+
//	 tp_status @0  tp_len @4 = 10 + n
//
// The kernel copies the first max(hdr_len, 14) bytes of the frame into the
// sk_buff and points the sk_buff at the slot's pages for the rest (no
// copy); the slot is free again when the frame has left. For frames of up
// to 2 KiB that are not super-frames, Commit sets hdr_len to the frame's
// length, so that they are copied whole: cheaper than page fragments for a
// small frame, and what the kernel's own non-ring send path does.
//
// # Status words
//
// The status word is the only synchronisation between the kernel and user
// space. The kernel writes a slot, issues a memory barrier, then sets the
// status; this package loads and stores status words atomically (acquire
// and release order), reads a slot only after seeing its status, and
// publishes a slot only after writing it:
//
//	RX: TP_STATUS_KERNEL (0) --kernel fills--> TP_STATUS_USER | bits --Release--> 0
//	RX V3, per block: TP_STATUS_KERNEL (0) --kernel fills, until full or
//	    the retire timer--> TP_STATUS_USER [| TP_STATUS_BLK_TMO]
//	    --Release of its last frame--> 0
//	TX: TP_STATUS_AVAILABLE (0) --Commit--> TP_STATUS_SEND_REQUEST --sendto-->
//	    TP_STATUS_SENDING --frame freed--> TP_STATUS_AVAILABLE
//
// Both sides walk their ring in order, so user space keeps its own head
// index in step with the kernel's. A V3 block's frame count is final once
// its status says TP_STATUS_USER; while user space still holds the block the
// kernel wants next, the kernel drops frames ("freezes" the ring) until it
// gets the block back.
//
// # Opening a ring
//
// Sockets are opened and bound with mdlayher/packet (packet.Listen), with
// protocol 0 so they receive nothing, and configured through its
// SyscallConn. The order matters: PACKET_VNET_HDR, PACKET_VERSION,
// PACKET_LOSS and PACKET_RESERVE fail with EBUSY once a ring exists.
//
//	RX: PACKET_VNET_HDR=1, PACKET_VERSION=TPACKET_V2 (or V3), PACKET_IGNORE_OUTGOING=1,
//	    PACKET_RX_RING (struct tpacket_req, or tpacket_req3 with the retire
//	    timeout for V3), mmap, bind(ETH_P_ALL, ifindex), [PACKET_FANOUT]
//	TX: PACKET_VNET_HDR=1, PACKET_VERSION=TPACKET_V2, PACKET_LOSS=1,
//	    [PACKET_QDISC_BYPASS=1], SO_SNDBUFFORCE, PACKET_TX_RING, mmap
//
// The RX socket is bound to ETH_P_ALL only once its ring is mapped, so no
// frame is ever queued on the socket the old way (the kernel would purge
// such frames when the ring is created, but here there are none). The TX
// socket stays bound with protocol 0 and receives nothing. PACKET_LOSS makes
// the kernel skip a malformed TX frame (marking its slot free) instead of
// stopping the ring at it with TP_STATUS_WRONG_FORMAT.
//
// # Transmit errors
//
// When the egress path refuses a frame (a qdisc that is full or drops it,
// a tc or netfilter egress rule, memory), tpacket_snd stops with ENOBUFS and
// marks the frame to be sent again, so a frame that is always refused would
// hold back the whole ring. Flush drops such a frame instead (it sets the
// slot's tp_len below the vnet header's size, which PACKET_LOSS makes the
// kernel skip) and sends the rest; TX.Drops counts them. Frames the kernel
// did not take because the link is down or the send buffer is full stay
// queued for the next Flush.
//
// # Memory
//
// Ring memory is allocated by the kernel when the ring is created and is
// never swapped out. A ring uses BlockSize × BlockCount bytes (Layout.Size). With the
// defaults (DefaultFrameSize = 64 KiB + 256 B, so that a 64 KiB super-frame
// fits a slot; DefaultFrameCount = 256) a block is 1 MiB holding 15 slots,
// and a ring is 18 blocks: 270 slots, 18 MiB. A forwarder with an RX and a
// TX ring on each of two interfaces uses 72 MiB. Where no super-frames are
// expected, FrameSize 2048 packs 2 slots per 4 KiB page: 4096 slots in 8 MiB.
// A V3 ring with the defaults (DefaultBlockSize = 256 KiB, DefaultBlockCount
// = 72) uses the same 18 MiB and holds about 124,000 64-byte frames or 216
// to 288 super-frames, if the retire timer lets it (see above).
//
// # Limits (Linux 6.x, 2025)
//
//   - A super-frame whose GSO type a virtio_net_hdr cannot describe (tunnel
//     GSO such as IPIP or VXLAN, SCTP, fraglist) is dropped by the kernel
//     before it reaches the ring and counted in Stats' drops.
//   - Frames longer than a slot (V3: a block) are truncated on RX
//     (Frame.Len tells) and cannot be committed on TX (Commit panics).
//   - A V3 ring adds up to RetireTimeout (at least 1 ms) to a frame's
//     latency whenever its block does not fill before the timer.
//   - The data path must put back a VLAN tag reported in Frame.VLANTCI if it
//     wants to send the frame tagged.
//   - RX is for one consumer goroutine (Close and Stats may come from any
//     goroutine); TX is for one goroutine altogether.
package afpacket
