//go:build linux

package afpacket

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// polledFDs returns, for each descriptor this process has registered in
// one of its epoll instances (the Go runtime's poller among them), those
// instances' descriptors, from the "tfd:" lines of /proc/self/fdinfo.
func polledFDs(t *testing.T) map[int][]int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	polled := map[int][]int{}
	for _, e := range fds {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || target != "anon_inode:[eventpoll]" {
			continue
		}
		ep, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			// tfd:        7 events: 80002019 data: ...
			fields := strings.Fields(line)
			if len(fields) >= 2 && fields[0] == "tfd:" {
				if fd, err := strconv.Atoi(fields[1]); err == nil {
					polled[fd] = append(polled[fd], ep)
				}
			}
		}
	}
	return polled
}

// TestRingsOutOfPoller checks that no socket of a ring (receive, transmit
// and the transmit ring's direct companion) is in the runtime's poller
// (unpolled), while an ordinary socket is; and that a parked Receive has
// the receive socket in its own epoll set only while it waits.
func TestRingsOutOfPoller(t *testing.T) {
	a, b := pair(t)
	tx := openTX(t, a, &TXConfig{DirectMin: 1000})
	rx := openRX(t, b, nil)
	// An ordinary socket, for the poller to hold: nothing is sent to it.
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	rc, err := udp.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var udpFD int
	if err := rc.Control(func(fd uintptr) { udpFD = int(fd) }); err != nil {
		t.Fatal(err)
	}
	polled := polledFDs(t)
	if len(polled[udpFD]) == 0 {
		t.Fatalf("the UDP socket (fd %d) is not in any epoll set (%v): the test cannot see the poller", udpFD, polled)
	}
	for what, fd := range map[string]int{"receive ring": rx.s.fd, "transmit ring": tx.s.fd, "direct": tx.direct.fd} {
		if fd < 0 {
			t.Fatalf("%s socket: fd %d", what, fd)
		}
		if len(polled[fd]) != 0 {
			t.Errorf("the %s socket (fd %d) is in epoll set %v while nothing waits on it: the poller's thread would wake at its every frame", what, fd, polled[fd])
		}
	}
	var waitFD int
	if err := rx.waitRC.Control(func(fd uintptr) { waitFD = int(fd) }); err != nil {
		t.Fatal(err)
	}
	// A Receive parked on the empty ring: the socket is in the RX's own
	// set (and only there), which is in the runtime's.
	got := make(chan int, 1)
	go func() {
		n, _ := rx.Receive(make([]Frame, 4))
		rx.Release()
		got <- n
	}()
	deadline := time.Now().Add(recvTimeout)
	for {
		polled = polledFDs(t)
		if sets := polled[rx.s.fd]; len(sets) == 1 && sets[0] == waitFD {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with a Receive waiting, the receive socket is in epoll sets %v, want [%d] (the RX's own)", polled[rx.s.fd], waitFD)
		}
		time.Sleep(time.Millisecond)
	}
	if len(polled[waitFD]) == 0 {
		t.Errorf("the RX's epoll instance (fd %d) is not in the runtime's poller", waitFD)
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
	select {
	case n := <-got:
		if n != 1 {
			t.Errorf("the parked Receive returned %d frames, want 1", n)
		}
	case <-time.After(recvTimeout):
		t.Fatal("the parked Receive did not return the frame")
	}
	if sets := polledFDs(t)[rx.s.fd]; len(sets) != 0 {
		t.Errorf("after the Receive, the receive socket is still in epoll sets %v", sets)
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
