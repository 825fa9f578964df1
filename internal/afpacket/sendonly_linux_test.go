//go:build linux

package afpacket

import (
	"bufio"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
)

// polledFDs returns the descriptors this process has registered in any of
// its epoll instances (the Go runtime's poller among them), from the
// "tfd:" lines of /proc/self/fdinfo.
func polledFDs(t *testing.T) map[int]bool {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	polled := map[int]bool{}
	for _, e := range fds {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || target != "anon_inode:[eventpoll]" {
			continue
		}
		f, err := os.Open("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// tfd:        7 events: 80002019 data: ...
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 && fields[0] == "tfd:" {
				if fd, err := strconv.Atoi(fields[1]); err == nil {
					polled[fd] = true
				}
			}
		}
		f.Close()
	}
	return polled
}

// TestSendSocketsOutOfPoller checks that a transmit ring's socket and its
// direct companion are not in the runtime's poller (sendOnly), while a
// receive ring's socket, which the worker waits on, is.
func TestSendSocketsOutOfPoller(t *testing.T) {
	a, b := pair(t)
	tx := openTX(t, a, &TXConfig{DirectMin: 1000})
	rx := openRX(t, b, nil)
	var rxFD int
	if err := rx.s.rc.Control(func(fd uintptr) { rxFD = int(fd) }); err != nil {
		t.Fatal(err)
	}
	polled := polledFDs(t)
	if !polled[rxFD] {
		t.Fatalf("the receive socket (fd %d) is not in any epoll set (%v): the test cannot see the poller", rxFD, polled)
	}
	for what, fd := range map[string]int{"transmit ring": tx.s.fd, "direct": tx.direct.fd} {
		if fd < 0 {
			t.Fatalf("%s socket: fd %d", what, fd)
		}
		if polled[fd] {
			t.Errorf("the %s socket (fd %d) is in an epoll set: each frame the kernel frees wakes the poller", what, fd)
		}
	}
	// Still a working socket: a frame goes out.
	v, buf, ok := tx.Slot()
	if !ok {
		t.Fatal("Slot")
	}
	*v = VNetHdr{}
	f := testFrame(b.mac, a.mac, 100, 1, rand.New(rand.NewPCG(3, 3)))
	tx.Commit(copy(buf, f))
	if err := tx.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, rx, 1); string(got[0].Data) != string(f) {
		t.Error("the frame received is not the frame sent")
	}
	if err := tx.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestSlotWaitsForFreedSlot checks the wait of a full ring (the socket is
// out of the poller: Slot looks at the slot again and again): a slow qdisc holds frames,
// and their slots, for a while. Without a wait Slot reports the ring full;
// with one it waits until the kernel frees the slot.
func TestSlotWaitsForFreedSlot(t *testing.T) {
	a, b := pair(t)
	// tbf lets a 1000-byte frame out every 80 ms or so and queues the
	// rest; each queued frame keeps its slot until it leaves.
	a.ns.MustRun(t, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "100kbit", "burst", "1600", "limit", "100000")
	rng := rand.New(rand.NewPCG(5, 5))
	fill := func(tx *TX, n int) int {
		for i := range n {
			v, buf, ok := tx.Slot()
			if !ok {
				return i
			}
			*v = VNetHdr{}
			tx.Commit(copy(buf, testFrame(b.mac, a.mac, 1000, uint32(i), rng)))
			if err := tx.Flush(); err != nil {
				t.Fatalf("Flush: %v", err)
			}
		}
		return n
	}
	noWait := openTX(t, a, &TXConfig{FrameSize: 2048, FrameCount: 4, FullWait: -1})
	if n := fill(noWait, 8); n == 8 {
		t.Fatal("8 frames into a 4-slot ring behind tbf without a full ring: the qdisc held no slot")
	}
	noWait.Close()
	wait := openTX(t, a, &TXConfig{FrameSize: 2048, FrameCount: 4, FullWait: recvTimeout})
	if n := fill(wait, 8); n != 8 {
		t.Fatalf("Slot reported the ring full after %d frames, with %v to wait for a slot", n, recvTimeout)
	}
}
