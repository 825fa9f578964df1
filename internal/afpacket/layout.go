package afpacket

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// TPACKET_V2 slot geometry (include/uapi/linux/if_packet.h). Every slot
// starts with a struct tpacket2_hdr, padded to TPACKET_ALIGNMENT, followed by
// a struct sockaddr_ll; see doc.go for the picture.
const (
	// tpacketAlignment is TPACKET_ALIGNMENT: frame sizes and the kernel's
	// offsets inside a slot are multiples of it.
	tpacketAlignment = 16

	// tpacket2HdrSize is sizeof(struct tpacket2_hdr): status, len, snaplen
	// (3×4), mac, net (2×2), sec, nsec (2×4), vlan_tci, vlan_tpid (2×2),
	// padding[4].
	tpacket2HdrSize = 32

	// sockaddrLLSize is sizeof(struct sockaddr_ll).
	sockaddrLLSize = 20

	// tpacket2HdrLen is TPACKET2_HDRLEN = TPACKET_ALIGN(sizeof(struct
	// tpacket2_hdr)) + sizeof(struct sockaddr_ll), the kernel's tp_hdrlen.
	tpacket2HdrLen = 52

	// txDataOff is where tpacket_snd expects a TX frame's data (here: the
	// virtio_net_hdr, then the Ethernet frame) when PACKET_TX_HAS_OFF is
	// off: tp_hdrlen - sizeof(struct sockaddr_ll) (tpacket_parse_header).
	txDataOff = tpacket2HdrLen - sockaddrLLSize

	// pktTypeOff is the offset of sll_pkttype in an RX slot: the
	// sockaddr_ll starts at TPACKET_ALIGN(sizeof(tpacket2_hdr)) = 32, and
	// sll_pkttype follows sll_family(2), sll_protocol(2), sll_ifindex(4) and
	// sll_hatype(2).
	pktTypeOff = 32 + 10

	// minMACOff is the smallest tp_mac the kernel can use for a SOCK_RAW RX
	// slot with a vnet header. tpacket_rcv puts the network header at
	// netoff = TPACKET_ALIGN(tp_hdrlen + max(maclen, 16)) + 10 and the MAC
	// header at netoff - maclen, so the vnet header ends up right after the
	// sockaddr_ll at best (maclen 28: 80 + 10 - 28 = 62); for plain Ethernet
	// (maclen 14) tp_mac is 76. A smaller tp_mac would mean the slot was
	// never written by this version of the protocol.
	minMACOff = tpacket2HdrLen + VNetHdrLen

	// MinFrameSize is the smallest accepted FrameSize: room for the slot
	// header, the vnet header and a little of the frame. Smaller frames are
	// rejected; frames larger than a slot are truncated (RX) or refused (TX).
	MinFrameSize = 128

	// DefaultFrameSize holds one 64 KiB GSO/GRO super-frame: an IPv4 or
	// IPv6 packet of at most 65535+40 bytes plus an Ethernet header and one
	// 802.1Q tag is 65593 bytes; the kernel puts it at tp_mac ≈ 76..80 in an
	// RX slot, and a TX slot needs 32 + 10 bytes in front. 64 KiB + 256 B
	// leaves a margin for both. Frames still larger are reported truncated.
	DefaultFrameSize = 64<<10 + 256

	// DefaultFrameCount is the default number of slots per ring. With
	// DefaultFrameSize the ring uses 1 MiB blocks of 15 slots, so 256 slots
	// become 18 blocks (270 slots) and 18 MiB of locked kernel memory per
	// ring. Rings of small frames (FrameSize 2048: 2 per page) can be much
	// deeper for the same memory when GSO super-frames are not expected.
	DefaultFrameCount = 256

	// maxBlockSize bounds a ring block: 4 MiB is the largest contiguous
	// allocation of the page allocator (MAX_PAGE_ORDER 10 with 4 KiB
	// pages); larger blocks would only ever come from vmalloc.
	maxBlockSize = 4 << 20

	// maxFrameCount bounds the number of slots of one ring (1 Mi slots is
	// at least 128 MiB of kernel memory already).
	maxFrameCount = 1 << 20
)

var (
	// errConfig is wrapped by every configuration error.
	errConfig = errors.New("afpacket: invalid ring configuration")

	// ErrNotSupported is returned by OpenRX and OpenTX where AF_PACKET
	// rings do not exist (anything but Linux).
	ErrNotSupported = errors.New("afpacket: not supported on this platform")
)

// Layout is the geometry of one ring as given to the kernel (struct
// tpacket_req). Blocks are physically contiguous and allocated in
// power-of-two pages; slots never cross a block boundary. A TPACKET_V3 ring
// has no slots (frames are packed into blocks by their length): its Layout
// has FrameSize = BlockSize and FrameCount = BlockCount, which is what the
// kernel is told.
type Layout struct {
	FrameSize  int // bytes per slot, a multiple of 16
	FrameCount int // slots in the ring (BlockCount × frames per block)
	BlockSize  int // bytes per block, a power of two pages
	BlockCount int
}

// Size is the kernel memory the ring uses and the length of its mapping.
func (l Layout) Size() int { return l.BlockSize * l.BlockCount }

// framesPerBlock is how many slots fit one block.
func (l Layout) framesPerBlock() int { return l.BlockSize / l.FrameSize }

// offset is the offset of slot i from the start of the ring's mapping.
func (l Layout) offset(i int) int {
	fpb := l.framesPerBlock()
	return i/fpb*l.BlockSize + i%fpb*l.FrameSize
}

// offsets lists every slot's offset, so the hot path needs no division.
func (l Layout) offsets() []int {
	o := make([]int, l.FrameCount)
	for i := range o {
		o[i] = l.offset(i)
	}
	return o
}

// newLayout chooses the ring geometry for frameSize and frameCount (0 means
// the defaults) on a machine with the given page size.
//
// frameSize is rounded up to a multiple of 16. The block size is the power
// of two pages (at least one slot, at most 4 MiB) that needs the least memory
// for frameCount slots; the slots that fit are all used, so FrameCount may
// come out larger than asked. Ties go to the smaller block, which is easier
// for the kernel to allocate.
func newLayout(frameSize, frameCount, pageSize int) (Layout, error) {
	if frameSize == 0 {
		frameSize = DefaultFrameSize
	}
	if frameCount == 0 {
		frameCount = DefaultFrameCount
	}
	if frameSize < MinFrameSize || frameSize > maxBlockSize {
		return Layout{}, fmt.Errorf("%w: frame size %d not in [%d, %d]", errConfig, frameSize, MinFrameSize, maxBlockSize)
	}
	if frameCount < 1 || frameCount > maxFrameCount {
		return Layout{}, fmt.Errorf("%w: frame count %d not in [1, %d]", errConfig, frameCount, maxFrameCount)
	}
	if pageSize <= 0 || pageSize&(pageSize-1) != 0 {
		return Layout{}, fmt.Errorf("%w: page size %d", errConfig, pageSize)
	}
	frameSize = (frameSize + tpacketAlignment - 1) &^ (tpacketAlignment - 1)

	block := pageSize
	for block < frameSize {
		block *= 2
	}
	best := Layout{}
	for ; block <= maxBlockSize || best.BlockSize == 0; block *= 2 {
		fpb := block / frameSize
		n := (frameCount + fpb - 1) / fpb
		l := Layout{FrameSize: frameSize, FrameCount: n * fpb, BlockSize: block, BlockCount: n}
		if best.BlockSize == 0 || l.Size() < best.Size() {
			best = l
		}
	}
	return best, nil
}

// Version is the TPACKET version of a receive ring (RXConfig.Version). The
// zero value means V2.
type Version int

// Versions of a receive ring. Transmit rings are always V2.
const (
	// V2 (TPACKET_V2) gives every frame a slot of FrameSize bytes, handed
	// to user space the moment it is written and back to the kernel
	// slot by slot. The default.
	V2 Version = 2
	// V3 (TPACKET_V3) packs frames back to back into blocks, each frame
	// taking only its own length plus headers, and hands a block to user
	// space when it is full or when RetireTimeout has passed since the
	// block was opened; user space gives it back whole.
	V3 Version = 3
)

// String returns "v2" or "v3".
func (v Version) String() string {
	switch v {
	case 0, V2:
		return "v2"
	case V3:
		return "v3"
	}
	return fmt.Sprintf("Version(%d)", int(v))
}

// ParseVersion parses "v2" or "v3" (also "2", "3", "tpacket_v2", "TPACKET_V3"),
// as a command-line flag would give them.
func ParseVersion(s string) (Version, error) {
	switch strings.ToLower(s) {
	case "v2", "2", "tpacket_v2":
		return V2, nil
	case "v3", "3", "tpacket_v3":
		return V3, nil
	}
	return 0, fmt.Errorf("%w: TPACKET version %q: want v2 or v3", errConfig, s)
}

// TPACKET_V3 block geometry (include/uapi/linux/if_packet.h). A block
// starts with a struct tpacket_block_desc; the frames follow back to back,
// each a struct tpacket3_hdr, a struct sockaddr_ll, the vnet header and the
// frame, padded to 8 bytes; see doc.go for the picture.
const (
	// blockDescLen is BLK_HDR_LEN = ALIGN(sizeof(struct
	// tpacket_block_desc), 8): version, offset_to_priv (2×4) and struct
	// tpacket_hdr_v1 (block_status, num_pkts, offset_to_first_pkt,
	// blk_len: 4×4; seq_num: 8; ts_first_pkt, ts_last_pkt: 2×8). The
	// first frame starts here (no private area is asked for).
	blockDescLen = 48

	// Offsets of the block descriptor's fields that this package reads.
	blockStatusOff = 8
	numPktsOff     = 12
	firstPktOff    = 16

	// tpacket3HdrLen is TPACKET3_HDRLEN = TPACKET_ALIGN(sizeof(struct
	// tpacket3_hdr)) + sizeof(struct sockaddr_ll) = 48 + 20.
	tpacket3HdrLen = 68

	// pktTypeOff3 is the offset of sll_pkttype from a V3 frame's header:
	// the sockaddr_ll starts at TPACKET_ALIGN(48) = 48.
	pktTypeOff3 = 48 + 10

	// minMACOff3 is the smallest tp_mac of a V3 frame with a vnet header
	// (see minMACOff); for plain Ethernet the kernel uses
	// TPACKET_ALIGN(68 + 16) + 10 - 14 = 92.
	minMACOff3 = tpacket3HdrLen + VNetHdrLen

	// MaxV3Overhead is what a frame alone in a V3 block needs besides
	// its own bytes: the block descriptor and the frame's tp_mac, which is
	// TPACKET_ALIGN(68 + max(maclen, 16)) + 10 - maclen: 92 for Ethernet,
	// 106 at most. A frame longer than BlockSize - MaxV3Overhead may be
	// truncated. (Among other frames, one takes ALIGN(tp_mac + length, 8)
	// bytes: 152 for a 60-byte Ethernet frame.)
	MaxV3Overhead = blockDescLen + 106

	// DefaultBlockSize holds three or four 64 KiB super-frames, or about
	// 1,700 64-byte frames (152 bytes each in the ring). Smaller blocks
	// would hold only one super-frame; larger ones mean fewer blocks for
	// the same memory, and a ring whose consumer stalls holds only
	// BlockCount × RetireTimeout worth of frames at moderate rates,
	// however large its blocks (see doc.go).
	DefaultBlockSize = 256 << 10

	// DefaultBlockCount gives a V3 ring the memory of a default V2 ring
	// (18 MiB).
	DefaultBlockCount = 72

	// DefaultRetireTimeout is the smallest timeout the kernel takes: it
	// counts tp_retire_blk_tov in whole milliseconds, and 0 asks it to
	// derive one from the link speed (8 ms when the speed is unknown).
	DefaultRetireTimeout = time.Millisecond

	// maxBlockCount is the kernel's limit: it numbers blocks with an
	// unsigned short (tpacket_kbdq_core.kactive_blk_num).
	maxBlockCount = 1<<16 - 1

	// maxRetireTimeout is the kernel's limit: tpacket_kbdq_core keeps the
	// timeout in an unsigned short of milliseconds.
	maxRetireTimeout = (1<<16 - 1) * time.Millisecond
)

// newLayout3 checks and completes a V3 ring's geometry (0 means the
// defaults). Frames are not slotted in a V3 ring: the kernel checks
// tp_frame_size and tp_frame_nr only for consistency, so the layout gives it
// one "frame" per block (FrameSize = BlockSize, FrameCount = BlockCount).
func newLayout3(blockSize, blockCount, pageSize int) (Layout, error) {
	if blockSize == 0 {
		blockSize = DefaultBlockSize
	}
	if blockCount == 0 {
		blockCount = DefaultBlockCount
	}
	if pageSize <= 0 || pageSize&(pageSize-1) != 0 {
		return Layout{}, fmt.Errorf("%w: page size %d", errConfig, pageSize)
	}
	if blockSize < pageSize || blockSize > maxBlockSize || blockSize&(blockSize-1) != 0 {
		return Layout{}, fmt.Errorf("%w: block size %d: want a power of two from the page size (%d) to %d", errConfig, blockSize, pageSize, maxBlockSize)
	}
	if blockCount < 1 || blockCount > maxBlockCount {
		return Layout{}, fmt.Errorf("%w: block count %d not in [1, %d]", errConfig, blockCount, maxBlockCount)
	}
	return Layout{FrameSize: blockSize, FrameCount: blockCount, BlockSize: blockSize, BlockCount: blockCount}, nil
}

// retireTimeout converts RXConfig.RetireTimeout (0: the default) to the
// kernel's tp_retire_blk_tov in milliseconds.
func retireTimeout(d time.Duration) (uint32, error) {
	if d == 0 {
		d = DefaultRetireTimeout
	}
	if d < time.Millisecond || d > maxRetireTimeout || d%time.Millisecond != 0 {
		return 0, fmt.Errorf("%w: retire timeout %v: want whole milliseconds from 1ms to %v (the kernel counts milliseconds)", errConfig, d, maxRetireTimeout)
	}
	return uint32(d / time.Millisecond), nil
}
