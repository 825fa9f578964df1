package afpacket

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// directSocket is a transmit ring's ring-less companion (TXConfig.DirectMin):
// a SOCK_RAW socket bound to the same interface with protocol 0, whose
// sendmsg (packet_snd) copies a frame into a new sk_buff of its own.
//
// Why a second way out: tpacket_snd builds a frame's sk_buff from pages of
// the ring and marks them as user memory, and a device that passes the
// frame on into a stack (veth, loopback) copies those pages once more
// before it lets the slot go (skb_copy_ubufs). A forwarder copying a 64 KB
// super-frame from its receive slot into a transmit slot, for the kernel
// to copy it again, moves it twice; sent from the receive slot with
// sendmsg, it moves once. For small frames the ring's batching wins.
type directSocket struct {
	fd  int // out of the runtime's poller (unpolled)
	min int

	// SendDirect's sendmsg arguments, kept here so that it does not
	// allocate.
	vnet [VNetHdrLen]byte
	iov  [2]unix.Iovec
	msg  unix.Msghdr
}

func openDirect(ifindex, min int, qdiscBypass bool) (*directSocket, error) {
	const op = "open tx direct"
	conn, rc, err := openSocket(op, ifindex, func(fd int) error {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			return os.NewSyscallError("setsockopt PACKET_VNET_HDR", err)
		}
		if qdiscBypass {
			if err := setQdiscBypass(fd); err != nil {
				return err
			}
		}
		// Room for a few dozen super-frames in flight.
		setSndbuf(fd, 4<<20)
		return nil
	})
	if err != nil {
		return nil, err
	}
	fd, err := unpolled(op, conn, rc)
	if err != nil {
		return nil, err
	}
	d := &directSocket{fd: fd, min: min}
	d.iov[0].Base = &d.vnet[0]
	d.iov[0].SetLen(VNetHdrLen)
	d.msg.Iov = &d.iov[0]
	d.msg.SetIovlen(2)
	return d, nil
}

// DirectMin is the smallest frame SendDirect takes, 0 if the ring was
// opened without TXConfig.DirectMin.
func (t *TX) DirectMin() int {
	if t.direct == nil {
		return 0
	}
	return t.direct.min
}

// SendDirect sends frame (an Ethernet frame of at least DirectMin bytes)
// with vnet at once, through the ring's ring-less companion socket: the
// kernel copies it before SendDirect returns, so frame may be anywhere,
// a receive ring's slot included, and is the caller's again after. Frames
// committed to the ring are flushed first, so that frames leave in the
// order they were handed over. A frame the kernel refuses (its send
// buffer full, the driver's queue full) is dropped and counted in Drops,
// and the error says why. SendDirect does not allocate.
func (t *TX) SendDirect(vnet *VNetHdr, frame []byte) error {
	d := t.direct
	if t.closed || d == nil {
		return t.errClosed
	}
	if len(frame) < d.min {
		return opError("send direct", unix.EINVAL)
	}
	if t.queued > 0 {
		_ = t.Flush() // an error shows again in the caller's own Flush
	}
	vnet.Encode(d.vnet[:])
	d.iov[1].Base = &frame[0]
	d.iov[1].SetLen(len(frame))
	// A raw system call, as Flush's: it never sleeps (MSG_DONTWAIT) and
	// the sysmon must not hand the worker's P away meanwhile.
	_, _, errno := unix.RawSyscall(unix.SYS_SENDMSG, uintptr(d.fd), uintptr(unsafe.Pointer(&d.msg)), unix.MSG_DONTWAIT)
	d.iov[1].Base = nil // no reference to the frame's memory is kept
	if errno != 0 {
		t.drops.Add(1)
		return opError("send direct", os.NewSyscallError("sendmsg", errno))
	}
	return nil
}
