//go:build linux

package afpacket

import (
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

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/gvs-project/gvs/internal/nstest"
)

// The ring comparison is a measurement, not a test: a benchmark, run only
// when asked for with -bench, as root, and it asserts nothing about time.
// Each part runs once (-benchtime 1x); its figures are logged.
//
//	go test ./internal/afpacket -run '^$' -bench RingCompare -benchtime 1x -v
var (
	ringCompareRepeats = flag.Int("ringcompare.repeats", 3, "BenchmarkRingCompare: repeats of every point (medians are reported)")
	ringCompareDur     = flag.Duration("ringcompare.dur", 3*time.Second, "BenchmarkRingCompare: length of a throughput or latency point")
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
// the ingress of F's and the sink's interfaces (nftables), after packet sockets
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

func newCmpLab(t testing.TB) *cmpLab {
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
		if err := d.ns.Do(func() error { return dropFlood(d.name) }); err != nil {
			t.Fatal(err)
		}
	}
	l.genTX = openTX(t, l.gen, &TXConfig{FrameSize: 2048, FrameCount: 2048, QdiscBypass: true})
	f := udp4Frame(l.fg.mac, l.gen.mac, 4000, cmpPort, 18)
	copy(f[14+12:14+20], []byte{198, 18, 0, 1, 198, 18, 0, 2})
	fixIPv4Checksum(f[14:34])
	l.udp = f
	return l
}

// dropFlood installs, in the calling thread's network namespace,
//
//	table netdev ringcompare {
//		chain in { type filter hook ingress device IFACE priority 0; policy accept;
//			meta protocol ip meta l4proto udp udp dport 9 drop; }
//	}
//
// The netdev ingress hook runs after packet sockets have had their copy
// and after the interface counted the frame (rx_packets).
func dropFlood(iface string) error {
	const reg = 8 // NFT_REG32_00
	c, err := nftables.New()
	if err != nil {
		return err
	}
	table := c.AddTable(&nftables.Table{Name: "ringcompare", Family: nftables.TableFamilyNetdev})
	accept := nftables.ChainPolicyAccept
	chain := c.AddChain(&nftables.Chain{
		Name: "in", Table: table, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookIngress,
		Priority: nftables.ChainPriorityRef(0), Policy: &accept, Device: iface,
	})
	c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{0x08, 0x00}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: binary.BigEndian.AppendUint16(nil, cmpPort)},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("netdev ingress table on %s: %w", iface, err)
	}
	return nil
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
	cpu                            time.Duration // the thread's CPU time, once done
	done                           chan error
}

// startFwd opens a receive ring of the variant on in and a default transmit
// ring on out, both in F, and forwards on CPU cpu until stop.
func startFwd(t testing.TB, in, out link, dst net.HardwareAddr, cfg RXConfig, cpu int) *cmpFwd {
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
			f.cpu = threadCPU()
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

// threadCPU is the calling thread's CPU time (user and system, including
// the softirq work the kernel does at the end of its system calls).
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// stop ends the forwarder and closes its rings, returning its RX ring's
// counters. f.cpu is valid afterwards.
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
	sent, elapsed, _ = l.genRunCPU(cpu, n, d, rate, stamps)
	return sent, elapsed
}

// genRunCPU is genRun that also returns the sending thread's CPU time,
// which includes the receive work of F's ring (veth delivers to the peer
// in the sender's system call).
func (l *cmpLab) genRunCPU(cpu int, n uint64, d time.Duration, rate float64, stamps bool) (sent uint64, elapsed, cpuTime time.Duration) {
	tx := l.genTX
	_ = onCPU(cpu, func() {
		cpu0 := threadCPU()
		defer func() { cpuTime = threadCPU() - cpu0 }()
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
	return sent, elapsed, cpuTime
}

// rxPackets reads a link's rx_packets counter.
func rxPackets(t testing.TB, l link) uint64 {
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

// BenchmarkRingCompare measures TPACKET_V2 against TPACKET_V3 receive rings in
// a DR-style forwarder: (a) throughput at saturation with 64-byte frames,
// (b) drops when a burst arrives while the forwarder is stalled, at equal
// ring memory, (c) latency at fixed moderate rates, (d) bulk TCP with GSO
// super-frames, and (e) when the kernel actually retires a V3 block. Every
// point is repeated, variants interleaved; medians are logged.
func BenchmarkRingCompare(b *testing.B) {
	nstest.Require(b)
	t := b // the parts below log and fail through it as a test would
	if runtime.NumCPU() < 2 {
		t.Fatal("the comparison pins the generator and the forwarder to CPUs 0 and 1")
	}
	l := newCmpLab(t)
	const genCPU, fwdCPU = 0, 1
	reps, dur := *ringCompareRepeats, *ringCompareDur
	t.Logf("kernel %s, %d CPUs, load average %s; %d repeats, %v per point", kernelRelease(), runtime.NumCPU(), loadavg(), reps, dur)

	ms := time.Millisecond
	v2def := cmpVariant{"V2 270 x 64K slots (gvs default)", RXConfig{}}
	v2small := cmpVariant{"V2 4096 x 2K slots", RXConfig{FrameSize: 2048, FrameCount: 4096}}
	v3def := cmpVariant{"V3 72 x 256K blocks, tov 1ms", RXConfig{Version: V3}} // the V3 defaults
	v3big := cmpVariant{"V3 18 x 1M blocks, tov 1ms", RXConfig{Version: V3, BlockSize: 1 << 20, BlockCount: 18}}
	v3small := cmpVariant{"V3 32 x 256K blocks, tov 1ms", RXConfig{Version: V3, BlockCount: 32}}
	v3slow := cmpVariant{"V3 72 x 256K blocks, tov 8ms", RXConfig{Version: V3, RetireTimeout: 8 * ms}}

	b.Run("retire", func(b *testing.B) {
		t := b
		// Single frames, 0.3 to 5 ms apart, into a V3 ring that
		// nobody else fills: the time from sending to Receive is the
		// wait for the retire timer, plus what V2 (tov 0 below) shows
		// of the measurement's own cost.
		for _, tov := range []time.Duration{0, ms, 2 * ms, 8 * ms} {
			cfg := RXConfig{Version: V3, RetireTimeout: tov}
			if tov == 0 {
				cfg = RXConfig{FrameSize: 2048, FrameCount: 64}
			}
			rx := openRX(t, l.fg, &cfg)
			frames := make([]Frame, 8)
			var waits []int64
			for i := range 200 {
				time.Sleep(300*time.Microsecond + time.Duration(i*4409%4700)*time.Microsecond)
				sent := time.Now()
				l.genRun(genCPU, 1, time.Second, 0, false)
				if _, err := rx.Receive(frames); err != nil {
					t.Fatal(err)
				}
				waits = append(waits, int64(time.Since(sent)))
				rx.Release()
			}
			rx.Close()
			slices.Sort(waits)
			name := "V3 tov " + tov.String()
			if tov == 0 {
				name = "V2 (no timer)"
			}
			t.Logf("RETIRE %-14s send to Receive min %v p50 %v p90 %v max %v (200 frames), load %s",
				name, percentile(waits, 0), percentile(waits, 50), percentile(waits, 90), percentile(waits, 100), loadavg())
		}
	})

	b.Run("throughput", func(b *testing.B) {
		t := b
		vs := []cmpVariant{v2def, v2small, v3def, v3big, v3small}
		pps := make([][]float64, len(vs))
		ratio := make([][]float64, len(vs))
		loss := make([][]float64, len(vs))
		drops := make([][]float64, len(vs))
		fwdNs := make([][]float64, len(vs))
		genNs := make([][]float64, len(vs))
		for r := range reps {
			for i, v := range vs {
				f := startFwd(t, l.fg, l.fs, l.sink.mac, v.cfg, fwdCPU)
				before := rxPackets(t, l.sink)
				sent, elapsed, gcpu := l.genRunCPU(genCPU, 0, dur, 0, false)
				time.Sleep(50 * time.Millisecond) // drain
				got := rxPackets(t, l.sink) - before
				_, d := f.stop()
				pps[i] = append(pps[i], float64(got)/elapsed.Seconds())
				ratio[i] = append(ratio[i], pps[i][r]/pps[0][r])
				loss[i] = append(loss[i], 1-float64(got)/float64(sent))
				drops[i] = append(drops[i], float64(d)/float64(sent))
				fwdNs[i] = append(fwdNs[i], float64(f.cpu.Nanoseconds())/float64(max(f.frames.Load(), 1)))
				genNs[i] = append(genNs[i], float64(gcpu.Nanoseconds())/float64(max(sent, 1)))
				t.Logf("rep %d %-32s offered %7.0f pps, delivered %7.0f pps, loss %5.1f%%, ring drops %7d (%4.1f%%), forwarder %4.0f ns/frame, generator %4.0f ns/frame, load %s",
					r, v.name, float64(sent)/elapsed.Seconds(), pps[i][r], 100*loss[i][r], d, 100*drops[i][r], fwdNs[i][r], genNs[i][r], loadavg())
			}
		}
		for i, v := range vs {
			t.Logf("MEDIAN %-32s %4.0f MiB: delivered %7.0f pps, %.2fx V2 default (same repeat), loss %4.1f%%, ring drops %4.1f%% of offered; CPU per frame: forwarder %4.0f ns, generator (with F's receive) %4.0f ns",
				v.name, v.mem(), median(pps[i]), median(ratio[i]), 100*median(loss[i]), 100*median(drops[i]), median(fwdNs[i]), median(genNs[i]))
		}
	})

	b.Run("burst", func(b *testing.B) {
		t := b
		// A burst of n frames at a fixed rate while the forwarder is
		// stalled: the ring alone must hold them.
		const rate = 250_000
		groups := [][]cmpVariant{{v2def, v3def, v3big, v3slow}, {v2small, v3small}}
		for _, size := range []int{60, 1514} {
			saved := l.udp
			if size > len(l.udp) {
				f := udp4Frame(l.fg.mac, l.gen.mac, 4000, cmpPort, size-42)
				copy(f[14+12:14+20], []byte{198, 18, 0, 1, 198, 18, 0, 2})
				fixIPv4Checksum(f[14:34])
				l.udp = f
			}
			for _, n := range []uint64{1000, 10_000, 100_000} {
				for _, g := range groups {
					for _, v := range g {
						var ds, rates []float64
						for range reps {
							d, r := l.burst(t, v, n, rate)
							ds = append(ds, float64(d))
							rates = append(rates, r)
						}
						t.Logf("BURST %4d-byte frames, N=%6d, %-32s %4.0f MiB: ring drops median %6.0f (%5.1f%%) all %v; burst at %.0f pps",
							size+4, n, v.name, v.mem(), median(ds), 100*median(ds)/float64(n), ds, median(rates))
					}
				}
			}
			l.udp = saved
		}
	})

	b.Run("latency", func(b *testing.B) {
		t := b
		vs := []cmpVariant{v2def, v3def, v3slow}
		sink := openRX(t, l.sink, &RXConfig{FrameSize: 2048, FrameCount: 4096})
		for _, rate := range []float64{20_000, 50_000} {
			p50 := make([][]float64, len(vs))
			p90 := make([][]float64, len(vs))
			p99 := make([][]float64, len(vs))
			fwdNs := make([][]float64, len(vs))
			for r := range reps {
				for i, v := range vs {
					res := l.latency(t, sink, v, rate, dur)
					p50[i] = append(p50[i], float64(res.p50.Microseconds()))
					p90[i] = append(p90[i], float64(res.p90.Microseconds()))
					p99[i] = append(p99[i], float64(res.p99.Microseconds()))
					fwdNs[i] = append(fwdNs[i], res.fwdNs)
					t.Logf("rep %d %2.0f Kpps %-32s p50 %6v p90 %6v p99 %6v (%d samples), forwarder %4.0f ns/frame, load %s",
						r, rate/1000, v.name, res.p50, res.p90, res.p99, res.n, res.fwdNs, loadavg())
				}
			}
			for i, v := range vs {
				t.Logf("MEDIAN %2.0f Kpps %-32s p50 %5.0f µs p90 %6.0f µs p99 %6.0f µs; forwarder CPU %4.0f ns/frame",
					rate/1000, v.name, median(p50[i]), median(p90[i]), median(p99[i]), median(fwdNs[i]))
			}
		}
	})

	b.Run("tcp", func(b *testing.B) {
		t := b
		const size = 1 << 30
		vs := []cmpVariant{v2def, v3def, v3big}
		mbps := make([][]float64, len(vs))
		ratio := make([][]float64, len(vs))
		for r := range reps {
			for i, v := range vs {
				gs := startFwd(t, l.fg, l.fs, l.sink.mac, v.cfg, fwdCPU)
				sg := startFwd(t, l.fs, l.fg, l.gen.mac, v.cfg, genCPU)
				elapsed, err := bulkTCP(l.gen.ns, l.sink.ns, l.sinkIP, size, time.Minute)
				_, d1 := gs.stop()
				_, d2 := sg.stop()
				if err != nil {
					t.Fatalf("%s: %v", v.name, err)
				}
				m := float64(size) * 8 / elapsed.Seconds() / 1e6
				mbps[i] = append(mbps[i], m)
				ratio[i] = append(ratio[i], m/mbps[0][r])
				t.Logf("rep %d %-32s %6.0f Mbit/s; gen→sink: %d frames, %d GSO, largest %d bytes, %d truncated, %d TX full, ring drops %d; sink→gen ring drops %d; load %s",
					r, v.name, m, gs.frames.Load(), gs.gso.Load(), gs.maxLen.Load(), gs.truncated.Load(), gs.txFull.Load(), d1, d2, loadavg())
			}
		}
		for i, v := range vs {
			t.Logf("MEDIAN TCP %-32s %6.0f Mbit/s, %.2fx V2 default (same repeat)", v.name, median(mbps[i]), median(ratio[i]))
		}
	})
}

// burst sends n frames at rate frames per second while F's RX ring
// (variant v) has no consumer, waits until the ring has accounted for all
// of them, and returns its drops and the rate the burst came at. Then it
// drains the ring.
func (l *cmpLab) burst(t testing.TB, v cmpVariant, n uint64, rate float64) (drops uint64, got float64) {
	t.Helper()
	var rx *RX
	if err := l.fg.ns.Do(func() (err error) {
		rx, err = OpenRX(l.fg.index, &v.cfg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	sent, elapsed := l.genRun(0, n, time.Minute, rate, false)
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
	timer := time.AfterFunc(10*time.Second, func() { rx.Close() })
	defer timer.Stop()
	for left := packets - drops; left > 0; {
		m, err := rx.Receive(frames)
		if err != nil {
			t.Fatalf("%s: draining with %d frames left: %v", v.name, left, err)
		}
		left -= min(left, uint64(m))
		rx.Release()
	}
	return drops, float64(sent) / elapsed.Seconds()
}

// latency forwards frames sent at a fixed rate through a forwarder with
// receive ring v, and measures the time from the generator's timestamp to
// the sink's Receive, in one process (one monotonic clock).
// latResult is one latency point.
type latResult struct {
	p50, p90, p99 time.Duration
	n             int
	fwdNs         float64 // forwarder CPU time per frame
}

func (l *cmpLab) latency(t testing.TB, sink *RX, v cmpVariant, rate float64, d time.Duration) latResult {
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
	return latResult{percentile(lat, 50), percentile(lat, 90), percentile(lat, 99), len(lat),
		float64(f.cpu.Nanoseconds()) / float64(max(f.frames.Load(), 1))}
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}
