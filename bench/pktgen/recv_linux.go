//go:build linux

package pktgen

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The stamp receiver's ring: small slots (a stamped frame's headers and
// stamp fit in the first 100 bytes; the rest is cut), enough of them to
// hold a quarter second of 50 Kpps between two sweeps.
const (
	recvFrameSize  = 256
	recvBlockSize  = 1 << 16
	recvBlockCount = 64 // 64 × 256 slots = 16384 frames, 4 MiB
	// recvSweep is how long the reader sleeps when the ring is empty.
	// The kernel stamps each frame when it arrives, so the reader's
	// delay does not change a latency, only how full the ring gets.
	recvSweep = 2 * time.Millisecond
)

// Receiver collects the latencies of stamped frames arriving on one
// interface: an AF_PACKET socket (ETH_P_ALL) with a TPACKET_V2 receive ring,
// in whose slot header the kernel writes each frame's arrival time
// (tpacket_rcv: ktime_get_real, CLOCK_REALTIME, since no timestamping
// option is set). The latency of a frame is that time minus the stamp
// the generator wrote into it right before its sendto. An ETH_P_ALL
// socket is a tap: __netif_receive_skb_core delivers to taps before the
// interface's ingress hooks (tc, nftables netdev), so frames a sink drops
// at ingress are still seen (an ETH_P_IP socket would be served after
// them, and see nothing there).
//
// Latencies, Drops and Close may be called from any goroutine.
type Receiver struct {
	fd   int
	ring []byte
	stop chan struct{}
	done chan struct{}

	mu        sync.Mutex
	latencies []int64 // ns
	bad       uint64  // stamped frames with a latency below zero (clock stepped)
	closed    atomic.Bool
	sweeps    atomic.Uint64 // times the reader found the ring empty
}

// OpenReceiver opens a receiver on the interface with index ifindex. The
// caller must be in the interface's network namespace.
func OpenReceiver(ifindex int) (_ *Receiver, err error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, fmt.Errorf("pktgen: receiver: %w", os.NewSyscallError("socket", err))
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return nil, fmt.Errorf("pktgen: receiver: %w", os.NewSyscallError("setsockopt PACKET_VERSION", err))
	}
	req := unix.TpacketReq{
		Block_size: recvBlockSize, Block_nr: recvBlockCount,
		Frame_size: recvFrameSize, Frame_nr: recvBlockCount * recvBlockSize / recvFrameSize,
	}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("pktgen: receiver: %w", os.NewSyscallError("setsockopt PACKET_RX_RING", err))
	}
	ring, err := unix.Mmap(fd, 0, recvBlockSize*recvBlockCount, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("pktgen: receiver: %w", os.NewSyscallError("mmap", err))
	}
	// Bound last: frames arrive only from here on, into a ready ring.
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		unix.Munmap(ring)
		return nil, fmt.Errorf("pktgen: receiver: %w", os.NewSyscallError("bind", err))
	}
	r := &Receiver{fd: fd, ring: ring, stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (r *Receiver) loop() {
	defer close(r.done)
	const n = recvBlockCount * recvBlockSize / recvFrameSize
	slot := 0
	var batch []int64
	var bad uint64
	for {
		hdr := (*unix.Tpacket2Hdr)(unsafe.Pointer(&r.ring[slot*recvFrameSize]))
		status := (*uint32)(unsafe.Pointer(&hdr.Status))
		if atomic.LoadUint32(status)&unix.TP_STATUS_USER == 0 {
			if len(batch) > 0 || bad > 0 {
				r.mu.Lock()
				r.latencies = append(r.latencies, batch...)
				r.bad += bad
				r.mu.Unlock()
				batch, bad = batch[:0], 0
			}
			r.sweeps.Add(1)
			select {
			case <-r.stop:
				return
			case <-time.After(recvSweep):
			}
			continue
		}
		at := int64(hdr.Sec)*1e9 + int64(hdr.Nsec)
		off := slot*recvFrameSize + int(hdr.Mac)
		data := r.ring[off : off+int(hdr.Snaplen)]
		// Only frames arriving from the wire (not the sink's own).
		pktType := r.ring[slot*recvFrameSize+tpacket2HdrLen+sllPkttypeOffset]
		if stamp, ok := Stamp(data); ok && pktType != unix.PACKET_OUTGOING {
			if l := at - stamp; l >= 0 {
				batch = append(batch, l)
			} else {
				bad++
			}
		}
		atomic.StoreUint32(status, unix.TP_STATUS_KERNEL)
		if slot++; slot == n {
			slot = 0
		}
	}
}

// The sockaddr_ll the kernel writes after the slot header: TPACKET_ALIGN
// (sizeof(struct tpacket2_hdr)), and sll_pkttype's offset in it.
const (
	tpacket2HdrLen   = (int(unsafe.Sizeof(unix.Tpacket2Hdr{})) + 15) &^ 15
	sllPkttypeOffset = 10
)

// Latencies returns the latencies collected so far (nanoseconds, in
// arrival order) and the count of stamped frames that arrived before their
// stamp (a stepped clock), which are left out.
func (r *Receiver) Latencies() ([]int64, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.latencies...), r.bad
}

// Reset forgets the latencies collected so far.
func (r *Receiver) Reset() {
	r.mu.Lock()
	r.latencies, r.bad = r.latencies[:0], 0
	r.mu.Unlock()
}

// Drops returns the frames the kernel could not put in the ring since the
// last call (PACKET_STATISTICS, which resets on reading).
func (r *Receiver) Drops() (uint64, error) {
	st, err := unix.GetsockoptTpacketStats(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0, os.NewSyscallError("getsockopt PACKET_STATISTICS", err)
	}
	return uint64(st.Drops), nil
}

// Flush waits until the reader has emptied the ring twice more, so that
// every frame received before the call is counted, or until a second has
// passed.
func (r *Receiver) Flush() {
	want := r.sweeps.Load() + 2
	for deadline := time.Now().Add(time.Second); r.sweeps.Load() < want && time.Now().Before(deadline); {
		time.Sleep(recvSweep)
	}
}

// Close stops the reader and closes the socket.
func (r *Receiver) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	close(r.stop)
	<-r.done
	return errors.Join(unix.Munmap(r.ring), unix.Close(r.fd))
}
