//go:build linux

package afpacket

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gvs-project/gvs/internal/nstest"
)

// The ring comparison is a measurement, not a test: it runs only when
// asked for, as root, and asserts nothing about time.
//
//	go test ./internal/afpacket -run TestRingCompare -ringcompare -v
var (
	ringCompare        = flag.Bool("ringcompare", false, "run TestRingCompare: measure TPACKET_V2 against TPACKET_V3 receive rings (root, a few minutes)")
	ringCompareRepeats = flag.Int("ringcompare.repeats", 3, "TestRingCompare: repeats of every point (medians are reported)")
	ringCompareDur     = flag.Duration("ringcompare.dur", 3*time.Second, "TestRingCompare: length of a throughput or latency point")
)

// bulkTCP sends size bytes over kernel TCP from a to bIP (in b), through
// whatever forwards between them, and returns the time from connect to the
// receiver's EOF. The receiver counts the bytes; every byte must arrive.
func bulkTCP(a, b *nstest.NS, bIP string, size int, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	var ln net.Listener
	if err := b.Do(func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(bIP, "0"))
		return err
	}); err != nil {
		return 0, err
	}
	defer ln.Close()
	type result struct {
		n   int64
		err error
	}
	server := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			server <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		n, err := io.Copy(io.Discard, c)
		server <- result{n, err}
	}()
	var c net.Conn
	start := time.Now()
	if err := a.Do(func() (err error) {
		c, err = net.DialTimeout("tcp4", ln.Addr().String(), 10*time.Second)
		return err
	}); err != nil {
		return 0, fmt.Errorf("dialing through the forwarder: %w", err)
	}
	defer c.Close()
	c.SetDeadline(deadline)
	buf := randomBytes(1<<20, 3)
	for left := size; left > 0; left -= len(buf) {
		if _, err := c.Write(buf[:min(left, len(buf))]); err != nil {
			return 0, fmt.Errorf("sending with %d bytes left: %w", left, err)
		}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return 0, err
	}
	r := <-server
	elapsed := time.Since(start)
	if r.err != nil {
		return 0, fmt.Errorf("receiving after %d bytes: %w", r.n, r.err)
	}
	if r.n != int64(size) {
		return 0, fmt.Errorf("received %d bytes of %d", r.n, size)
	}
	return elapsed, nil
}

// onCPU runs fn on an OS thread pinned to cpu and waits for it. The thread
// is never unlocked: it exits with the goroutine instead of going back to
// the scheduler with a CPU mask nobody else asked for.
func onCPU(cpu int, fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			errc <- os.NewSyscallError("sched_setaffinity", err)
			return
		}
		fn()
		errc <- nil
	}()
	return <-errc
}

// cmpLab is gen --veth-- F --veth-- sink, like the forwarder lab but with
// benchmark addresses (198.18.0.0/15): gen 198.18.0.1 and sink 198.18.0.2
// share a subnet, and static neighbour entries send their frames to F's
// MACs. F has no addresses and does not route; UDP to port 9 is dropped at
// the ingress of F's and the sink's interfaces (tc), after packet sockets
// have seen it, so that neither kernel stack spends time on the flood.
type cmpLab struct {
	gen, sink  link // gen's and sink's eth0
	fg, fs     link // F's ends: towards gen, towards sink
	genIP      string
	sinkIP     string
	genTX      *TX
	udp        []byte // the flood's frame: gen → sink, UDP port 9, 60 bytes
	base       time.Time
	timestamps atomic.Bool
}

const cmpPort = 9

func newCmpLab(t *testing.T) *cmpLab {
	t.Helper()
	nstest.Require(t)
	nsG, nsF, nsS := quietNS(t, "rcg"), quietNS(t, "rcf"), quietNS(t, "rcs")
	nsF.Sysctl(t, "net.ipv4.ip_forward", "0")
	nstest.Veth(t, nsG, "eth0", nsF, "ethg")
	nstest.Veth(t, nsF, "eths", nsS, "eth0")
	l := &cmpLab{
		gen: linkOf(t, nsG, "eth0"), sink: linkOf(t, nsS, "eth0"),
		fg: linkOf(t, nsF, "ethg"), fs: linkOf(t, nsF, "eths"),
		genIP: "198.18.0.1", sinkIP: "198.18.0.2", base: time.Now(),
	}
	nsG.MustRun(t, "ip", "addr", "add", l.genIP+"/24", "dev", "eth0")
	nsS.MustRun(t, "ip", "addr", "add", l.sinkIP+"/24", "dev", "eth0")
	nsG.MustRun(t, "ip", "neigh", "replace", l.sinkIP, "lladdr", l.fg.mac.String(), "dev", "eth0", "nud", "permanent")
	nsS.MustRun(t, "ip", "neigh", "replace", l.genIP, "lladdr", l.fs.mac.String(), "dev", "eth0", "nud", "permanent")
	for _, d := range []link{l.fg, l.fs, l.sink} {
		d.ns.MustRun(t, "tc", "qdisc", "add", "dev", d.name, "ingress")
		d.ns.MustRun(t, "tc", "filter", "add", "dev", d.name, "ingress", "protocol", "ip", "prio", "1", "u32",
			"match", "ip", "protocol", "17", "0xff", "match", "ip", "dport", strconv.Itoa(cmpPort), "0xffff", "action", "drop")
	}
	l.genTX = openTX(t, l.gen, &TXConfig{FrameSize: 2048, FrameCount: 2048, QdiscBypass: true})
	f := udp4Frame(l.fg.mac, l.gen.mac, 4000, cmpPort, 18)
	copy(f[14+12:14+20], []byte{198, 18, 0, 1, 198, 18, 0, 2})
	fixIPv4Checksum(f[14:34])
	l.udp = f
	return l
}

// cmpVariant is one receive ring configuration under comparison.
type cmpVariant struct {
	name string
	cfg  RXConfig
}

// mem is the ring's kernel memory in MiB.
func (v cmpVariant) mem() float64 {
	var l Layout
	if v.cfg.Version == V3 {
		l, _ = newLayout3(v.cfg.BlockSize, v.cfg.BlockCount, os.Getpagesize())
	} else {
		l, _ = newLayout(v.cfg.FrameSize, v.cfg.FrameCount, os.Getpagesize())
	}
	return float64(l.Size()) / (1 << 20)
}

// cmpFwd is the minimal DR-style forwarder: frames from rx go out of tx
// with their MACs rewritten and their vnet header unchanged, one Flush per
// batch, then Release. Its thread is pinned to a CPU.
type cmpFwd struct {
	rx       *RX
	tx       *TX
	dst, src [6]byte

	frames, truncated, txFull, gso atomic.Uint64
	maxLen                         atomic.Int64
	done                           chan error
}

// startFwd opens a receive ring of the variant on in and a default transmit
// ring on out, both in F, and forwards on CPU cpu until stop.
func startFwd(t *testing.T, in, out link, dst net.HardwareAddr, cfg RXConfig, cpu int) *cmpFwd {
	t.Helper()
	f := &cmpFwd{done: make(chan error, 1)}
	copy(f.dst[:], dst)
	copy(f.src[:], out.mac)
	if err := in.ns.Do(func() (err error) {
		if f.rx, err = OpenRX(in.index, &cfg); err != nil {
			return err
		}
		f.tx, err = OpenTX(out.index, &TXConfig{QdiscBypass: true})
		return err
	}); err != nil {
		if f.rx != nil {
			f.rx.Close()
		}
		t.Fatal(err)
	}
	go func() { f.done <- onCPU(cpu, f.run) }()
	return f
}

func (f *cmpFwd) run() {
	frames := make([]Frame, 64)
	for {
		n, err := f.rx.Receive(frames)
		if err != nil {
			return
		}
		maxLen := 0
		for i := range n {
			fr := &frames[i]
			if fr.Len > len(fr.Data) || len(fr.Data) < 14 {
				f.truncated.Add(1)
				continue
			}
			maxLen = max(maxLen, fr.Len)
			if fr.VNet.IsGSO() {
				f.gso.Add(1)
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
		f.frames.Add(uint64(n))
		if int64(maxLen) > f.maxLen.Load() {
			f.maxLen.Store(int64(maxLen))
		}
		_ = f.tx.Flush()
		f.rx.Release()
	}
}

// stop ends the forwarder and closes its rings, returning its RX ring's
// counters.
func (f *cmpFwd) stop() (packets, drops uint64) {
	packets, drops, _ = f.rx.Stats()
	f.rx.Close()
	<-f.done
	f.tx.Close()
	return packets, drops
}

// genRun sends the flood's frame from gen, on CPU cpu: n frames (0: no
// limit) for at most d, at rate frames per second (0: as fast as the ring
// and the kernel take them). With stamps, each frame carries its sequence
// number and the time it was written (nanoseconds since the lab's base,
// monotonic) in its payload.
func (l *cmpLab) genRun(cpu int, n uint64, d time.Duration, rate float64, stamps bool) (sent uint64, elapsed time.Duration) {
	tx := l.genTX
	_ = onCPU(cpu, func() {
		// Sleeps of a few tens of microseconds for the paced rates.
		_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)
		start := time.Now()
		deadline := start.Add(d)
		for n == 0 || sent < n {
			now := time.Now()
			if !now.Before(deadline) {
				break
			}
			batch := uint64(64)
			if rate > 0 {
				due := uint64(now.Sub(start).Seconds() * rate)
				if due <= sent {
					_ = unix.Nanosleep(&unix.Timespec{Nsec: 10_000}, nil)
					continue
				}
				batch = min(batch, due-sent)
			}
			if n > 0 {
				batch = min(batch, n-sent)
			}
			for range batch {
				_, buf, ok := tx.Slot()
				if !ok {
					break
				}
				m := copy(buf, l.udp)
				if stamps {
					p := buf[42:]
					binary.NativeEndian.PutUint64(p[0:8], uint64(time.Since(l.base)))
					binary.NativeEndian.PutUint32(p[8:12], uint32(sent))
				}
				tx.Commit(m)
				sent++
			}
			_ = tx.Flush()
		}
		for i := 0; i < 100 && tx.Pending(); i++ {
			_ = tx.Flush()
		}
		elapsed = time.Since(start)
	})
	return sent, elapsed
}

// rxPackets reads a link's rx_packets counter.
func rxPackets(t *testing.T, l link) uint64 {
	t.Helper()
	out := l.ns.MustRun(t, "cat", "/sys/class/net/"+l.name+"/statistics/rx_packets")
	v, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile of sorted durations (nanoseconds), nearest rank.
func percentile(sorted []int64, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.5) - 1
	return time.Duration(sorted[max(0, min(i, len(sorted)-1))])
}

// TestRingCompare measures TPACKET_V2 against TPACKET_V3 receive rings in
// a DR-style forwarder: (a) throughput at saturation with 64-byte frames,
// (b) drops when a burst arrives while the forwarder is stalled, at equal
// ring memory, (c) latency at fixed moderate rates, and (d) bulk TCP with
// GSO super-frames. Every point is repeated; medians are logged.
func TestRingCompare(t *testing.T) {
	if !*ringCompare {
		t.Skip("a measurement: run with -ringcompare (as root; see doc.go)")
	}
	if runtime.NumCPU() < 2 {
		t.Fatal("the comparison pins the generator and the forwarder to CPUs 0 and 1")
	}
	l := newCmpLab(t)
	const genCPU, fwdCPU = 0, 1
	reps, dur := *ringCompareRepeats, *ringCompareDur
	t.Logf("kernel %s, %d CPUs, load average %s; %d repeats, %v per point", kernelRelease(), runtime.NumCPU(), loadavg(), reps, dur)

	v2def := cmpVariant{"V2 64K slots (gvs default, 270 slots)", RXConfig{}}
	v2small := cmpVariant{"V2 2K slots (4096 slots)", RXConfig{FrameSize: 2048, FrameCount: 4096}}
	v3def := cmpVariant{"V3 18x1M, tov 1ms", RXConfig{Version: V3}}
	v3small := cmpVariant{"V3 8x1M, tov 1ms", RXConfig{Version: V3, BlockCount: 8}}
	v3slow := cmpVariant{"V3 18x1M, tov 8ms", RXConfig{Version: V3, RetireTimeout: 8 * time.Millisecond}}

	t.Run("throughput", func(t *testing.T) {
		vs := []cmpVariant{v2def, v2small, v3def, v3small}
		pps := make([][]float64, len(vs))
		loss := make([][]float64, len(vs))
		drops := make([][]float64, len(vs))
		for r := range reps {
			for i, v := range vs {
				f := startFwd(t, l.fg, l.fs, l.sink.mac, v.cfg, fwdCPU)
				before := rxPackets(t, l.sink)
				sent, elapsed := l.genRun(genCPU, 0, dur, 0, false)
				time.Sleep(50 * time.Millisecond) // drain
				got := rxPackets(t, l.sink) - before
				_, d := f.stop()
				pps[i] = append(pps[i], float64(got)/elapsed.Seconds())
				loss[i] = append(loss[i], 1-float64(got)/float64(sent))
				drops[i] = append(drops[i], float64(d))
				t.Logf("rep %d %-40s sent %8d (%.0f pps) delivered %8d (%.0f pps) loss %5.1f%% ring drops %d, load %s",
					r, v.name, sent, float64(sent)/elapsed.Seconds(), got, float64(got)/elapsed.Seconds(), 100*(1-float64(got)/float64(sent)), d, loadavg())
			}
		}
		for i, v := range vs {
			t.Logf("MEDIAN %-40s %5.1f MiB: delivered %.0f pps (%.2fx V2 default), loss %.1f%%, ring drops %.0f",
				v.name, v.mem(), median(pps[i]), median(pps[i])/median(pps[0]), 100*median(loss[i]), median(drops[i]))
		}
	})

	t.Run("burst", func(t *testing.T) {
		type pair struct{ v2, v3 cmpVariant }
		equal := []pair{{v2def, v3def}, {v2small, v3small}}
		for _, size := range []int{60, 1514} {
			frame := l.udp
			if size > len(frame) {
				frame = udp4Frame(l.fg.mac, l.gen.mac, 4000, cmpPort, size-42)
				copy(frame[14+12:14+20], []byte{198, 18, 0, 1, 198, 18, 0, 2})
				fixIPv4Checksum(frame[14:34])
			}
			saved := l.udp
			l.udp = frame
			for _, n := range []uint64{1000, 10_000, 100_000} {
				for _, p := range equal {
					for _, v := range []cmpVariant{p.v2, p.v3, v3slow} {
						if v.name == v3slow.name && p.v2.name != v2def.name {
							continue
						}
						var ds []float64
						var rates []float64
						for range reps {
							d, rate := l.burst(t, v, n)
							ds = append(ds, float64(d))
							rates = append(rates, rate)
						}
						t.Logf("BURST %4d-byte frames, N=%6d, %-40s %5.1f MiB: ring drops median %.0f (%.1f%%), burst at %.0f pps; all %v",
							size+4, n, v.name, v.mem(), median(ds), 100*median(ds)/float64(n), median(rates), ds)
					}
				}
			}
			l.udp = saved
		}
	})

	t.Run("latency", func(t *testing.T) {
		vs := []cmpVariant{v2def, v3def, v3slow}
		sink := openRX(t, l.sink, &RXConfig{FrameSize: 2048, FrameCount: 4096})
		for _, rate := range []float64{20_000, 50_000} {
			p50 := make([][]float64, len(vs))
			p99 := make([][]float64, len(vs))
			for r := range reps {
				for i, v := range vs {
					a, b, n := l.latency(t, sink, v, rate, dur)
					p50[i] = append(p50[i], float64(a.Microseconds()))
					p99[i] = append(p99[i], float64(b.Microseconds()))
					t.Logf("rep %d %5.0f Kpps %-40s p50 %6v p99 %6v (%d samples), load %s", r, rate/1000, v.name, a, b, n, loadavg())
				}
			}
			for i, v := range vs {
				t.Logf("MEDIAN %5.0f Kpps %-40s p50 %5.0f µs p99 %5.0f µs", rate/1000, v.name, median(p50[i]), median(p99[i]))
			}
		}
	})

	t.Run("tcp", func(t *testing.T) {
		const size = 256 << 20
		vs := []cmpVariant{v2def, v3def}
		mbps := make([][]float64, len(vs))
		for r := range reps {
			for i, v := range vs {
				gs := startFwd(t, l.fg, l.fs, l.sink.mac, v.cfg, fwdCPU)
				sg := startFwd(t, l.fs, l.fg, l.gen.mac, v.cfg, genCPU)
				elapsed, err := bulkTCP(l.gen.ns, l.sink.ns, l.sinkIP, size, time.Minute)
				_, d1 := gs.stop()
				_, d2 := sg.stop()
				if err != nil {
					t.Errorf("%s: %v", v.name, err)
					continue
				}
				m := float64(size) * 8 / elapsed.Seconds() / 1e6
				mbps[i] = append(mbps[i], m)
				t.Logf("rep %d %-40s %6.0f Mbit/s; gen→sink: %d frames, %d GSO, largest %d bytes, %d truncated, %d TX full, ring drops %d; sink→gen ring drops %d; load %s",
					r, v.name, m, gs.frames.Load(), gs.gso.Load(), gs.maxLen.Load(), gs.truncated.Load(), gs.txFull.Load(), d1, d2, loadavg())
			}
		}
		for i, v := range vs {
			t.Logf("MEDIAN TCP %-40s %6.0f Mbit/s (%.2fx V2 default)", v.name, median(mbps[i]), median(mbps[i])/median(mbps[0]))
		}
	})
}

// burst sends n frames at full speed while F's RX ring (variant v) has no
// consumer, waits until the ring has accounted for all of them, and returns
// its drops and the rate the burst came at. Then the forwarder drains it.
func (l *cmpLab) burst(t *testing.T, v cmpVariant, n uint64) (drops uint64, rate float64) {
	t.Helper()
	var rx *RX
	if err := l.fg.ns.Do(func() (err error) {
		rx, err = OpenRX(l.fg.index, &v.cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	sent, elapsed := l.genRun(0, n, time.Minute, 0, false)
	var packets uint64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		p, d, err := rx.Stats()
		if err != nil {
			t.Fatal(err)
		}
		packets, drops = p, d
		if packets >= sent {
			break
		}
	}
	if packets != sent {
		t.Fatalf("%s: the ring accounted for %d of %d frames", v.name, packets, sent)
	}
	// Drain: everything not dropped is in the ring.
	frames := make([]Frame, 256)
	var got uint64
	for got < packets-drops {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		stopper := context.AfterFunc(ctx, func() { rx.Close() })
		m, err := rx.Receive(frames)
		stopper()
		cancel()
		if err != nil {
			t.Fatalf("%s: draining after %d of %d frames: %v", v.name, got, packets-drops, err)
		}
		got += uint64(m)
		rx.Release()
	}
	return drops, float64(sent) / elapsed.Seconds()
}

// latency forwards frames sent at a fixed rate through a forwarder with
// receive ring v, and measures the time from the generator's timestamp to
// the sink's Receive, in one process (one monotonic clock).
func (l *cmpLab) latency(t *testing.T, sink *RX, v cmpVariant, rate float64, d time.Duration) (p50, p99 time.Duration, n int) {
	t.Helper()
	f := startFwd(t, l.fg, l.fs, l.sink.mac, v.cfg, 1)
	lat := make([]int64, 0, int(rate*d.Seconds())+1024)
	var mu sync.Mutex
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(done)
		frames := make([]Frame, 256)
		for {
			m, err := sink.Receive(frames)
			now := int64(time.Since(l.base))
			if err != nil {
				return
			}
			mu.Lock()
			for _, fr := range frames[:m] {
				if len(fr.Data) >= 54 && binary.BigEndian.Uint16(fr.Data[36:38]) == cmpPort && len(lat) < cap(lat) {
					lat = append(lat, now-int64(binary.NativeEndian.Uint64(fr.Data[42:50])))
				}
			}
			mu.Unlock()
			sink.Release()
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	// Warm up, then measure.
	l.genRun(0, 0, 200*time.Millisecond, rate, true)
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	lat = lat[:0]
	mu.Unlock()
	l.genRun(0, 0, d, rate, true)
	time.Sleep(50 * time.Millisecond)
	close(stop)
	// One more frame wakes the sink if it waits.
	l.genRun(0, 1, time.Second, 0, true)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the sink did not stop")
	}
	f.stop()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	return percentile(lat, 50), percentile(lat, 99), len(lat)
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}
