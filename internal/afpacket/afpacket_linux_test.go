//go:build linux

package afpacket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/gvs-project/gvs/internal/nstest"
	"golang.org/x/sys/unix"
)

// testEtherType is the IEEE 802 local experimental EtherType: no stack on
// the receiving side does anything with it.
const testEtherType = 0x88b5

// recvTimeout bounds every wait for frames (a safety net, not a measurement).
const recvTimeout = 10 * time.Second

// link is one interface inside a test namespace.
type link struct {
	ns    *nstest.NS
	name  string
	index int
	mac   net.HardwareAddr
}

// quietNS is a namespace without IPv6, so that nothing but the test's own
// frames (no router solicitations, no MLD, no DAD) appears on its links.
func quietNS(t testing.TB, prefix string) *nstest.NS {
	t.Helper()
	ns := nstest.NewNS(t, prefix)
	ns.Sysctl(t, "net.ipv6.conf.all.disable_ipv6", "1")
	ns.Sysctl(t, "net.ipv6.conf.default.disable_ipv6", "1")
	return ns
}

func linkOf(t testing.TB, ns *nstest.NS, name string) link {
	t.Helper()
	l := link{ns: ns, name: name}
	if err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		l.index, l.mac = ifi.Index, ifi.HardwareAddr
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return l
}

// pair returns the two ends of a veth pair between two fresh namespaces.
func pair(t *testing.T) (a, b link) {
	t.Helper()
	nstest.Require(t)
	nsA, nsB := quietNS(t, "afa"), quietNS(t, "afb")
	nstest.Veth(t, nsA, "eth0", nsB, "eth0")
	return linkOf(t, nsA, "eth0"), linkOf(t, nsB, "eth0")
}

func openRX(t testing.TB, l link, cfg *RXConfig) *RX {
	t.Helper()
	var rx *RX
	if err := l.ns.Do(func() (err error) {
		rx, err = OpenRX(l.index, cfg)
		return err
	}); err != nil {
		t.Fatalf("OpenRX on %s in %s: %v", l.name, l.ns.Name, err)
	}
	t.Cleanup(func() { rx.Close() })
	return rx
}

func openTX(t testing.TB, l link, cfg *TXConfig) *TX {
	t.Helper()
	var tx *TX
	if err := l.ns.Do(func() (err error) {
		tx, err = OpenTX(l.index, cfg)
		return err
	}); err != nil {
		t.Fatalf("OpenTX on %s in %s: %v", l.name, l.ns.Name, err)
	}
	t.Cleanup(func() { tx.Close() })
	return tx
}

// testFrame builds an Ethernet frame of n bytes (n >= 20) with the test
// EtherType, a sequence number and random filler.
func testFrame(dst, src net.HardwareAddr, n int, seq uint32, rng *rand.Rand) []byte {
	b := make([]byte, n)
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], testEtherType)
	binary.BigEndian.PutUint32(b[14:18], seq)
	for i := 18; i < n; i++ {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// send queues frames with the given vnet header and flushes them.
func send(t testing.TB, tx *TX, vnet VNetHdr, frames ...[]byte) {
	t.Helper()
	for _, f := range frames {
		v, buf, ok := tx.Slot()
		if !ok {
			t.Fatal("TX ring full")
		}
		*v = vnet
		tx.Commit(copy(buf, f))
	}
	if err := tx.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// received is a copy of a Frame that outlives Release.
type received struct {
	Data     []byte
	Len      int
	VNet     VNetHdr
	PktType  uint8
	Status   uint32
	VLANTCI  uint16
	VLANTPID uint16
}

// receive collects n frames with the test EtherType (others are skipped),
// copying them out of the ring. It fails the test after recvTimeout.
func receive(t testing.TB, rx *RX, n int) []received {
	t.Helper()
	return receiveType(t, rx, n, testEtherType)
}

// receiveType is receive for frames of another EtherType.
func receiveType(t testing.TB, rx *RX, n int, etherType uint16) []received {
	t.Helper()
	var (
		mu       sync.Mutex
		timedOut bool
	)
	timer := time.AfterFunc(recvTimeout, func() {
		mu.Lock()
		timedOut = true
		mu.Unlock()
		rx.Close()
	})
	defer timer.Stop()
	frames := make([]Frame, 16)
	var out []received
	for len(out) < n {
		// Never take more than wanted: the rest stays in the ring.
		m, err := rx.Receive(frames[:min(len(frames), n-len(out))])
		if err != nil {
			mu.Lock()
			defer mu.Unlock()
			if timedOut {
				t.Fatalf("timed out with %d of %d frames", len(out), n)
			}
			t.Fatalf("Receive: %v", err)
		}
		for _, f := range frames[:m] {
			d := f.Data
			if f.Status&StatusVLANValid == 0 && (len(d) < 14 || binary.BigEndian.Uint16(d[12:14]) != etherType) {
				continue
			}
			out = append(out, received{
				Data: bytes.Clone(d), Len: f.Len, VNet: f.VNet, PktType: f.PktType,
				Status: f.Status, VLANTCI: f.VLANTCI, VLANTPID: f.VLANTPID,
			})
		}
		rx.Release()
	}
	return out
}

func TestTXToRX(t *testing.T) {
	a, b := pair(t)
	tx := openTX(t, a, nil)
	rx := openRX(t, b, nil)
	rng := rand.New(rand.NewPCG(1, 1))

	tests := []struct {
		name    string
		dst     net.HardwareAddr
		size    int
		pktType uint8
	}{
		{"host 60", b.mac, 60, PacketHost},
		{"host 1514", b.mac, 1514, PacketHost},
		{"broadcast 60", net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 60, PacketBroadcast},
		{"broadcast 1514", net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 1514, PacketBroadcast},
		{"multicast 60", net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0x42}, 60, PacketMulticast},
		{"other host 1514", net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x99}, 1514, PacketOtherHost},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := testFrame(tt.dst, a.mac, tt.size, uint32(i), rng)
			send(t, tx, VNetHdr{}, frame)
			got := receive(t, rx, 1)[0]
			if diff := cmp.Diff(frame, got.Data); diff != "" {
				t.Errorf("data (-sent +received):\n%s", diff)
			}
			if got.Len != tt.size {
				t.Errorf("Len = %d, want %d", got.Len, tt.size)
			}
			if got.PktType != tt.pktType {
				t.Errorf("PktType = %d, want %d", got.PktType, tt.pktType)
			}
			if got.Status&StatusUser == 0 || got.Status&(StatusCsumNotReady|StatusVLANValid|StatusGSOTCP) != 0 {
				t.Errorf("Status = %#x", got.Status)
			}
			if got.VNet.IsGSO() || got.VNet.Flags&NeedsCsum != 0 {
				t.Errorf("VNet = %+v, want no GSO and no partial checksum", got.VNet)
			}
		})
	}
}

// TestVLAN sends a frame with an 802.1Q tag: the receiving kernel strips
// the tag and the frame reports it.
func TestVLAN(t *testing.T) {
	a, b := pair(t)
	tx := openTX(t, a, nil)
	rx := openRX(t, b, nil)
	inner := testFrame(b.mac, a.mac, 100, 7, rand.New(rand.NewPCG(2, 2)))
	const tci = 3<<13 | 42 // priority 3, VLAN 42
	tagged := make([]byte, 0, len(inner)+4)
	tagged = append(tagged, inner[:12]...)
	tagged = binary.BigEndian.AppendUint16(tagged, 0x8100)
	tagged = binary.BigEndian.AppendUint16(tagged, tci)
	tagged = append(tagged, inner[12:]...)
	send(t, tx, VNetHdr{}, tagged)

	got := receive(t, rx, 1)[0]
	if want := StatusVLANValid | StatusVLANTPIDValid; got.Status&uint32(want) != uint32(want) {
		t.Fatalf("Status = %#x, want VLAN_VALID and VLAN_TPID_VALID", got.Status)
	}
	if got.VLANTCI != tci || got.VLANTPID != 0x8100 {
		t.Errorf("VLANTCI, VLANTPID = %#x, %#x, want %#x, 0x8100", got.VLANTCI, got.VLANTPID, tci)
	}
	if diff := cmp.Diff(inner, got.Data); diff != "" {
		t.Errorf("data without the tag (-want +got):\n%s", diff)
	}
	if got.Len != len(inner) {
		t.Errorf("Len = %d, want %d", got.Len, len(inner))
	}
}

func TestTruncated(t *testing.T) {
	a, b := pair(t)
	tx := openTX(t, a, nil)
	rx := openRX(t, b, &RXConfig{FrameSize: 256, FrameCount: 16})
	frame := testFrame(b.mac, a.mac, 1514, 1, rand.New(rand.NewPCG(3, 3)))
	send(t, tx, VNetHdr{}, frame)
	got := receive(t, rx, 1)[0]
	if got.Len != 1514 {
		t.Fatalf("Len = %d, want 1514", got.Len)
	}
	// An Ethernet frame starts at tp_mac 76; the slot ends at 256.
	if len(got.Data) != 256-76 {
		t.Fatalf("len(Data) = %d, want %d", len(got.Data), 256-76)
	}
	if !bytes.Equal(got.Data, frame[:len(got.Data)]) {
		t.Fatal("truncated data is not a prefix of the frame")
	}
}

// TestIgnoreOutgoing checks that an RX ring does not see what a TX ring on
// the same interface sends, while the peer does.
func TestIgnoreOutgoing(t *testing.T) {
	a, b := pair(t)
	tx := openTX(t, a, nil)
	rxA := openRX(t, a, nil)
	rxB := openRX(t, b, nil)
	rng := rand.New(rand.NewPCG(4, 4))
	for i := range 5 {
		send(t, tx, VNetHdr{}, testFrame(b.mac, a.mac, 60, uint32(i), rng))
	}
	receive(t, rxB, 5)
	packets, drops, err := rxA.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if packets != 0 || drops != 0 {
		t.Fatalf("RX on the sending interface saw %d frames (%d dropped), want none", packets, drops)
	}
}

// TestStats overfills a small ring: the frames that fit arrive in order,
// the others are counted as drops, and Stats accumulates across reads.
func TestStats(t *testing.T) {
	a, b := pair(t)
	tx := openTX(t, a, nil)
	rx := openRX(t, b, &RXConfig{FrameSize: 2048, FrameCount: 8})
	if got := rx.Layout().FrameCount; got != 8 {
		t.Fatalf("FrameCount = %d, want 8", got)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	var frames [][]byte
	for i := range 20 {
		frames = append(frames, testFrame(b.mac, a.mac, 200, uint32(i), rng))
	}
	send(t, tx, VNetHdr{}, frames...)

	// The frames cross the veth in a softirq, maybe on another CPU:
	// poll until all 20 are accounted for.
	var packets, drops uint64
	deadline := time.Now().Add(recvTimeout)
	for packets < 20 && time.Now().Before(deadline) {
		var err error
		if packets, drops, err = rx.Stats(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if packets != 20 || drops != 12 {
		t.Fatalf("Stats = %d packets, %d drops, want 20, 12", packets, drops)
	}
	// Every slot is ready: one Receive with room for more hands out the
	// whole ring once, in order, and not a slot twice.
	got := make([]Frame, 32)
	n, err := rx.Receive(got)
	if err != nil || n != 8 {
		t.Fatalf("Receive on a full ring of 8 = %d, %v", n, err)
	}
	for i, g := range got[:n] {
		if !bytes.Equal(g.Data, frames[i]) {
			t.Fatalf("frame %d is not the %d-th frame sent", i, i)
		}
	}
	rx.Release()
	// Counters accumulate: the kernel reset them, RX did not.
	if p, d, err := rx.Stats(); err != nil || p != 20 || d != 12 {
		t.Fatalf("second Stats = %d, %d, %v, want 20, 12", p, d, err)
	}
}

func TestCloseUnblocksReceive(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  *RXConfig
	}{
		{"sleeping", nil},
		// Closed while Receive is still looking at the ring.
		{"busy polling", &RXConfig{BusyPoll: 5 * time.Second}},
		{"in poll", &RXConfig{ThreadWait: true}},
		{"busy polling, then in poll", &RXConfig{BusyPoll: 5 * time.Second, ThreadWait: true}},
	} {
		t.Run(tc.name, func(t *testing.T) { testCloseUnblocksReceive(t, tc.cfg) })
	}
}

func testCloseUnblocksReceive(t *testing.T, cfg *RXConfig) {
	_, b := pair(t)
	rx := openRX(t, b, cfg)
	errc := make(chan error, 1)
	go func() {
		_, err := rx.Receive(make([]Frame, 8))
		errc <- err
	}()
	// Give the goroutine a chance to block; the test is valid either way.
	time.Sleep(20 * time.Millisecond)
	if err := rx.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Receive after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(recvTimeout):
		t.Fatal("Close did not unblock Receive")
	}
	if _, err := rx.Receive(make([]Frame, 8)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Receive: %v, want net.ErrClosed", err)
	}
	if _, _, err := rx.Stats(); err == nil {
		t.Error("Stats after Close succeeded")
	}
	if err := rx.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCloseLeavesNoDescriptor opens and closes receive rings with either
// wait: every descriptor that opening a ring added (the socket, and the
// eventfd of the thread wait) is closed by Close. It compares the
// descriptors themselves, not their count: other tests' leftovers closed by
// the garbage collector's finalizers meanwhile (which once made the count
// drop by two) must not matter.
func TestCloseLeavesNoDescriptor(t *testing.T) {
	_, b := pair(t)
	// fds maps each open descriptor to what it refers to.
	fds := func() map[string]string {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		m := make(map[string]string, len(ents))
		for _, e := range ents {
			if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
				m[e.Name()] = target
			}
		}
		return m
	}
	for i := range 10 {
		threadWait := i%2 == 0
		before := fds()
		var rx *RX
		if err := b.ns.Do(func() (err error) {
			rx, err = OpenRX(b.index, &RXConfig{ThreadWait: threadWait})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		opened := make(map[string]string)
		for fd, target := range fds() {
			if before[fd] != target {
				opened[fd] = target
			}
		}
		if len(opened) == 0 {
			t.Fatalf("ring %d: no descriptor appeared in /proc/self/fd on open", i)
		}
		if err := rx.Close(); err != nil {
			t.Fatal(err)
		}
		after := fds()
		for fd, target := range opened {
			if after[fd] == target {
				t.Errorf("ring %d (thread wait %v): descriptor %s (%s) still open after Close", i, threadWait, fd, target)
			}
		}
	}
}

// TestCloseWhileHolding closes an RX while the consumer holds frames: the
// frames stay readable until Release (the ring is unmapped then, not before).
func TestCloseWhileHolding(t *testing.T) {
	a, b := pair(t)
	tx := openTX(t, a, nil)
	rx := openRX(t, b, nil)
	frame := testFrame(b.mac, a.mac, 1000, 1, rand.New(rand.NewPCG(6, 6)))
	send(t, tx, VNetHdr{}, frame)
	frames := make([]Frame, 4)
	n, err := rx.Receive(frames)
	if err != nil || n != 1 {
		t.Fatalf("Receive = %d, %v", n, err)
	}
	if err := rx.Close(); err != nil {
		t.Fatal(err)
	}
	// Would fault if Close had unmapped the ring.
	if !bytes.Equal(frames[0].Data, frame) {
		t.Fatal("frame changed after Close")
	}
	rx.Release()
	if mapped(rx.s.ring) {
		t.Error("ring still mapped after Close and Release")
	}
	if _, err := rx.Receive(frames); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Receive after Close: %v", err)
	}
}

// mapped reports whether the first page of b is mapped, using mincore(2),
// which fails with ENOMEM for unmapped memory.
func mapped(b []byte) bool {
	vec := make([]byte, 1)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(unix.Getpagesize()), uintptr(unsafe.Pointer(&vec[0])))
	return errno == 0
}

func TestTXSlotFull(t *testing.T) {
	a, _ := pair(t)
	tx := openTX(t, a, &TXConfig{FrameSize: 2048, FrameCount: 4})
	// Commit without flushing: the ring fills, and Slot flushes to make
	// room, so it never reports full while the link is up.
	for i := range 20 {
		_, buf, ok := tx.Slot()
		if !ok {
			t.Fatalf("Slot %d: ring full", i)
		}
		tx.Commit(copy(buf, testFrame(net.HardwareAddr{2, 0, 0, 0, 0, 1}, a.mac, 60, uint32(i), rand.New(rand.NewPCG(7, 7)))))
	}
	if err := tx.Flush(); err != nil {
		t.Fatal(err)
	}
	// With the link down the kernel takes nothing: the ring stays full,
	// Slot reports it, and Flush reports the reason.
	a.ns.MustRun(t, "ip", "link", "set", "eth0", "down")
	full := false
	for range 10 {
		_, buf, ok := tx.Slot()
		if !ok {
			full = true
			break
		}
		tx.Commit(copy(buf, make([]byte, 60)))
	}
	if !full {
		t.Fatal("Slot never reported a full ring on a down link")
	}
	if err := tx.Flush(); !errors.Is(err, unix.ENETDOWN) {
		t.Errorf("Flush on a down link: %v, want ENETDOWN", err)
	}
	if !tx.Pending() {
		t.Error("Pending = false with frames stuck in the ring")
	}
}

func TestCommitPanics(t *testing.T) {
	a, _ := pair(t)
	tx := openTX(t, a, &TXConfig{FrameSize: 2048, FrameCount: 2})
	mustPanic(t, "Commit without Slot", func() { tx.Commit(60) })
	_, buf, ok := tx.Slot()
	if !ok {
		t.Fatal("Slot")
	}
	mustPanic(t, "Commit too long", func() { tx.Commit(len(buf) + 1) })
	if len(buf) != tx.MaxFrame() || tx.MaxFrame() != 2048-32-10 {
		t.Errorf("len(buf) = %d, MaxFrame = %d, want %d", len(buf), tx.MaxFrame(), 2048-32-10)
	}
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}

// TestFanout puts two RX rings in one PACKET_FANOUT hash group: together
// they see every frame, each sees some.
func TestFanout(t *testing.T) {
	a, b := pair(t)
	tx := openTX(t, a, nil)
	fo := &Fanout{ID: 0x4242, Mode: FanoutHash}
	rx1 := openRX(t, b, &RXConfig{FrameSize: 2048, FrameCount: 256, Fanout: fo})
	rx2 := openRX(t, b, &RXConfig{FrameSize: 2048, FrameCount: 256, Fanout: fo})
	const flows = 64
	for i := range flows {
		send(t, tx, VNetHdr{}, udp4Frame(b.mac, a.mac, 1000+uint16(i), 9, 18))
	}
	var p1, p2 uint64
	deadline := time.Now().Add(recvTimeout)
	for p1+p2 < flows && time.Now().Before(deadline) {
		var err error
		if p1, _, err = rx1.Stats(); err != nil {
			t.Fatal(err)
		}
		if p2, _, err = rx2.Stats(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if p1+p2 != flows || p1 == 0 || p2 == 0 {
		t.Fatalf("fanout members saw %d and %d frames of %d flows", p1, p2, flows)
	}
	if err := b.ns.Do(func() error {
		_, err := OpenRX(b.index, &RXConfig{Fanout: &Fanout{ID: 1}})
		return err
	}); !errors.Is(err, errConfig) {
		t.Errorf("OpenRX with a zero fanout mode: %v, want errConfig", err)
	}
}

// udp4Frame builds an Ethernet/IPv4/UDP frame from 192.168.99.1:sport to
// 192.168.99.2:dport with n bytes of payload and a valid IP checksum.
func udp4Frame(dst, src net.HardwareAddr, sport, dport uint16, n int) []byte {
	b := make([]byte, 14+20+8+n)
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], 0x0800)
	ip := b[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(20+8+n))
	ip[8] = 64 // TTL
	ip[9] = unix.IPPROTO_UDP
	copy(ip[12:16], []byte{192, 168, 99, 1})
	copy(ip[16:20], []byte{192, 168, 99, 2})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:12], ^uint16(sum))
	udp := b[34:42]
	binary.BigEndian.PutUint16(udp[0:2], sport)
	binary.BigEndian.PutUint16(udp[2:4], dport)
	binary.BigEndian.PutUint16(udp[4:6], uint16(8+n))
	return b
}

// TestAllocs proves that the per-frame and per-batch calls do not
// allocate, with either way of waiting.
func TestAllocs(t *testing.T) {
	t.Run("netpoller", func(t *testing.T) { testAllocs(t, false) })
	t.Run("thread wait", func(t *testing.T) { testAllocs(t, true) })
}

func testAllocs(t *testing.T, threadWait bool) {
	a, b := pair(t)
	tx := openTX(t, a, &TXConfig{FrameSize: 2048, FrameCount: 512})
	// Busy polling for 1 ms: the Receive that waits below first looks
	// at the ring, then sleeps in the netpoller (or poll(2)).
	rx := openRX(t, b, &RXConfig{FrameSize: 2048, FrameCount: 512, BusyPoll: time.Millisecond, ThreadWait: threadWait})
	frame := testFrame(b.mac, a.mac, 60, 0, rand.New(rand.NewPCG(8, 8)))
	const runs = 100

	// AllocsPerRun calls the function once more than runs, to warm up.
	txAllocs := testing.AllocsPerRun(runs, func() {
		v, buf, ok := tx.Slot()
		if !ok {
			panic("ring full")
		}
		*v = VNetHdr{}
		tx.Commit(copy(buf, frame))
		if err := tx.Flush(); err != nil {
			panic(err)
		}
	})
	if txAllocs != 0 {
		t.Errorf("Slot+Commit+Flush: %v allocations per frame, want 0", txAllocs)
	}
	// Every frame above reaches rx (which has room for all of them), so
	// each Receive below finds one ready, or waits for it in the netpoller.
	frames := make([]Frame, 1)
	rxAllocs := testing.AllocsPerRun(runs, func() {
		n, err := rx.Receive(frames)
		if err != nil || n != 1 {
			panic(err)
		}
		rx.Release()
	})
	if rxAllocs != 0 {
		t.Errorf("Receive+Release: %v allocations per frame, want 0", rxAllocs)
	}
	// Waiting in the netpoller does not allocate either. The sender
	// owns tx from here on.
	sent := make(chan struct{})
	defer func() { <-sent }()
	go func() {
		defer close(sent)
		for range 3 {
			time.Sleep(5 * time.Millisecond)
			if v, buf, ok := tx.Slot(); ok {
				*v = VNetHdr{}
				tx.Commit(copy(buf, frame))
				_ = tx.Flush()
			}
		}
	}()
	waitAllocs := testing.AllocsPerRun(2, func() {
		if n, err := rx.Receive(frames); err != nil || n != 1 {
			panic(err)
		}
		rx.Release()
	})
	if waitAllocs != 0 {
		t.Errorf("Receive that waits: %v allocations, want 0", waitAllocs)
	}
	<-sent
	// After the receive tests: these frames need no receiving.
	dtx := openTX(t, a, &TXConfig{FrameSize: 2048, FrameCount: 4, DirectMin: 60})
	var dv VNetHdr
	directAllocs := testing.AllocsPerRun(runs, func() {
		if err := dtx.SendDirect(&dv, frame); err != nil {
			panic(err)
		}
	})
	if directAllocs != 0 {
		t.Errorf("SendDirect: %v allocations per frame, want 0", directAllocs)
	}
}

// TestLinkFlap takes the receiving link down and up under a blocked
// Receive: the socket gets ENETDOWN from the kernel, which must neither
// make Receive fail or spin, nor stop frames after the link is back.
func TestLinkFlap(t *testing.T) {
	t.Run("netpoller", func(t *testing.T) { testLinkFlap(t, nil) })
	t.Run("thread wait", func(t *testing.T) { testLinkFlap(t, &RXConfig{ThreadWait: true}) })
}

func testLinkFlap(t *testing.T, cfg *RXConfig) {
	a, b := pair(t)
	tx := openTX(t, a, nil)
	rx := openRX(t, b, cfg)
	type result struct {
		got   []received
		calls int
		err   error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		frames := make([]Frame, 8)
		for len(r.got) < 3 {
			r.calls++
			n, err := rx.Receive(frames)
			if err != nil {
				r.err = err
				break
			}
			for _, f := range frames[:n] {
				r.got = append(r.got, received{Data: bytes.Clone(f.Data)})
			}
			rx.Release()
		}
		done <- r
	}()
	time.Sleep(20 * time.Millisecond)
	b.ns.MustRun(t, "ip", "link", "set", "eth0", "down")
	time.Sleep(20 * time.Millisecond)
	b.ns.MustRun(t, "ip", "link", "set", "eth0", "up")
	rng := rand.New(rand.NewPCG(9, 9))
	var sent [][]byte
	for i := range 3 {
		f := testFrame(b.mac, a.mac, 100, uint32(i), rng)
		sent = append(sent, f)
	}
	// The veth carrier comes back asynchronously: resend until the
	// receiver has its frames (at most recvTimeout).
	deadline := time.After(recvTimeout)
	for {
		send(t, tx, VNetHdr{}, sent...)
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatalf("Receive after %d calls: %v", r.calls, r.err)
			}
			// Each poll(2) is a wake-up: the link's events and the
			// frames. Without the socket's error taken, poll
			// returns at once for as long as the link is down
			// (some 20,000 times here).
			if rx.polls > 100 {
				t.Errorf("%d calls of poll(2) for %d Receives: it spun on the socket's error", rx.polls, r.calls)
			}
			for i, g := range r.got {
				seq := binary.BigEndian.Uint32(g.Data[14:18])
				if seq >= 3 || !bytes.Equal(g.Data, sent[seq]) {
					t.Fatalf("frame %d after the flap is not a test frame", i)
				}
			}
			return
		case <-deadline:
			rx.Close()
			t.Fatal("no frames after the link came back")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestOpenUnderLoad opens an RX ring while frames pour in: every frame it
// hands out is whole and in order (no stale or half-written slot).
func TestOpenUnderLoad(t *testing.T) {
	a, b := pair(t)
	tx := openTX(t, a, &TXConfig{FrameSize: 2048, FrameCount: 512})
	const size = 300
	frameFor := func(seq uint32) []byte {
		return testFrame(b.mac, a.mac, size, seq, rand.New(rand.NewPCG(uint64(seq), 10)))
	}
	stop := make(chan struct{})
	flooding := make(chan struct{})
	go func() {
		defer close(flooding)
		// Bounded: 100k frames or until stopped.
		for seq := uint32(0); seq < 100_000; {
			select {
			case <-stop:
				return
			default:
			}
			for range 32 {
				v, buf, ok := tx.Slot()
				if !ok {
					break
				}
				*v = VNetHdr{}
				tx.Commit(copy(buf, frameFor(seq)))
				seq++
			}
			_ = tx.Flush()
		}
	}()
	defer func() { close(stop); <-flooding }()
	time.Sleep(10 * time.Millisecond)
	rx := openRX(t, b, &RXConfig{FrameSize: 2048, FrameCount: 64})
	got := receive(t, rx, 200)
	prev := int64(-1)
	for i, g := range got {
		seq := binary.BigEndian.Uint32(g.Data[14:18])
		if g.Len != size || !bytes.Equal(g.Data, frameFor(seq)) {
			t.Fatalf("frame %d (seq %d) is not the frame sent", i, seq)
		}
		if int64(seq) <= prev {
			t.Fatalf("frame %d: seq %d after %d", i, seq, prev)
		}
		prev = int64(seq)
	}
}

// TestTXEgressDrop drops some frames with a tc egress filter: the kernel
// reports the drop (ENOBUFS) and would retry the dropped frame forever,
// holding back every frame after it; TX must drop it and send the rest.
func TestTXEgressDrop(t *testing.T) {
	a, b := pair(t)
	const dropType = testEtherType + 1
	// HTB sends the drop EtherType to a class whose queue holds nothing
	// (pfifo limit 0), everything else to a normal class.
	for _, cmd := range [][]string{
		{"tc", "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "10"},
		{"tc", "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:10", "htb", "rate", "1gbit"},
		{"tc", "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:20", "htb", "rate", "1gbit"},
		{"tc", "qdisc", "add", "dev", "eth0", "parent", "1:20", "pfifo", "limit", "0"},
		{"tc", "filter", "add", "dev", "eth0", "parent", "1:", "protocol", fmt.Sprintf("%#x", dropType),
			"prio", "1", "u32", "match", "u32", "0", "0", "flowid", "1:20"},
	} {
		a.ns.MustRun(t, cmd...)
	}
	tx := openTX(t, a, nil)
	rx := openRX(t, b, nil)
	rng := rand.New(rand.NewPCG(11, 11))
	var good [][]byte
	for i := range 6 {
		f := testFrame(b.mac, a.mac, 100, uint32(i), rng)
		if i%2 == 1 {
			binary.BigEndian.PutUint16(f[12:14], dropType)
		} else {
			good = append(good, f)
		}
		v, buf, ok := tx.Slot()
		if !ok {
			t.Fatal("Slot")
		}
		*v = VNetHdr{}
		tx.Commit(copy(buf, f))
	}
	if err := tx.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if tx.Pending() {
		t.Error("frames still pending after Flush")
	}
	got := receive(t, rx, len(good))
	for i, g := range got {
		if !bytes.Equal(g.Data, good[i]) {
			t.Fatalf("frame %d is not good frame %d", i, i)
		}
	}
	if d := tx.Drops(); d != 3 {
		t.Errorf("Drops = %d, want 3", d)
	}
}

// TestCommitLinear checks the slot Commit writes: tp_len counts the vnet
// header, and a small frame that is not a super-frame gets hdr_len = its
// length (copied whole into the sk_buff), while a super-frame keeps its own.
func TestCommitLinear(t *testing.T) {
	a, _ := pair(t)
	tx := openTX(t, a, &TXConfig{FrameSize: 4096, FrameCount: 4})
	tests := []struct {
		name    string
		vnet    VNetHdr
		n       int
		wantHdr uint16
	}{
		{"small frame", VNetHdr{}, 60, 60},
		{"small frame, partial checksum", VNetHdr{Flags: NeedsCsum, CsumStart: 34, CsumOffset: 16}, 100, 100},
		{"frame above linearMax", VNetHdr{}, linearMax + 1, 0},
		{"super-frame", VNetHdr{Flags: NeedsCsum, GSOType: GSOTCPv4, HdrLen: 66, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}, 3000, 66},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			off := tx.s.offs[tx.head]
			v, _, ok := tx.Slot()
			if !ok {
				t.Fatal("Slot")
			}
			*v = tt.vnet
			tx.Commit(tt.n)
			var got VNetHdr
			got.Decode(tx.s.ring[off+txDataOff:])
			want := tt.vnet
			want.HdrLen = tt.wantHdr
			if got != want {
				t.Errorf("vnet in slot = %+v, want %+v", got, want)
			}
			if l := header(tx.s.ring, off).Len; l != uint32(VNetHdrLen+tt.n) {
				t.Errorf("tp_len = %d, want %d", l, VNetHdrLen+tt.n)
			}
			if s := *status(tx.s.ring, off); s != unix.TP_STATUS_SEND_REQUEST {
				t.Errorf("tp_status = %#x, want SEND_REQUEST", s)
			}
		})
	}
}

// TestSendDirect sends frames both ways, through the ring and with
// SendDirect: they arrive whole and in the order they were handed over
// (SendDirect flushes what the ring holds first), a GSO super-frame keeps
// its vnet header, frames under DirectMin are refused, and a sent frame's
// memory is not referenced after.
func TestSendDirect(t *testing.T) {
	a, b := pair(t)
	for _, l := range []link{a, b} {
		l.ns.MustRun(t, "ip", "link", "set", "eth0", "mtu", "9000")
	}
	tx := openTX(t, a, &TXConfig{DirectMin: 1000})
	rx := openRX(t, b, nil)
	if got := tx.DirectMin(); got != 1000 {
		t.Fatalf("DirectMin() = %d, want 1000", got)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	small := testFrame(b.mac, a.mac, 200, 1, rng)
	big := testFrame(b.mac, a.mac, 8000, 2, rng)
	v, buf, ok := tx.Slot()
	if !ok {
		t.Fatal("Slot")
	}
	*v = VNetHdr{}
	tx.Commit(copy(buf, small))
	if err := tx.SendDirect(&VNetHdr{}, big); err != nil {
		t.Fatalf("SendDirect: %v", err)
	}
	if tx.direct.iov[1].Base != nil {
		t.Error("SendDirect kept a pointer to the frame")
	}
	got := receive(t, rx, 2)
	if !bytes.Equal(got[0].Data, small) || !bytes.Equal(got[1].Data, big) {
		t.Errorf("received frames of %d and %d bytes (seq %x, %x), want the 200-byte frame then the 8000-byte one",
			len(got[0].Data), len(got[1].Data), got[0].Data[14:18], got[1].Data[14:18])
	}

	if err := tx.SendDirect(&VNetHdr{}, small); err == nil {
		t.Error("SendDirect of a frame under DirectMin: no error")
	}

	// A TCP super-frame: three segments' worth in one frame, its
	// checksum left to the kernel.
	const payload = 3 * 1448
	sf := make([]byte, 14+20+20+payload)
	copy(sf[0:6], b.mac)
	copy(sf[6:12], a.mac)
	binary.BigEndian.PutUint16(sf[12:14], 0x0800)
	ip := sf[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(sf)-14))
	copy(ip[12:16], []byte{192, 168, 0, 1})
	copy(ip[16:20], []byte{192, 168, 0, 2})
	binary.BigEndian.PutUint16(ip[10:12], ^ipSum(ip))
	tcp := sf[34:54]
	binary.BigEndian.PutUint16(tcp[0:2], 40000)
	binary.BigEndian.PutUint16(tcp[2:4], 80)
	tcp[12], tcp[13] = 5<<4, 0x18 // PSH ACK
	for i := 54; i < len(sf); i++ {
		sf[i] = byte(rng.Uint32())
	}
	gso := VNetHdr{Flags: NeedsCsum, GSOType: GSOTCPv4, HdrLen: 54, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
	if err := tx.SendDirect(&gso, sf); err != nil {
		t.Fatalf("SendDirect of a super-frame: %v", err)
	}
	g := receiveType(t, rx, 1, 0x0800)[0]
	if !bytes.Equal(g.Data[54:], sf[54:]) || g.Len != len(sf) {
		t.Errorf("super-frame: received %d bytes (Len %d), want %d with the same payload", len(g.Data), g.Len, len(sf))
	}
	if g.VNet.GSOType != GSOTCPv4 || g.VNet.GSOSize != 1448 {
		t.Errorf("super-frame arrived with vnet %+v, want TCPv4 GSO of 1448", g.VNet)
	}
}

// ipSum is the ones' complement sum of an IPv4 header (checksum field 0).
func ipSum(h []byte) uint16 {
	var s uint32
	for i := 0; i < len(h); i += 2 {
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// TestBusyPoll: a Receive that keeps looking at the ring (BusyPoll) takes
// a frame that comes while it looks, and one that comes after it gave up
// and slept. (TestAllocs receives with BusyPoll too.)
func TestBusyPoll(t *testing.T) {
	a, b := pair(t)
	tx := openTX(t, a, nil)
	rx := openRX(t, b, &RXConfig{BusyPoll: time.Second})
	frame := testFrame(b.mac, a.mac, 60, 7, rand.New(rand.NewPCG(9, 9)))
	for _, delay := range []time.Duration{10 * time.Millisecond, 1500 * time.Millisecond} {
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			time.Sleep(delay)
			send(t, tx, VNetHdr{}, frame)
		}()
		got := receive(t, rx, 1)[0]
		<-sent
		if !bytes.Equal(got.Data, frame) {
			t.Errorf("frame sent after %v: received %x", delay, got.Data)
		}
	}
}
