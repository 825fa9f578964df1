//go:build linux

package afpacket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// v3Small is a V3 ring of two one-page blocks whose blocks are handed over
// only when full (the retire timeout is the longest the kernel takes), so
// that a test decides exactly which frames share a block.
var v3Small = &RXConfig{Version: V3, BlockSize: 4096, BlockCount: 2, RetireTimeout: maxRetireTimeout}

// v3PerBlock is how many frames of n bytes the kernel puts in a one-page V3
// block: each takes ALIGN(tp_mac + n, 8) bytes after the block descriptor,
// and the kernel opens a new block when the next frame would reach the end.
func v3PerBlock(n int) int {
	per := (92 + n + 7) &^ 7
	return (4096 - blockDescLen - 1) / per
}

func TestV3TXToRX(t *testing.T) {
	a, b := pair(t)
	tx := openTX(t, a, nil)
	rx := openRX(t, b, &RXConfig{Version: V3})
	if rx.Version() != V3 {
		t.Errorf("Version = %v, want v3", rx.Version())
	}
	if l := rx.Layout(); l.BlockSize != DefaultBlockSize || l.BlockCount != DefaultBlockCount {
		t.Errorf("Layout = %+v, want %d blocks of %d bytes", l, DefaultBlockCount, DefaultBlockSize)
	}
	rng := rand.New(rand.NewPCG(21, 21))
	tests := []struct {
		name    string
		dst     net.HardwareAddr
		size    int
		pktType uint8
	}{
		{"host 60", b.mac, 60, PacketHost},
		{"host 1514", b.mac, 1514, PacketHost},
		{"broadcast 60", net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 60, PacketBroadcast},
		{"multicast 1514", net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0x42}, 1514, PacketMulticast},
		{"other host 61", net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x99}, 61, PacketOtherHost},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := testFrame(tt.dst, a.mac, tt.size, uint32(i), rng)
			// The block is handed over by the retire timeout (1 ms).
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
			if got.VNet != (VNetHdr{}) {
				t.Errorf("VNet = %+v, want none", got.VNet)
			}
		})
	}
}

// TestV3VLAN: the stripped 802.1Q tag is reported as on V2.
func TestV3VLAN(t *testing.T) {
	a, b := pair(t)
	tx := openTX(t, a, nil)
	rx := openRX(t, b, &RXConfig{Version: V3})
	inner := testFrame(b.mac, a.mac, 100, 7, rand.New(rand.NewPCG(22, 22)))
	const tci = 5<<13 | 1<<12 | 4000 // priority 5, DEI, VLAN 4000
	tagged := make([]byte, 0, len(inner)+4)
	tagged = append(tagged, inner[:12]...)
	tagged = binary.BigEndian.AppendUint16(tagged, 0x88a8)
	tagged = binary.BigEndian.AppendUint16(tagged, tci)
	tagged = append(tagged, inner[12:]...)
	send(t, tx, VNetHdr{}, tagged)

	got := receive(t, rx, 1)[0]
	if want := StatusVLANValid | StatusVLANTPIDValid; got.Status&uint32(want) != uint32(want) {
		t.Fatalf("Status = %#x, want VLAN_VALID and VLAN_TPID_VALID", got.Status)
	}
	if got.VLANTCI != tci || got.VLANTPID != 0x88a8 {
		t.Errorf("VLANTCI, VLANTPID = %#x, %#x, want %#x, 0x88a8", got.VLANTCI, got.VLANTPID, tci)
	}
	if diff := cmp.Diff(inner, got.Data); diff != "" {
		t.Errorf("data without the tag (-want +got):\n%s", diff)
	}
}

// TestV3CsumNotReady sends a UDP frame whose checksum is left to offload:
// the receiving ring reports TP_STATUS_CSUMNOTREADY and the vnet header
// says where the checksum goes.
func TestV3CsumNotReady(t *testing.T) {
	a, b := pair(t)
	tx := openTX(t, a, nil)
	rx := openRX(t, b, &RXConfig{Version: V3})
	frame := udp4Frame(b.mac, a.mac, 1000, 2000, 64)
	vnet := VNetHdr{Flags: NeedsCsum, CsumStart: 34, CsumOffset: 6}
	send(t, tx, vnet, frame)
	var got received
	frames := make([]Frame, 1)
	timer := time.AfterFunc(recvTimeout, func() { rx.Close() })
	defer timer.Stop()
	for got.Data == nil {
		// The link carries nothing else (quietNS), but be sure.
		if _, err := rx.Receive(frames); err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if f := frames[0]; bytes.Equal(f.Data[12:14], frame[12:14]) {
			got = received{Data: bytes.Clone(f.Data), Len: f.Len, VNet: f.VNet, Status: f.Status}
		}
		rx.Release()
	}
	if got.Status&StatusCsumNotReady == 0 {
		t.Errorf("Status = %#x, want CSUMNOTREADY", got.Status)
	}
	if got.VNet.Flags&NeedsCsum == 0 || got.VNet.CsumStart != 34 || got.VNet.CsumOffset != 6 {
		t.Errorf("VNet = %+v, want NeedsCsum at 34+6", got.VNet)
	}
	if !bytes.Equal(got.Data, frame) {
		t.Error("data differs from the frame sent")
	}
}

// TestV3Truncated: a frame longer than a block can hold is cut at the end
// of the block and reported (Len > len(Data)).
func TestV3Truncated(t *testing.T) {
	a, b := pair(t)
	a.ns.MustRun(t, "ip", "link", "set", "eth0", "mtu", "9000")
	b.ns.MustRun(t, "ip", "link", "set", "eth0", "mtu", "9000")
	tx := openTX(t, a, &TXConfig{FrameSize: 16384, FrameCount: 4})
	rx := openRX(t, b, &RXConfig{Version: V3, BlockSize: 4096, BlockCount: 4})
	frame := testFrame(b.mac, a.mac, 8000, 1, rand.New(rand.NewPCG(23, 23)))
	small := testFrame(b.mac, a.mac, 100, 2, rand.New(rand.NewPCG(24, 24)))
	send(t, tx, VNetHdr{}, frame, small)
	got := receive(t, rx, 2)
	if got[0].Len != 8000 {
		t.Fatalf("Len = %d, want 8000", got[0].Len)
	}
	// The frame starts at tp_mac 92 of its header, which starts right
	// after the block descriptor, and ends with the block.
	if want := 4096 - blockDescLen - 92; len(got[0].Data) != want {
		t.Fatalf("len(Data) = %d, want %d", len(got[0].Data), want)
	}
	if !bytes.Equal(got[0].Data, frame[:len(got[0].Data)]) {
		t.Fatal("truncated data is not a prefix of the frame")
	}
	if !bytes.Equal(got[1].Data, small) || got[1].Len != len(small) {
		t.Fatal("the frame after the truncated one is not whole")
	}
	if MaxV3Overhead < blockDescLen+92 {
		t.Errorf("MaxV3Overhead = %d, below what an Ethernet frame needs", MaxV3Overhead)
	}
}

// TestV3Blocks overfills a ring of two blocks: the frames that fit arrive in
// order, the others are dropped (the kernel freezes the ring while user
// space holds every block), and a block goes back to the kernel only when
// every one of its frames has been released.
func TestV3Blocks(t *testing.T) {
	a, b := pair(t)
	tx := openTX(t, a, nil)
	rx := openRX(t, b, v3Small)
	const size = 200
	per := v3PerBlock(size)
	rng := rand.New(rand.NewPCG(25, 25))
	var frames [][]byte
	for i := range 3 * per {
		frames = append(frames, testFrame(b.mac, a.mac, size, uint32(i), rng))
	}
	send(t, tx, VNetHdr{}, frames...)
	total := uint64(len(frames))
	var packets, drops uint64
	deadline := time.Now().Add(recvTimeout)
	for packets < total && time.Now().Before(deadline) {
		var err error
		if packets, drops, err = rx.Stats(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	// Block 0 and block 1 are full; the frame that did not fit block 1
	// retired it and found block 0 still held: that frame and the rest
	// are dropped.
	if packets != total || drops != uint64(per) {
		t.Fatalf("Stats = %d packets, %d drops, want %d, %d", packets, drops, total, per)
	}

	blockHeld := func(i int) bool {
		return atomic.LoadUint32(blockStatus(rx.s.ring, rx.s.offs[i]))&unix.TP_STATUS_USER != 0
	}
	// Hand the two blocks out in pieces that straddle the boundary:
	// 5 frames, then per frames (the rest of block 0 and the start of
	// block 1), then everything else.
	got := make([]Frame, 3*per)
	seq := 0
	take := func(max, want int) {
		t.Helper()
		n, err := rx.Receive(got[:max])
		if err != nil || n != want {
			t.Fatalf("Receive(%d) = %d, %v, want %d", max, n, err, want)
		}
		for _, g := range got[:n] {
			if !bytes.Equal(g.Data, frames[seq]) {
				t.Fatalf("frame %d is not the %d-th frame sent", seq, seq)
			}
			seq++
		}
	}
	take(5, 5)
	rx.Release()
	if !blockHeld(0) || !blockHeld(1) {
		t.Fatal("a block went back before all its frames were released")
	}
	take(per, per)
	rx.Release()
	if blockHeld(0) {
		t.Error("block 0 still held after all its frames were released")
	}
	if !blockHeld(1) {
		t.Error("block 1 went back with frames still to hand out")
	}
	// The rest of block 1, and no frame twice: a Receive with room for
	// more stops at the end of what the kernel handed over.
	take(len(got), per-5)
	rx.Release()
	if blockHeld(1) {
		t.Error("block 1 still held after all its frames were released")
	}

	// The kernel uses the blocks again: a full block's worth plus one
	// more frame (which retires it) arrive, in order.
	frames, seq = frames[:0], 0
	for i := range per + 1 {
		frames = append(frames, testFrame(b.mac, a.mac, size, uint32(1000+i), rng))
	}
	send(t, tx, VNetHdr{}, frames...)
	take(len(got), per)
	rx.Release()
}

// TestV3ReceiveReleasesFirst: a Receive that finds the frames of the
// previous one not released releases them first, as on V2, and the kernel
// refills the block it gets back.
func TestV3ReceiveReleasesFirst(t *testing.T) {
	a, b := pair(t)
	tx := openTX(t, a, nil)
	rx := openRX(t, b, v3Small)
	per := v3PerBlock(60)
	rng := rand.New(rand.NewPCG(26, 26))
	var frames [][]byte
	// Two full blocks and one more frame, which retires the second and
	// is dropped: block 0 is still held.
	for i := range 2*per + 1 {
		frames = append(frames, testFrame(b.mac, a.mac, 60, uint32(i), rng))
	}
	send(t, tx, VNetHdr{}, frames...)
	held := func(i int) bool {
		return atomic.LoadUint32(blockStatus(rx.s.ring, rx.s.offs[i]))&unix.TP_STATUS_USER != 0
	}
	got := make([]Frame, 2*per)
	for blk := range 2 {
		n, err := rx.Receive(got[:per])
		if err != nil || n != per {
			t.Fatalf("Receive of block %d = %d, %v, want %d frames", blk, n, err, per)
		}
		for i, g := range got[:n] {
			if !bytes.Equal(g.Data, frames[blk*per+i]) {
				t.Fatalf("frame %d of block %d is not the %d-th frame sent", i, blk, blk*per+i)
			}
		}
		if held(0) != (blk == 0) || !held(1) {
			t.Fatalf("after Receive %d: block 0 held %v, block 1 held %v", blk, held(0), held(1))
		}
	}
	rx.Release()
	if _, drops, err := rx.Stats(); err != nil || drops != 1 {
		t.Errorf("Stats: %d drops, %v, want 1", drops, err)
	}
	// The kernel thaws and refills block 0.
	var more [][]byte
	for i := range per + 1 {
		more = append(more, testFrame(b.mac, a.mac, 60, uint32(100+i), rng))
	}
	send(t, tx, VNetHdr{}, more...)
	for i, g := range receive(t, rx, per) {
		if !bytes.Equal(g.Data, more[i]) {
			t.Fatalf("refilled block: frame %d is not the %d-th frame sent", i, i)
		}
	}
}

func TestV3CloseWhileHolding(t *testing.T) {
	a, b := pair(t)
	tx := openTX(t, a, nil)
	rx := openRX(t, b, &RXConfig{Version: V3})
	frame := testFrame(b.mac, a.mac, 1000, 1, rand.New(rand.NewPCG(27, 27)))
	send(t, tx, VNetHdr{}, frame)
	frames := make([]Frame, 4)
	n, err := rx.Receive(frames)
	if err != nil || n != 1 {
		t.Fatalf("Receive = %d, %v", n, err)
	}
	if err := rx.Close(); err != nil {
		t.Fatal(err)
	}
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

// TestV3Allocs: Receive and Release of a V3 ring do not allocate, whether
// frames are ready or Receive waits for a block.
func TestV3Allocs(t *testing.T) {
	a, b := pair(t)
	tx := openTX(t, a, &TXConfig{FrameSize: 2048, FrameCount: 512})
	rx := openRX(t, b, &RXConfig{Version: V3, BlockSize: 64 << 10, BlockCount: 4})
	frame := testFrame(b.mac, a.mac, 60, 0, rand.New(rand.NewPCG(28, 28)))
	const runs = 100
	for range runs + 1 {
		send(t, tx, VNetHdr{}, frame)
	}
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
}

// TestV3Config: a configuration that mixes the versions' settings, or that
// the kernel would refuse, is rejected with a clear error.
func TestV3Config(t *testing.T) {
	_, b := pair(t)
	for _, cfg := range []RXConfig{
		{Version: V3, FrameSize: 2048},
		{Version: V3, FrameCount: 64},
		{BlockSize: 1 << 20},
		{Version: V2, RetireTimeout: time.Millisecond},
		{Version: V3, BlockSize: 3 << 10},
		{Version: V3, BlockSize: 8 << 20},
		{Version: V3, BlockCount: -1},
		{Version: V3, RetireTimeout: 500 * time.Microsecond},
		{Version: V3, RetireTimeout: 1500 * time.Microsecond},
		{Version: 4},
	} {
		err := b.ns.Do(func() error {
			rx, err := OpenRX(b.index, &cfg)
			if err == nil {
				rx.Close()
			}
			return err
		})
		if !errors.Is(err, errConfig) {
			t.Errorf("OpenRX(%+v) = %v, want a configuration error", cfg, err)
		}
	}
}

// TestV3Forwarder runs bulk TCP through the forwarder of forward_linux_test
// on V3 receive rings at default veth offloads: the 64 KiB super-frames
// must cross whole.
func TestV3Forwarder(t *testing.T) {
	l := newLab(t, &RXConfig{Version: V3}, nil)
	if _, err := bulkTCP(l.a.ns, l.b.ns, l.bIP, 4<<20, 60*time.Second); err != nil {
		t.Fatalf("%v (A→B: %v; B→A: %v)", err, l.ab, l.ba)
	}
	l.stop()
	for _, err := range l.forwardErrs {
		t.Errorf("forwarder: %v", err)
	}
	t.Logf("A→B: %v", l.ab)
	if f := l.ab; f.gso.Load() == 0 || f.big.Load() == 0 || f.csum.Load() == 0 || f.truncated.Load() != 0 {
		t.Errorf("A→B: want GSO super-frames with partial checksums, none truncated: %v", f)
	}
}
