//go:build linux

package afpacket

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gvs-project/gvs/internal/nstest"
)

// forwarder is the smallest useful data path: every frame from rx goes out
// of tx with its MACs rewritten and its vnet header unchanged, so that GSO
// super-frames and frames with partial checksums cross user space whole
// and the kernel segments and checksums them on the way out.
type forwarder struct {
	rx       *RX
	tx       *TX
	dst, src [6]byte // the real peer's MAC; our egress MAC
	batch    int

	frames, bytes     atomic.Uint64
	gso, big, csum    atomic.Uint64 // super-frames, frames > 1514 bytes, partial checksums
	truncated, txFull atomic.Uint64
	flushErrs         atomic.Uint64
}

func newForwarder(rx *RX, tx *TX, dst, src net.HardwareAddr) *forwarder {
	f := &forwarder{rx: rx, tx: tx, batch: 64}
	copy(f.dst[:], dst)
	copy(f.src[:], src)
	return f
}

// run forwards until rx is closed.
func (f *forwarder) run() error {
	frames := make([]Frame, f.batch)
	for {
		n, err := f.rx.Receive(frames)
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		for i := range n {
			fr := &frames[i]
			if fr.Len > len(fr.Data) || len(fr.Data) < 14 {
				f.truncated.Add(1)
				continue
			}
			f.frames.Add(1)
			f.bytes.Add(uint64(fr.Len))
			if fr.VNet.IsGSO() {
				f.gso.Add(1)
			}
			if fr.Len > 1514 {
				f.big.Add(1)
			}
			if fr.Status&StatusCsumNotReady != 0 && fr.VNet.Flags&NeedsCsum != 0 {
				f.csum.Add(1)
			}
			vnet, buf, ok := f.tx.Slot()
			if !ok || len(buf) < len(fr.Data) {
				f.txFull.Add(1)
				continue
			}
			m := copy(buf, fr.Data)
			copy(buf[0:6], f.dst[:])
			copy(buf[6:12], f.src[:])
			*vnet = fr.VNet
			f.tx.Commit(m)
		}
		if err := f.tx.Flush(); err != nil {
			f.flushErrs.Add(1)
		}
		f.rx.Release()
	}
}

func (f *forwarder) String() string {
	return fmt.Sprintf("%d frames (%d bytes), %d GSO, %d > 1514 bytes, %d partial checksum, %d truncated, %d TX full, %d flush errors",
		f.frames.Load(), f.bytes.Load(), f.gso.Load(), f.big.Load(), f.csum.Load(), f.truncated.Load(), f.txFull.Load(), f.flushErrs.Load())
}

// lab is A --veth-- F --veth-- B: A (192.168.77.1/24) and B
// (192.168.77.2/24) share a subnet, and static neighbour entries send their
// frames for each other to F's MACs. F has no addresses and does not
// forward; only the forwarders under test carry traffic between A and B.
type lab struct {
	a, b        link // A's and B's eth0
	fa, fb      link // F's ends: towards A, towards B
	aIP, bIP    string
	ab, ba      *forwarder
	wg          sync.WaitGroup
	errMu       sync.Mutex
	forwardErrs []error
}

func newLab(t testing.TB, rxCfg *RXConfig, txCfg *TXConfig) *lab {
	t.Helper()
	nstest.Require(t)
	nsA, nsF, nsB := quietNS(t, "fwa"), quietNS(t, "fwf"), quietNS(t, "fwb")
	// A new namespace inherits IPv4 settings from the host's: make sure
	// F's kernel does not route.
	nsF.Sysctl(t, "net.ipv4.ip_forward", "0")
	nstest.Veth(t, nsA, "eth0", nsF, "etha")
	nstest.Veth(t, nsF, "ethb", nsB, "eth0")
	l := &lab{
		a: linkOf(t, nsA, "eth0"), b: linkOf(t, nsB, "eth0"),
		fa: linkOf(t, nsF, "etha"), fb: linkOf(t, nsF, "ethb"),
		aIP: "192.168.77.1", bIP: "192.168.77.2",
	}
	if out := nsF.MustRun(t, "cat", "/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(out) != "0" {
		t.Fatalf("ip_forward in F = %q", out)
	}
	nsA.MustRun(t, "ip", "addr", "add", l.aIP+"/24", "dev", "eth0")
	nsB.MustRun(t, "ip", "addr", "add", l.bIP+"/24", "dev", "eth0")
	nsA.MustRun(t, "ip", "neigh", "replace", l.bIP, "lladdr", l.fa.mac.String(), "dev", "eth0", "nud", "permanent")
	nsB.MustRun(t, "ip", "neigh", "replace", l.aIP, "lladdr", l.fb.mac.String(), "dev", "eth0", "nud", "permanent")

	l.ab = newForwarder(openRX(t, l.fa, rxCfg), openTX(t, l.fb, txCfg), l.b.mac, l.fb.mac)
	l.ba = newForwarder(openRX(t, l.fb, rxCfg), openTX(t, l.fa, txCfg), l.a.mac, l.fa.mac)
	for _, f := range []*forwarder{l.ab, l.ba} {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			if err := f.run(); err != nil {
				l.errMu.Lock()
				l.forwardErrs = append(l.forwardErrs, err)
				l.errMu.Unlock()
			}
		}()
	}
	// Stop the forwarders before the rings are closed by openRX's and
	// openTX's cleanups (cleanups run last in, first out).
	t.Cleanup(l.stop)
	return l
}

// stop closes the RX rings, which ends the forwarders, and waits for them.
func (l *lab) stop() {
	l.ab.rx.Close()
	l.ba.rx.Close()
	l.wg.Wait()
}

// TestForwarder runs real kernel TCP between A and B through a user-space
// forwarder on TPACKET rings in F, at default veth offloads: 4 MiB up, 4 MiB
// down, verified by SHA-256. The forwarder must see GSO super-frames and
// partial checksums, and pass them on unchanged for the kernel to finish.
func TestForwarder(t *testing.T) {
	l := newLab(t, nil, nil)
	const size = 4 << 20
	deadline := time.Now().Add(60 * time.Second)

	var ln net.Listener
	if err := l.b.ns.Do(func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(l.bIP, "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	up := randomBytes(size, 1)
	down := randomBytes(size, 2)
	type result struct {
		sum [32]byte
		err error
	}
	server := make(chan result, 1)
	go func() {
		// B: read the upload to EOF, then send the download.
		c, err := ln.Accept()
		if err != nil {
			server <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil {
			server <- result{err: fmt.Errorf("B reading the upload: %w", err)}
			return
		}
		var r result
		copy(r.sum[:], h.Sum(nil))
		if _, err := c.Write(down); err != nil {
			r.err = fmt.Errorf("B sending the download: %w", err)
		}
		server <- r
	}()

	var c net.Conn
	if err := l.a.ns.Do(func() (err error) {
		c, err = net.DialTimeout("tcp4", ln.Addr().String(), 10*time.Second)
		return err
	}); err != nil {
		t.Fatalf("A dialing B through the forwarder: %v (A→B: %v; B→A: %v)", err, l.ab, l.ba)
	}
	defer c.Close()
	c.SetDeadline(deadline)
	if _, err := c.Write(up); err != nil {
		t.Fatalf("A sending the upload: %v (A→B: %v)", err, l.ab)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		t.Fatalf("A reading the download after %d bytes: %v (B→A: %v)", n, err, l.ba)
	}
	r := <-server
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.sum != sha256.Sum256(up) {
		t.Error("upload corrupted: SHA-256 differs")
	}
	if !bytes.Equal(h.Sum(nil), sumOf(down)) {
		t.Errorf("download corrupted: SHA-256 differs (%d bytes received)", n)
	}

	l.stop()
	l.errMu.Lock()
	for _, err := range l.forwardErrs {
		t.Errorf("forwarder: %v", err)
	}
	l.errMu.Unlock()
	t.Logf("A→B: %v", l.ab)
	t.Logf("B→A: %v", l.ba)
	// The point: super-frames and partial checksums in both directions
	// (the upload's data goes A→B, the download's B→A).
	for dir, f := range map[string]*forwarder{"A→B": l.ab, "B→A": l.ba} {
		if f.gso.Load() == 0 || f.big.Load() == 0 {
			t.Errorf("%s: no GSO frames larger than 1514 bytes seen: %v", dir, f)
		}
		if f.csum.Load() == 0 {
			t.Errorf("%s: no frames with CSUMNOTREADY and NeedsCsum seen: %v", dir, f)
		}
		if f.truncated.Load() != 0 {
			t.Errorf("%s: truncated frames: %v", dir, f)
		}
	}
}

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	return b
}

func sumOf(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// BenchmarkForwarder floods 64-byte UDP frames from A (through a TX ring,
// b.N of them, in batches) and counts what reaches B (through an RX ring);
// the metric is the forwarder's throughput in frames per second. Lost
// frames (ring overflows anywhere on the way) are reported as loss.
func BenchmarkForwarder(b *testing.B) {
	small := &RXConfig{FrameSize: 2048, FrameCount: 4096}
	l := newLab(b, small, &TXConfig{FrameSize: 2048, FrameCount: 4096})
	tx := openTX(b, l.a, &TXConfig{FrameSize: 2048, FrameCount: 4096})
	sink := openRX(b, l.b, small)
	// 64 bytes on the wire without the FCS: 14 + 20 + 8 + 18 = 60.
	frame := udp4Frame(l.fa.mac, l.a.mac, 4000, 9, 18)
	copy(frame[14+12:14+20], []byte{192, 168, 77, 1, 192, 168, 77, 2})
	fixIPv4Checksum(frame[14:34])

	var got atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		frames := make([]Frame, 256)
		for {
			n, err := sink.Receive(frames)
			if err != nil {
				return
			}
			got.Add(uint64(n))
			sink.Release()
		}
	}()

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	const batch = 64
	limit := start.Add(time.Minute) // a safety net, not a measurement
	for sent := 0; sent < b.N; {
		if time.Now().After(limit) {
			b.Fatalf("sent only %d of %d frames in a minute", sent, b.N)
		}
		for i := 0; i < batch && sent < b.N; i++ {
			v, buf, ok := tx.Slot()
			if !ok {
				continue // counted as loss below
			}
			*v = VNetHdr{}
			tx.Commit(copy(buf, frame))
			sent++
		}
		if err := tx.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	// Wait (bounded) for the last frames to drain through F.
	for deadline := time.Now().Add(2 * time.Second); got.Load() < uint64(b.N) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	n := got.Load()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "pps")
	b.ReportMetric(float64(uint64(b.N)-min(n, uint64(b.N)))/float64(b.N), "loss")
	_, fDrops, _ := l.ab.rx.Stats()
	_, sDrops, _ := sink.Stats()
	b.Logf("N=%d got=%d F rx drops=%d sink drops=%d fwd: %v", b.N, n, fDrops, sDrops, l.ab)
	sink.Close()
	<-done
}

func fixIPv4Checksum(ip []byte) {
	ip[10], ip[11] = 0, 0
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:12], ^uint16(sum))
}
