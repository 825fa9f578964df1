//go:build linux

package afpacket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// Fanout joins an RX socket to a PACKET_FANOUT group: the kernel spreads the
// interface's frames over the group's sockets (one per worker).
type Fanout struct {
	// ID names the group within the network namespace. Sockets of one
	// group must be bound to the same interface and use the same Mode.
	ID uint16
	// Mode chooses how frames are spread.
	Mode FanoutMode
	// Defrag reassembles IPv4 fragments before spreading them, so all
	// fragments of a datagram reach the same socket (PACKET_FANOUT_FLAG_DEFRAG).
	Defrag bool
}

// FanoutMode is a PACKET_FANOUT_* mode. The zero value is invalid.
type FanoutMode int

// Fanout modes.
const (
	_           FanoutMode = iota
	FanoutHash             // by flow hash (PACKET_FANOUT_HASH): a flow stays on one socket
	FanoutLB               // round robin (PACKET_FANOUT_LB)
	FanoutCPU              // by receiving CPU (PACKET_FANOUT_CPU)
	FanoutQueue            // by NIC receive queue (PACKET_FANOUT_QM)
)

func (m FanoutMode) kernel() (int, bool) {
	switch m {
	case FanoutHash:
		return unix.PACKET_FANOUT_HASH, true
	case FanoutLB:
		return unix.PACKET_FANOUT_LB, true
	case FanoutCPU:
		return unix.PACKET_FANOUT_CPU, true
	case FanoutQueue:
		return unix.PACKET_FANOUT_QM, true
	}
	return 0, false
}

// RXConfig configures OpenRX. A nil *RXConfig and zero fields mean the
// defaults.
type RXConfig struct {
	// FrameSize is the slot size in bytes (default DefaultFrameSize).
	// Frames that do not fit are delivered truncated (Frame.Len > len(Data)).
	FrameSize int
	// FrameCount is the minimum number of slots (default DefaultFrameCount);
	// see Layout for what is actually allocated.
	FrameCount int
	// Fanout, if set, joins the socket to a PACKET_FANOUT group.
	Fanout *Fanout
	// BusyPoll, if positive, is how long Receive keeps looking at the
	// ring for a frame before it goes to sleep in the netpoller. A
	// consumer that sleeps between frames is woken by the kernel, on an
	// idle CPU (and in a virtual machine, through the hypervisor) ten or
	// twenty microseconds after the frame came; one that is still
	// looking takes it at once. The price is the CPU time spent looking:
	// at most BusyPoll after each batch.
	BusyPoll time.Duration
	// ThreadWait makes Receive wait in poll(2) on the caller's thread
	// instead of parking in the Go netpoller: one system call per wait,
	// and the kernel wakes that thread itself, where the netpoller takes
	// two epoll_ctl calls and a wake-up of its own thread, which then
	// hands the consumer on (to its locked thread, through a futex). The
	// thread keeps its P while it waits, until the runtime's sysmon takes
	// the P away, up to 10 ms later, so another goroutine ready meanwhile
	// waits that long unless there is a free P: use it only with more Ps
	// (GOMAXPROCS) than consumers that wait this way.
	ThreadWait bool

	// Version is the ring's TPACKET version: V2 (the default: one slot
	// per frame, FrameSize and FrameCount) or V3 (frames packed into
	// blocks, BlockSize, BlockCount and RetireTimeout). Setting a field of
	// the other version is an error.
	Version Version
	// BlockSize (V3) is the size of a block in bytes, a power of two
	// pages of at most 4 MiB (default DefaultBlockSize). A frame takes
	// its own length plus about 100 bytes of headers; frames longer than
	// BlockSize - MaxV3Overhead are delivered truncated.
	BlockSize int
	// BlockCount (V3) is the number of blocks (default DefaultBlockCount).
	BlockCount int
	// RetireTimeout (V3) is how long the kernel keeps filling a block
	// that is not full before it hands the block over anyway
	// (tp_retire_blk_tov): a whole number of milliseconds, from 1 ms
	// (default DefaultRetireTimeout) to 65535 ms.
	RetireTimeout time.Duration
}

// TXConfig configures OpenTX. A nil *TXConfig and zero fields mean the
// defaults.
type TXConfig struct {
	// FrameSize is the slot size in bytes (default DefaultFrameSize); a slot
	// holds frames of up to FrameSize - 42 bytes (32 bytes of slot header,
	// 10 of vnet header).
	FrameSize int
	// FrameCount is the minimum number of slots (default DefaultFrameCount).
	FrameCount int
	// QdiscBypass sends frames straight to the driver, skipping the
	// interface's qdisc (PACKET_QDISC_BYPASS). Faster, but frames are
	// dropped rather than queued when the driver's queue is full, and tc
	// egress rules do not see them.
	QdiscBypass bool
	// FullWait bounds how long Slot waits for the kernel to free a slot
	// when the ring is full (default DefaultFullWait; negative: no wait).
	FullWait time.Duration
	// DirectMin, if positive, opens a second socket on the interface,
	// without a ring, through which SendDirect sends frames of at least
	// DirectMin bytes from wherever they are (see SendDirect).
	DirectMin int
}

// linearMax is the largest frame that Commit asks the kernel to copy
// whole into its sk_buff. tpacket_snd copies max(hdr_len, 14) bytes of a
// frame and attaches the rest as fragments pointing into the ring, which is
// zero-copy but costs a page reference per fragment, and a device that
// cannot send from user pages (veth, or anything that must orphan them)
// then allocates a page and copies anyway. For a frame of less than a page
// a single copy is cheaper; the kernel's own packet_snd makes the same
// choice ("Under a page? Don't bother with paged skb"). Commit therefore
// raises hdr_len, a hint about the linear part, to the frame's length for
// frames up to linearMax bytes that are not super-frames.
const linearMax = 2048

// DefaultFullWait is how long TX.Slot waits, at most, for the kernel to
// finish sending a frame when every slot is in flight. The wait ends as soon
// as a slot is free (the socket becomes writable when the kernel frees a
// sent frame); the bound only matters when transmission has stalled (link
// down, a stuck driver queue). After one wait has run out, Slot fails at once
// until a slot is free again, so a dead link costs one wait, not one per frame.
const DefaultFullWait = time.Millisecond

// opError builds the *net.OpError every error of this package is wrapped in
// (mdlayher/packet does the same), so callers can use errors.Is with
// net.ErrClosed, os.ErrPermission, unix.ENETDOWN and so on.
func opError(op string, err error) error {
	if err == nil {
		return nil
	}
	return &net.OpError{Op: op, Net: "packet", Err: err}
}

// status returns a pointer to the tp_status word of the slot at off.
func status(ring []byte, off int) *uint32 {
	return (*uint32)(unsafe.Pointer(&ring[off]))
}

// header returns the struct tpacket2_hdr of the slot at off.
func header(ring []byte, off int) *unix.Tpacket2Hdr {
	return (*unix.Tpacket2Hdr)(unsafe.Pointer(&ring[off]))
}

// ringSocket is what RX and TX share: a packet socket and its mapped ring.
type ringSocket struct {
	fd     int // out of the runtime's poller (unpolled)
	layout Layout
	ring   []byte
	offs   []int // slot offsets (V2), block offsets (V3)

	version int    // unix.TPACKET_V2 or unix.TPACKET_V3
	tov     uint32 // a V3 ring's retire timeout in milliseconds; 0 for V2
}

// openRing opens a SOCK_RAW packet socket on ifindex bound with protocol 0
// (so that it receives nothing yet), sets the options that must precede the
// ring (PACKET_VNET_HDR, PACKET_VERSION and the extra ones in pre), creates
// the ring (PACKET_RX_RING or PACKET_TX_RING) and maps it.
//
// version is unix.TPACKET_V2 or, for an RX ring, unix.TPACKET_V3 with the
// block retire timeout tov in milliseconds.
func openRing(op string, ifindex int, ringOpt int, layout Layout, version int, tov uint32, pre func(fd int) error) (*ringSocket, error) {
	s := &ringSocket{layout: layout, version: version, tov: tov}
	conn, rc, err := openSocket(op, ifindex, func(fd int) error { return s.setup(fd, ringOpt, pre) })
	if err != nil {
		return nil, err
	}
	s.offs = layout.offsets()
	if s.fd, err = unpolled(op, conn, rc); err != nil {
		_ = unix.Munmap(s.ring)
		return nil, err
	}
	return s, nil
}

// unpolled takes a socket out of the Go runtime's poller: it returns a
// duplicate of conn's descriptor and closes conn.
//
// The poller watches every socket it is given, edge-triggered, and each
// edge wakes whichever thread of the process sleeps in epoll_wait (the
// thread of any idle P): for a sending packet socket each time the kernel
// frees one of its frames, for a receiving one at every frame, whether a
// goroutine waits on it or not. At a few hundred thousand frames a second
// that thread is woken thousands of times a second to find nothing to do,
// and takes a CPU to do it, often the busy forwarder's. Measured in the
// bench: the generator's process preempted gvs's worker 6,800 times a
// second, with a fifth of its CPU, until its transmit ring left the
// poller; gvs with two Ps on one CPU, 17,700 times a second, until its
// receive ring left it.
//
// A sending socket has nothing to wait for but a free slot, which
// TX.waitSlot looks for in the ring. A receive ring is waited for through
// an epoll instance of its own that holds the socket only while its
// consumer is parked (RX.openWait).
func unpolled(op string, conn *packet.Conn, rc syscall.RawConn) (int, error) {
	fd := -1
	var derr error
	cerr := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
	// Closing conn takes its descriptor out of the poller (epoll_ctl
	// EPOLL_CTL_DEL) and closes it; the duplicate keeps the socket open
	// without the registration.
	clerr := conn.Close()
	if err := errors.Join(cerr, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", derr), clerr); err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, opError(op, err)
	}
	return fd, nil
}

// openSocket opens a SOCK_RAW packet socket on the interface with index
// ifindex, bound with protocol 0 (it receives nothing until bound to a
// protocol), and runs setup on its descriptor. The socket is closed again
// if setup fails.
func openSocket(op string, ifindex int, setup func(fd int) error) (_ *packet.Conn, _ syscall.RawConn, err error) {
	// Only Index matters to Listen; HardwareAddr appears in its errors.
	ifi, err := net.InterfaceByIndex(ifindex)
	if err != nil {
		return nil, nil, opError(op, err)
	}
	conn, err := packet.Listen(ifi, packet.Raw, 0, nil)
	if err != nil {
		return nil, nil, err // already a *net.OpError
	}
	defer func() {
		if err != nil {
			conn.Close()
		}
	}()
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	var serr error
	cerr := rc.Control(func(fd uintptr) { serr = setup(int(fd)) })
	if err := errors.Join(cerr, serr); err != nil {
		return nil, nil, opError(op, err)
	}
	return conn, rc, nil
}

// closeFD closes a descriptor of unpolled's.
func closeFD(op string, fd int) error {
	if err := unix.Close(fd); err != nil {
		return opError(op, os.NewSyscallError("close", err))
	}
	return nil
}

// setQdiscBypass sets PACKET_QDISC_BYPASS on a transmitting socket.
func setQdiscBypass(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		return os.NewSyscallError("setsockopt PACKET_QDISC_BYPASS", err)
	}
	return nil
}

// setSndbuf raises a socket's send buffer to n bytes (the kernel doubles
// it): SO_SNDBUFFORCE, which needs CAP_NET_ADMIN, else SO_SNDBUF within
// net.core.wmem_max.
func setSndbuf(fd, n int) {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, n)
	}
}

func (s *ringSocket) setup(fd, ringOpt int, pre func(fd int) error) error {
	// The vnet header and the version must be set before the ring
	// exists: packet_setsockopt answers EBUSY once a ring is there.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return os.NewSyscallError("setsockopt PACKET_VNET_HDR", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, s.version); err != nil {
		return os.NewSyscallError("setsockopt PACKET_VERSION", err)
	}
	if pre != nil {
		if err := pre(fd); err != nil {
			return err
		}
	}
	l := s.layout
	if s.version == unix.TPACKET_V3 {
		// No private area per block, no rxhash: the blocks hold only
		// the block descriptor and the frames.
		req := unix.TpacketReq3{
			Block_size:     uint32(l.BlockSize),
			Block_nr:       uint32(l.BlockCount),
			Frame_size:     uint32(l.FrameSize),
			Frame_nr:       uint32(l.FrameCount),
			Retire_blk_tov: s.tov,
		}
		if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, ringOpt, &req); err != nil {
			return os.NewSyscallError("setsockopt PACKET_RX_RING (TPACKET_V3)", err)
		}
	} else {
		req := unix.TpacketReq{
			Block_size: uint32(l.BlockSize),
			Block_nr:   uint32(l.BlockCount),
			Frame_size: uint32(l.FrameSize),
			Frame_nr:   uint32(l.FrameCount),
		}
		if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, ringOpt, &req); err != nil {
			return os.NewSyscallError("setsockopt PACKET_RX/TX_RING", err)
		}
	}
	ring, err := unix.Mmap(fd, 0, l.Size(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return os.NewSyscallError("mmap", err)
	}
	s.ring = ring
	return nil
}

// Frame is one received frame. It aliases ring memory and is valid until
// the next Release (or Receive, or Close).
type Frame struct {
	// Data is the Ethernet frame as captured: tp_snaplen bytes, starting
	// with the destination MAC. It may be modified in place.
	Data []byte
	// Len is the frame's full length (tp_len). Len > len(Data) means the
	// frame did not fit its slot and was truncated: drop it.
	Len int
	// VNet is the frame's virtio_net_hdr: GSO and checksum state.
	VNet VNetHdr
	// PktType is sll_pkttype: PacketHost, PacketBroadcast, ...
	PktType uint8
	// Status is tp_status: StatusCsumNotReady, StatusVLANValid, ...
	Status uint32
	// VLANTCI is the 802.1Q tag control information (priority, DEI, VLAN
	// ID) when Status has StatusVLANValid. The kernel strips the tag from
	// Data in that case; a forwarder must put it back if it wants it.
	VLANTCI uint16
	// VLANTPID is the stripped tag's protocol ID (0x8100, 0x88a8) when
	// Status has StatusVLANTPIDValid.
	VLANTPID uint16
}

// RX is a receive ring on one interface: TPACKET_V2 by default, or
// TPACKET_V3 (RXConfig.Version).
//
// Receive and Release must be called from one goroutine at a time (the
// consumer). Stats and Close may be called from any goroutine, at any time.
type RX struct {
	s *ringSocket

	// Consumer state, touched only by Receive and Release.
	head  int         // V2: next slot to look at
	tail  int         // V2: first slot handed out by the last Receive
	held  int         // frames handed out and not yet released
	ready func() bool // whether the next frame is ready, made once

	// The wait: an epoll instance of the RX's own, in the runtime's
	// poller, that holds the socket only while the consumer is parked.
	wait       *os.File
	waitRC     syscall.RawConn
	waitOn     func(epfd uintptr) bool // waitRC.Read callback, made once
	waitOff    func(epfd uintptr)      // waitRC.Control callback, made once
	registered bool                    // the socket is in wait's set
	waitErr    error                   // of waitOn's and waitOff's epoll_ctl

	// With RXConfig.ThreadWait, instead: poll(2) on the socket and wake,
	// an eventfd that Close makes readable (-1 without ThreadWait).
	wake  int
	pfds  [2]unix.PollFd
	polls int  // poll(2) calls, for the tests (the consumer's)
	v3    *rx3 // the block walk of a V3 ring; nil for V2

	// active is set while the consumer is inside Receive or holds frames;
	// the ring is unmapped and the socket closed by whichever of Close
	// and the consumer comes last, so that frames never point at unmapped
	// memory and the consumer never uses a closed descriptor.
	active      atomic.Bool
	closed      atomic.Bool
	closeOnce   sync.Once
	releaseOnce sync.Once
	errClosed   error

	statsMu        sync.Mutex // also orders Stats and SetFilter before release
	released       bool       // under statsMu
	packets, drops uint64

	busyPoll time.Duration
	yielded  time.Time // when spin last let other goroutines run
}

// OpenRX opens a receive ring on the interface with index ifindex: a
// SOCK_RAW socket that sees every frame (ETH_P_ALL) the interface receives,
// but none it sends (PACKET_IGNORE_OUTGOING), each with its virtio_net_hdr.
// The caller needs CAP_NET_RAW in the interface's network namespace.
//
// The socket is bound to ETH_P_ALL only after the ring exists, so no frame
// is ever queued on the socket outside the ring.
func OpenRX(ifindex int, cfg *RXConfig) (*RX, error) {
	const op = "open rx"
	if cfg == nil {
		cfg = &RXConfig{}
	}
	var fanoutArg int
	if f := cfg.Fanout; f != nil {
		mode, ok := f.Mode.kernel()
		if !ok {
			return nil, opError(op, fmt.Errorf("%w: fanout mode %d", errConfig, f.Mode))
		}
		if f.Defrag {
			mode |= unix.PACKET_FANOUT_FLAG_DEFRAG
		}
		// PACKET_FANOUT takes the group id in the low 16 bits and the
		// mode and flags in the high 16 bits.
		fanoutArg = int(f.ID) | mode<<16
	}
	version, tov := unix.TPACKET_V2, uint32(0)
	var layout Layout
	var err error
	switch cfg.Version {
	case 0, V2:
		if cfg.BlockSize != 0 || cfg.BlockCount != 0 || cfg.RetireTimeout != 0 {
			return nil, opError(op, fmt.Errorf("%w: BlockSize, BlockCount and RetireTimeout are for TPACKET_V3 rings; a V2 ring is sized by FrameSize and FrameCount", errConfig))
		}
		layout, err = newLayout(cfg.FrameSize, cfg.FrameCount, os.Getpagesize())
	case V3:
		if cfg.FrameSize != 0 || cfg.FrameCount != 0 {
			return nil, opError(op, fmt.Errorf("%w: FrameSize and FrameCount are for TPACKET_V2 rings; a V3 ring is sized by BlockSize and BlockCount", errConfig))
		}
		version = unix.TPACKET_V3
		if tov, err = retireTimeout(cfg.RetireTimeout); err == nil {
			layout, err = newLayout3(cfg.BlockSize, cfg.BlockCount, os.Getpagesize())
		}
	default:
		err = fmt.Errorf("%w: TPACKET version %d: only V2 and V3", errConfig, int(cfg.Version))
	}
	if err != nil {
		return nil, opError(op, err)
	}
	s, err := openRing(op, ifindex, unix.PACKET_RX_RING, layout, version, tov, func(fd int) error {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			return os.NewSyscallError("setsockopt PACKET_IGNORE_OUTGOING", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r := &RX{s: s, errClosed: opError("receive", net.ErrClosed), busyPoll: max(cfg.BusyPoll, 0), wake: -1}
	if version == unix.TPACKET_V3 {
		r.v3 = &rx3{}
		r.ready = r.ready3
	} else {
		r.ready = func() bool {
			return atomic.LoadUint32(status(r.s.ring, r.s.offs[r.head]))&unix.TP_STATUS_USER != 0
		}
	}
	if cfg.ThreadWait {
		err = r.openThreadWait()
	} else {
		err = r.openWait()
	}
	if err != nil {
		r.closed.Store(true)
		r.release()
		return nil, opError(op, err)
	}
	// Start receiving: bind to the protocol (sll_protocol is in network
	// byte order; x/sys/unix stores it as given).
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
	err = os.NewSyscallError("bind", unix.Bind(s.fd, sa))
	if err == nil && cfg.Fanout != nil {
		err = os.NewSyscallError("setsockopt PACKET_FANOUT", unix.SetsockoptInt(s.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, fanoutArg))
	}
	if err != nil {
		r.closed.Store(true)
		if r.wait != nil {
			r.wait.Close()
		}
		r.release()
		return nil, opError(op, err)
	}
	return r, nil
}

// openWait creates the RX's own epoll instance and hands it to the
// runtime's poller, for Receive to park on: the socket joins the set when
// the consumer is about to park (waitOn) and leaves it when the consumer
// runs again, so that frames arriving meanwhile wake nobody. Two epoll_ctl
// calls per wait. (Waiting in poll(2) on the consumer's thread instead,
// RXConfig.ThreadWait, is cheaper only when every such consumer has a P of
// its own: a blocking system call keeps the thread's P until the runtime's
// sysmon takes it, up to 10 ms later, and with more workers than Ps, as
// with gvs pinned to one CPU serving two interfaces at GOMAXPROCS 1, a
// worker woken meanwhile waits that long: TCP through gvs lost 12-16 % of
// its requests/s and a third of its bulk throughput.)
func (r *RX) openWait() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, so that os.NewFile gives it to the runtime's poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return os.NewSyscallError("fcntl O_NONBLOCK", err)
	}
	r.wait = os.NewFile(uintptr(epfd), "afpacket rx wait")
	if r.waitRC, err = r.wait.SyscallConn(); err != nil {
		r.wait.Close()
		return err
	}
	sockfd := r.s.fd
	r.waitOn = func(epfd uintptr) bool {
		if r.ready() {
			return true
		}
		if !r.registered {
			// Level-triggered: a frame that came before this call
			// makes the set ready at once, and the poller's thread
			// is woken for the parked consumer.
			ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(sockfd)}
			if err := unix.EpollCtl(int(epfd), unix.EPOLL_CTL_ADD, sockfd, &ev); err != nil {
				r.waitErr = os.NewSyscallError("epoll_ctl EPOLL_CTL_ADD", err)
				return true // Receive reports it
			}
			r.registered = true
		}
		return r.ready()
	}
	r.waitOff = func(epfd uintptr) {
		if err := unix.EpollCtl(int(epfd), unix.EPOLL_CTL_DEL, sockfd, nil); err != nil {
			r.waitErr = os.NewSyscallError("epoll_ctl EPOLL_CTL_DEL", err)
		}
	}
	return nil
}

// openThreadWait prepares RXConfig.ThreadWait's poll(2): on the socket,
// and on an eventfd of the RX's own that Close makes readable.
func (r *RX) openThreadWait() error {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return os.NewSyscallError("eventfd", err)
	}
	r.wake = efd
	r.pfds = [2]unix.PollFd{
		{Fd: int32(r.s.fd), Events: unix.POLLIN},
		{Fd: int32(efd), Events: unix.POLLIN},
	}
	return nil
}

// threadWait waits in poll(2) until a frame is ready or the RX is closed
// (RXConfig.ThreadWait). The socket's readiness is the ring's: poll
// returns at once when the slot at head is ready, so a frame that came
// before the call is not missed.
func (r *RX) threadWait() error {
	for !r.ready() && !r.closed.Load() {
		r.polls++
		if _, err := unix.Poll(r.pfds[:], -1); err != nil && err != unix.EINTR {
			return os.NewSyscallError("poll", err)
		}
		if r.pfds[0].Revents&(unix.POLLERR|unix.POLLNVAL) != 0 && !r.ready() {
			// A pending socket error (ENETDOWN while the link
			// is down) keeps poll returning at once: take it
			// and wait again.
			_, _ = unix.GetsockoptInt(r.s.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		}
	}
	return nil
}

// htons returns the uint16 whose in-memory bytes are v in network byte
// order (a byte swap on little-endian hosts, nothing on big-endian ones).
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// Layout returns the ring's geometry (for V3: see Layout).
func (r *RX) Layout() Layout { return r.s.layout }

// Version returns the ring's TPACKET version.
func (r *RX) Version() Version {
	if r.v3 != nil {
		return V3
	}
	return V2
}

// Receive waits until at least one frame is ready, then fills frames with
// up to len(frames) ready frames, in arrival order, and returns how many.
// It does not wait for more frames than are ready. Waiting goes through the
// Go netpoller (no busy loop beyond RXConfig.BusyPoll, no thread held), on
// an epoll instance of the RX's own (openWait), or with
// RXConfig.ThreadWait through poll(2) on the caller's thread.
//
// The frames stay valid, and their slots owned by the caller, until
// Release. A Receive that finds frames of an earlier Receive not released
// releases them first. After Close, Receive returns an error for which
// errors.Is(err, net.ErrClosed) holds. Receive does not allocate.
func (r *RX) Receive(frames []Frame) (int, error) {
	if r.held > 0 {
		r.Release()
	}
	r.active.Store(true)
	if r.closed.Load() {
		r.leave()
		return 0, r.errClosed
	}
	if len(frames) == 0 {
		r.leave()
		return 0, nil
	}
	spun := r.busyPoll <= 0
	for {
		var n int
		if r.v3 != nil {
			n = r.collect3(frames)
		} else {
			n = r.collect(frames)
		}
		if n > 0 {
			return n, nil // still active: the caller holds slots
		}
		if !spun {
			spun = true
			if r.spin() {
				continue
			}
		}
		var err error
		if r.wake >= 0 {
			err = r.threadWait()
		} else {
			err = r.waitRC.Read(r.waitOn)
		}
		if r.registered {
			// Out of the set again while the consumer runs: there,
			// every frame would wake the runtime's poller thread.
			// After Close, Control runs nothing (the set is gone).
			r.registered = false
			_ = r.waitRC.Control(r.waitOff)
		}
		if err == nil && r.waitErr != nil {
			err, r.waitErr = opError("receive", r.waitErr), nil
		}
		if r.closed.Load() {
			r.leave()
			return 0, r.errClosed
		}
		if err != nil {
			r.leave()
			return 0, err
		}
	}
}

// spin looks at the ring until a frame is ready or BusyPoll has passed,
// and reports whether one is (or the ring was closed meanwhile).
func (r *RX) spin() bool {
	start := time.Now()
	deadline := start.Add(r.busyPoll)
	for {
		// The clock is read every so many looks: a look is a load
		// of one status word, the clock a few dozen nanoseconds.
		for range 64 {
			if r.ready() {
				return true
			}
		}
		if r.closed.Load() {
			return true
		}
		now := time.Now()
		if now.After(deadline) {
			return false
		}
		if now.Sub(r.yielded) >= yieldEvery {
			// The ring is empty: a good moment to let the process's
			// other goroutines have the CPU, rather than when the
			// scheduler takes it with frames waiting (a goroutine
			// that never blocks is preempted after 10 ms). Not at
			// every look: a goroutine locked to its thread yields
			// through two thread switches.
			r.yielded = now
			runtime.Gosched()
		}
	}
}

// yieldEvery is how often at most a busy-polling Receive lets other
// goroutines run.
const yieldEvery = time.Millisecond

// collect hands out the ready slots of a V2 ring from head on.
func (r *RX) collect(frames []Frame) int {
	ring, offs := r.s.ring, r.s.offs
	fs := r.s.layout.FrameSize
	r.tail = r.head
	// At most one lap: a full ring must not hand out a slot twice.
	limit := min(len(frames), len(offs))
	n := 0
	for n < limit {
		off := offs[r.head]
		h := header(ring, off)
		st := atomic.LoadUint32(&h.Status)
		if st&unix.TP_STATUS_USER == 0 {
			break
		}
		// The kernel wrote the slot before publishing its status; the
		// atomic load above orders the reads below after it.
		f := &frames[n]
		mac, snap := int(h.Mac), int(h.Snaplen)
		if mac >= minMACOff && mac <= fs {
			snap = min(snap, fs-mac)
			f.VNet.Decode(ring[off+mac-VNetHdrLen : off+mac])
		} else {
			// Not a slot this code can parse: an empty frame.
			mac, snap = fs, 0
			f.VNet = VNetHdr{}
		}
		f.Data = ring[off+mac : off+mac+snap : off+mac+snap]
		f.Len = int(h.Len)
		f.Status = st
		f.PktType = ring[off+pktTypeOff]
		f.VLANTCI, f.VLANTPID = 0, 0
		if st&unix.TP_STATUS_VLAN_VALID != 0 {
			f.VLANTCI = h.Vlan_tci
		}
		if st&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
			f.VLANTPID = h.Vlan_tpid
		}
		n++
		if r.head++; r.head == len(offs) {
			r.head = 0
		}
	}
	r.held = n
	return n
}

// Release gives the slots of the last Receive back to the kernel, in order
// (TP_STATUS_KERNEL). The frames must not be used afterwards. Release does
// not allocate and is a no-op when nothing is held.
//
// On a V3 ring the kernel gets whole blocks back: those whose every frame
// has now been handed out and released. A block that the last Receive only
// started stays with the consumer until a later Release.
func (r *RX) Release() {
	if r.held == 0 {
		return
	}
	if r.v3 != nil {
		r.release3()
		r.held = 0
		r.leave()
		return
	}
	ring, offs := r.s.ring, r.s.offs
	for ; r.held > 0; r.held-- {
		atomic.StoreUint32(status(ring, offs[r.tail]), unix.TP_STATUS_KERNEL)
		if r.tail++; r.tail == len(offs) {
			r.tail = 0
		}
	}
	r.leave()
}

// leave marks the consumer as out of the ring and unmaps it if Close came
// first.
func (r *RX) leave() {
	r.active.Store(false)
	if r.closed.Load() {
		r.release()
	}
}

// release unmaps the ring and closes the socket, once.
func (r *RX) release() {
	r.releaseOnce.Do(func() {
		r.statsMu.Lock()
		defer r.statsMu.Unlock()
		r.released = true
		if r.s.ring != nil {
			_ = unix.Munmap(r.s.ring)
		}
		unix.Close(r.s.fd)
		if r.wake >= 0 {
			unix.Close(r.wake)
		}
	})
}

// Stats returns the number of frames that reached the socket (received
// into the ring or dropped) and the number dropped because the ring was full
// (or the frame could not be described by a virtio_net_hdr; on V3 also
// while the kernel waited for user space to give back a block), both counted
// since OpenRX. The kernel resets its counters when read (PACKET_STATISTICS);
// RX accumulates them.
func (r *RX) Stats() (packets, drops uint64, err error) {
	r.statsMu.Lock()
	defer r.statsMu.Unlock()
	if r.released {
		return r.packets, r.drops, opError("stats", net.ErrClosed)
	}
	var st unix.TpacketStats
	if r.s.version == unix.TPACKET_V3 {
		// V3 answers with struct tpacket_stats_v3, which adds the
		// number of times the ring was frozen (every block held by
		// user space).
		var st3 *unix.TpacketStatsV3
		if st3, err = unix.GetsockoptTpacketStatsV3(r.s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			st = unix.TpacketStats{Packets: st3.Packets, Drops: st3.Drops}
		}
	} else {
		var st2 *unix.TpacketStats
		if st2, err = unix.GetsockoptTpacketStats(r.s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			st = *st2
		}
	}
	if err != nil {
		return r.packets, r.drops, opError("stats", os.NewSyscallError("getsockopt PACKET_STATISTICS", err))
	}
	r.packets += uint64(st.Packets)
	r.drops += uint64(st.Drops)
	return r.packets, r.drops, nil
}

// Close closes the socket. A Receive blocked in another goroutine returns
// net.ErrClosed. The ring is unmapped at once, or, if the consumer holds
// frames or is inside Receive, as soon as it calls Release or leaves
// Receive. Close is safe to call more than once.
func (r *RX) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		if r.wake >= 0 {
			// Wakes a Receive in poll(2), or makes the next one
			// return at once. Under statsMu: release, on the
			// consumer's side, may be closing the eventfd.
			r.statsMu.Lock()
			if !r.released {
				one := [8]byte{1}
				_, err = unix.Write(r.wake, one[:])
				if err != nil {
					err = os.NewSyscallError("write eventfd", err)
				}
			}
			r.statsMu.Unlock()
		} else {
			// Closing the wait's file evicts it from the runtime's
			// poller, wakes a parked Receive and waits until it has
			// left RawConn.Read; the socket itself goes with release.
			err = r.wait.Close()
		}
		if !r.active.Load() {
			r.release()
		}
	})
	return err
}

// TX is a TPACKET_V2 transmit ring on one interface.
//
// A TX belongs to one goroutine: none of its methods, Close included, may be
// called concurrently with another.
type TX struct {
	s *ringSocket

	head     int           // the slot Slot hands out next
	out      bool          // Slot handed out the head slot and Commit has not run
	khead    int           // the oldest committed slot the kernel has not taken (its head)
	queued   int           // committed slots from khead on that the kernel has not taken
	stalled  bool          // the last wait for a free slot ran out
	drops    atomic.Uint64 // read by the metrics while the worker sends
	closed   bool
	maxFrame int
	fullWait time.Duration
	vnet     VNetHdr

	direct *directSocket // nil without TXConfig.DirectMin

	errClosed error
}

// OpenTX opens a transmit ring on the interface with index ifindex: a
// SOCK_RAW socket bound with protocol 0, so it receives nothing, whose frames
// carry a virtio_net_hdr. The caller needs CAP_NET_RAW in the interface's
// network namespace.
//
// The socket's send buffer is raised (SO_SNDBUFFORCE, which needs
// CAP_NET_ADMIN, else SO_SNDBUF within net.core.wmem_max) so that the whole
// ring can be in flight; otherwise the kernel stops taking frames from the
// ring when the buffer is full, and they wait for a later Flush.
//
// Malformed frames (for instance a vnet header that does not match the
// frame) are dropped by the kernel without an error (PACKET_LOSS), so that
// one bad frame cannot stop the ring.
func OpenTX(ifindex int, cfg *TXConfig) (*TX, error) {
	const op = "open tx"
	if cfg == nil {
		cfg = &TXConfig{}
	}
	fullWait := cfg.FullWait
	if fullWait == 0 {
		fullWait = DefaultFullWait
	}
	layout, err := newLayout(cfg.FrameSize, cfg.FrameCount, os.Getpagesize())
	if err != nil {
		return nil, opError(op, err)
	}
	s, err := openRing(op, ifindex, unix.PACKET_TX_RING, layout, unix.TPACKET_V2, 0, func(fd int) error {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_LOSS, 1); err != nil {
			return os.NewSyscallError("setsockopt PACKET_LOSS", err)
		}
		if cfg.QdiscBypass {
			if err := setQdiscBypass(fd); err != nil {
				return err
			}
		}
		// Each frame in flight is charged to the send buffer with its
		// length plus the sk_buff's own size (a few hundred bytes; 2 KiB
		// is generous).
		setSndbuf(fd, int(min(int64(layout.FrameCount)*int64(layout.FrameSize+2048), math.MaxInt32/2)))
		return nil
	})
	if err != nil {
		return nil, err
	}
	t := &TX{
		s:         s,
		maxFrame:  s.layout.FrameSize - txDataOff - VNetHdrLen,
		fullWait:  fullWait,
		errClosed: opError("send", net.ErrClosed),
	}
	if cfg.DirectMin > 0 {
		d, err := openDirect(ifindex, cfg.DirectMin, cfg.QdiscBypass)
		if err != nil {
			t.Close()
			return nil, err
		}
		t.direct = d
	}
	return t, nil
}

// Layout returns the ring's geometry.
func (t *TX) Layout() Layout { return t.s.layout }

// MaxFrame is the largest Ethernet frame a slot holds: len(buf) from Slot.
func (t *TX) MaxFrame() int { return t.maxFrame }

// slotFree reports whether the kernel is done with the slot at off: it is
// neither waiting to be sent nor being sent (TP_STATUS_AVAILABLE, possibly
// with timestamp bits).
func (t *TX) slotFree(off int) bool {
	return atomic.LoadUint32(status(t.s.ring, off))&(unix.TP_STATUS_SEND_REQUEST|unix.TP_STATUS_SENDING) == 0
}

// Slot returns the next free slot: the caller writes the frame's vnet
// header into *vnet (zeroed: no offload) and the Ethernet frame into buf,
// whose length is MaxFrame, then calls Commit with the frame's length. Both
// are valid until Commit; calling Slot again without Commit returns the same
// slot.
//
// When every slot is in flight, Slot flushes what is committed and waits
// for the kernel to free a slot, at most TXConfig.FullWait; ok is false if
// none became free (the caller drops the frame and counts it). After a wait
// has run out, Slot does not wait again until it finds a free slot. Slot
// does not allocate.
func (t *TX) Slot() (vnet *VNetHdr, buf []byte, ok bool) {
	if t.closed {
		return nil, nil, false
	}
	off := t.s.offs[t.head]
	if !t.slotFree(off) && !t.waitSlot(off) {
		return nil, nil, false
	}
	t.stalled = false
	t.vnet = VNetHdr{}
	t.out = true
	d := off + txDataOff + VNetHdrLen
	end := off + t.s.layout.FrameSize
	return &t.vnet, t.s.ring[d:end:end], true
}

// waitSlot is the slow path of Slot: the head slot is still in flight.
func (t *TX) waitSlot(off int) bool {
	if t.stalled {
		return t.slotFree(off)
	}
	if t.queued > 0 {
		_ = t.Flush() // an error shows again in the caller's own Flush
		if t.slotFree(off) {
			return true
		}
	}
	if t.fullWait < 0 {
		return false
	}
	// Look again after 10 us, 20 us, 40 us ... (at most 1 ms apart) until
	// the slot is free or fullWait has passed. The socket cannot tell:
	// it polls writable whenever its send buffer has room (datagram_poll),
	// slot or not, and it is out of the runtime's poller (unpolled).
	deadline := time.Now().Add(t.fullWait)
	for step := 10 * time.Microsecond; ; step = min(2*step, time.Millisecond) {
		if t.slotFree(off) {
			return true
		}
		now := time.Now()
		if !now.Before(deadline) {
			break
		}
		time.Sleep(min(step, deadline.Sub(now)))
	}
	t.stalled = true
	return false
}

// Commit queues the frame in the slot from the last Slot: n bytes of buf,
// sent with *vnet (TP_STATUS_SEND_REQUEST). The kernel takes it at the next
// Flush. Commit panics if no slot was handed out or n is larger than the
// slot. Commit does not allocate.
func (t *TX) Commit(n int) {
	if !t.out {
		panic("afpacket: TX.Commit without a slot from TX.Slot")
	}
	if n < 0 || n > t.maxFrame {
		panic("afpacket: TX.Commit: frame length out of range")
	}
	ring := t.s.ring
	off := t.s.offs[t.head]
	v := t.vnet
	if v.GSOType == GSONone && int(v.HdrLen) < n && n <= linearMax {
		v.HdrLen = uint16(n)
	}
	v.Encode(ring[off+txDataOff : off+txDataOff+VNetHdrLen])
	h := header(ring, off)
	// tp_len covers the vnet header and the frame (tpacket_snd strips
	// the header from it).
	h.Len = uint32(VNetHdrLen + n)
	// The slot's contents are written before its status is published.
	atomic.StoreUint32(&h.Status, unix.TP_STATUS_SEND_REQUEST)
	t.out = false
	t.queued++
	if t.head++; t.head == len(t.s.offs) {
		t.head = 0
	}
}

// Flush hands the committed frames to the kernel: one
// sendto(fd, NULL, 0, MSG_DONTWAIT), or nothing if nothing was committed
// since the last Flush took everything. The kernel builds one sk_buff per
// frame, pointing at the slot (no copy beyond the headers), and frees the
// slot once the frame has left.
//
// A frame that the egress path drops (a full or dropping qdisc, a tc or
// netfilter egress rule, no memory) makes the kernel stop with ENOBUFS and
// put the frame back to be sent again by the next sendto, which would hold
// back every later frame for as long as the drop repeats. Flush instead
// drops that frame (counted by Drops) and sends the rest, with one more
// sendto per dropped frame.
//
// Frames the kernel did not take for other reasons (send buffer full, link
// down) stay queued and go with a later Flush; Pending reports them. Flush
// returns an error only for the latter kind (EAGAIN excepted, which just
// means later), and does not allocate unless it returns one.
func (t *TX) Flush() error {
	if t.closed {
		return t.errClosed
	}
	for t.queued > 0 {
		errno := t.sendRing()
		t.advance()
		switch errno {
		case 0, unix.EAGAIN, unix.EINTR:
			return nil
		case unix.ENOBUFS:
			if t.queued > 0 {
				t.dropHead()
			}
			continue
		}
		return opError("send", os.NewSyscallError("sendto", errno))
	}
	return nil
}

// sendRing is sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0): tpacket_snd sends
// every slot marked TP_STATUS_SEND_REQUEST from its head on.
//
// A raw system call: with MSG_DONTWAIT it never sleeps, but the kernel
// forwards the whole batch inside it (on veth, through to the peer's
// stack), which takes long enough that the Go scheduler's sysmon would hand
// the worker's P to another thread during an ordinary Syscall, and the
// worker would pay for thread wake-ups and context switches on every batch.
func (t *TX) sendRing() unix.Errno {
	_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(t.s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return errno
}

// advance moves khead past the slots the kernel has taken: it takes them in
// order, so it has taken them all when it has taken the newest.
func (t *TX) advance() {
	ring, offs := t.s.ring, t.s.offs
	newest := t.head - 1
	if newest < 0 {
		newest = len(offs) - 1
	}
	if atomic.LoadUint32(status(ring, offs[newest])) != unix.TP_STATUS_SEND_REQUEST {
		t.khead, t.queued = t.head, 0
		return
	}
	for t.queued > 0 && atomic.LoadUint32(status(ring, offs[t.khead])) != unix.TP_STATUS_SEND_REQUEST {
		if t.khead++; t.khead == len(offs) {
			t.khead = 0
		}
		t.queued--
	}
}

// dropHead makes the kernel discard the frame at its head: a tp_len shorter
// than the vnet header is malformed, and with PACKET_LOSS tpacket_snd frees
// a malformed slot and moves on. The slot is not in the kernel's hands
// between two sendto calls, so writing it is safe.
func (t *TX) dropHead() {
	header(t.s.ring, t.s.offs[t.khead]).Len = 0
	t.drops.Add(1)
}

// Pending reports whether committed frames wait for a Flush.
func (t *TX) Pending() bool { return t.queued > 0 }

// Drops is the number of committed frames the kernel's egress path refused
// and Flush dropped, since OpenTX. (Frames the kernel finds malformed are
// dropped without a trace: PACKET_LOSS.)
// It is safe to call while another goroutine sends.
func (t *TX) Drops() uint64 { return t.drops.Load() }

// Close closes the socket and unmaps the ring. Frames committed but not
// flushed are discarded; frames already flushed are sent (the kernel holds
// references to their pages). Close is safe to call more than once.
func (t *TX) Close() error {
	if t.closed {
		return nil
	}
	t.closed = true
	t.out = false // a Commit now panics instead of writing to unmapped memory
	err := closeFD("close tx", t.s.fd)
	if t.direct != nil {
		err = errors.Join(err, closeFD("close tx direct", t.direct.fd))
	}
	// The mapping keeps the socket alive; unmapping it releases both.
	_ = unix.Munmap(t.s.ring)
	return err
}

// SetFilter makes prog the socket's filter: from then on the kernel copies
// into the ring only the frames prog accepts (returns non-zero for), and
// others cost the receive path one program run instead of a copy and, at
// times, a wake-up. A frame's data as prog sees it starts at its Ethernet
// header; a VLAN tag the driver took off is only in the ancillary data.
// The new program replaces the old one at once (SO_ATTACH_FILTER); an
// empty prog removes the filter (SO_DETACH_FILTER), so that every frame is
// copied again. The kernel checks prog and refuses it whole when it is
// invalid (EINVAL) or longer than MaxInstructions; the old filter then
// stays.
func (r *RX) SetFilter(prog []Instruction) error {
	r.statsMu.Lock()
	defer r.statsMu.Unlock()
	if r.released {
		return opError("set filter", net.ErrClosed)
	}
	if len(prog) == 0 {
		err := unix.SetsockoptInt(r.s.fd, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
		if err != nil && err != unix.ENOENT { // ENOENT: there was none
			return opError("set filter", os.NewSyscallError("setsockopt SO_DETACH_FILTER", err))
		}
		return nil
	}
	if len(prog) > MaxInstructions {
		return opError("set filter", fmt.Errorf("%d instructions: the kernel takes at most %d", len(prog), MaxInstructions))
	}
	insns := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		insns[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(insns)), Filter: &insns[0]}
	if err := unix.SetsockoptSockFprog(r.s.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return opError("set filter", os.NewSyscallError("setsockopt SO_ATTACH_FILTER", err))
	}
	return nil
}
