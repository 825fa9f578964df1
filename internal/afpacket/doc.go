// Package afpacket is the frame I/O of gvs's data path: memory-mapped
// AF_PACKET rings (TPACKET_V2) for receive (RX) and transmit (TX), with
// PACKET_VNET_HDR, so that GSO/GRO super-frames of up to 64 KiB and frames
// whose checksum is left to offload cross user space whole, and go back out
// whole for the kernel (or the NIC) to segment and checksum.
//
// # Why rings, why TPACKET_V2, why the vnet header
//
// On this project's test machine (2025), reading and writing frames through
// mdlayher/packet's ReadFrom/WriteTo moved 59 Kpps, recvmmsg/sendmmsg 341
// Kpps, and TPACKET rings 655 Kpps: a ring costs no system call per frame on
// receive (the kernel writes frames into shared memory and the reader polls
// a status word) and one per batch on transmit.
//
// TPACKET_V2 has one fixed-size slot per frame, each with its own status
// word, so a batch can be handed back slot by slot, in order, the moment it
// has been forwarded. TPACKET_V3 packs frames into blocks that the kernel
// retires only when full or after a timeout (latency under light load), and
// its TX ring has V2's fixed slots anyway. V1 has no VLAN fields.
//
// Veth and most NICs hand the stack TCP super-frames (GRO, or TSO from a
// local sender) with the checksum not yet computed (CHECKSUM_PARTIAL). A
// plain packet socket sees those super-frames but not the metadata needed to
// send them on; with PACKET_VNET_HDR every frame carries a virtio_net_hdr
// (VNetHdr) saying how to segment it and where its checksum goes, and the
// same header given back on transmit makes the kernel finish the job. A
// forwarder that rewrites MACs (gvs's DR mode) copies the header unchanged.
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
// a callback made once: no busy loop and no thread parked in the kernel.
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
//	TX: TP_STATUS_AVAILABLE (0) --Commit--> TP_STATUS_SEND_REQUEST --sendto-->
//	    TP_STATUS_SENDING --frame freed--> TP_STATUS_AVAILABLE
//
// Both sides walk their ring in order, so user space keeps its own head
// index in step with the kernel's.
//
// # Opening a ring
//
// Sockets are opened and bound with mdlayher/packet (packet.Listen), with
// protocol 0 so they receive nothing, and configured through its
// SyscallConn. The order matters: PACKET_VNET_HDR, PACKET_VERSION,
// PACKET_LOSS and PACKET_RESERVE fail with EBUSY once a ring exists.
//
//	RX: PACKET_VNET_HDR=1, PACKET_VERSION=TPACKET_V2, PACKET_IGNORE_OUTGOING=1,
//	    PACKET_RX_RING, mmap, bind(ETH_P_ALL, ifindex), [PACKET_FANOUT]
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
//
// # Limits (Linux 6.x, 2025)
//
//   - A super-frame whose GSO type a virtio_net_hdr cannot describe (tunnel
//     GSO such as IPIP or VXLAN, SCTP, fraglist) is dropped by the kernel
//     before it reaches the ring and counted in Stats' drops.
//   - Frames longer than a slot are truncated on RX (Frame.Len tells) and
//     cannot be committed on TX (Commit panics).
//   - The data path must put back a VLAN tag reported in Frame.VLANTCI if it
//     wants to send the frame tagged.
//   - RX is for one consumer goroutine (Close and Stats may come from any
//     goroutine); TX is for one goroutine altogether.
package afpacket
