package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/gvs-project/gvs/bench/cpustat"
	"github.com/gvs-project/gvs/bench/pktgen"
	"github.com/gvs-project/gvs/bench/topo"
	"github.com/gvs-project/gvs/internal/netns"
)

// Source ports: flow i sends from basePort+i (1024 flows: 10000..11023).
const basePort = 10000

// Many flows come from manySrc and the addresses after it (in the
// benchmarking range, as if behind a router), manyPorts ports each.
var manySrc = [4]byte{198, 19, 0, 1}

const manyPorts = 32768

// Warm-up: before a path's first point the generator runs for warmup,
// again until every sink has received something, for at most
// warmupTries rounds. This primes caches, connection tables and gvs's ARP
// resolution of the real servers, and proves the path delivers at all.
const warmupTries = 5

// Draining: after the generator stops, frames still queued (the
// director's backlog, gvs's receive ring) reach the sinks within a few
// milliseconds. The sinks' counters are read until they stop moving for
// drainQuiet, at most drainMax, so late frames count as delivered.
const (
	drainQuiet = 30 * time.Millisecond
	drainMax   = time.Second
)

// runner measures points on a started path.
type runner struct {
	e         *env
	gen       *pktgen.Generator
	ksoftirqd []int // pids of the kernel's softirq threads
}

func openGenerator(t *topo.Topology, cpu int) (*pktgen.Generator, error) {
	idx, err := t.Ifindex(t.Gen)
	if err != nil {
		return nil, err
	}
	var g *pktgen.Generator
	err = netns.Do(t.Gen.NS, func() error {
		var err error
		g, err = pktgen.Open(idx, pktgen.Config{CPU: cpu})
		return err
	})
	return g, err
}

// frames builds the frames of one point.
func (r *runner) frames(s *setup, size, flows int) (*pktgen.Frames, error) {
	t := r.e.topo
	spec := pktgen.Spec{
		SrcMAC:   t.Gen.MAC,
		DstMAC:   t.DirIn.MAC,
		Src:      t.Gen.Addr.Addr().As4(),
		DstPort:  servicePort,
		BasePort: basePort,
		Flows:    flows,
		Size:     size,
	}
	for _, d := range s.Dsts {
		spec.Dsts = append(spec.Dsts, d.As4())
	}
	if basePort+flows-1 > 0xffff {
		spec.Src = manySrc
		spec.Srcs = (flows + manyPorts - 1) / manyPorts
	}
	return spec.Build()
}

// primeMax bounds the time prime sends.
const primeMax = 30 * time.Second

// primeRate is the rate prime sends at: well below what the slowest path
// forwards while it creates connections, so that the director drops none
// of the frames that create them. (At full speed it dropped about half,
// and those flows were created during the first measured runs instead,
// which made those runs measure connection setup.)
const primeRate = 100_000

// prime sends every flow of f once, paced at primeRate, so that the
// forwarder's connection table holds them all.
func (r *runner) prime(ctx context.Context, f *pktgen.Frames) error {
	var sent uint64
	for deadline := time.Now().Add(primeMax); sent < uint64(f.Flows()); {
		left := uint64(f.Flows()) - sent
		d := time.Duration(left) * time.Second / primeRate
		res, err := r.gen.RunPaced(ctx, f, min(d+time.Millisecond, time.Until(deadline)), primeRate)
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		sent += res.Frames - res.Refused
		if time.Now().After(deadline) {
			return fmt.Errorf("priming %d flows: only %d frames sent in %v", f.Flows(), sent, primeMax)
		}
	}
	_, err := r.drain()
	return err
}

// sinkCounts reads every sink's received-packet counter.
func (r *runner) sinkCounts() ([]uint64, error) {
	var out []uint64
	for _, s := range r.e.topo.Sinks {
		c, err := r.e.topo.Counters(s)
		if err != nil {
			return nil, err
		}
		out = append(out, c.RxPackets)
	}
	return out, nil
}

// warmup sends until every sink has received frames.
func (r *runner) warmup(ctx context.Context, s *setup, f *pktgen.Frames, d time.Duration) error {
	for try := 1; ; try++ {
		before, err := r.sinkCounts()
		if err != nil {
			return err
		}
		if _, err := r.gen.Run(ctx, f, d); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		after, err := r.drain()
		if err != nil {
			return err
		}
		starved := -1
		for i := range after {
			if after[i] == before[i] {
				starved = i
				break
			}
		}
		if starved < 0 {
			return nil
		}
		if s.Exited != nil {
			if err := s.Exited(); err != nil {
				return err
			}
		}
		if try == warmupTries {
			return fmt.Errorf("warm-up: sink%d received nothing in %d rounds of %v", starved+1, try, d)
		}
	}
}

// drain waits until the sinks' counters stop moving and returns them.
func (r *runner) drain() ([]uint64, error) {
	deadline := time.Now().Add(drainMax)
	last, err := r.sinkCounts()
	if err != nil {
		return nil, err
	}
	for time.Now().Before(deadline) {
		time.Sleep(drainQuiet)
		now, err := r.sinkCounts()
		if err != nil {
			return nil, err
		}
		same := true
		for i := range now {
			same = same && now[i] == last[i]
		}
		last = now
		if same {
			break
		}
	}
	return last, nil
}

// Sample is one measured run of one point.
type Sample struct {
	// Sent is what left the generator's interface: transmitted plus
	// dropped by veth because the director's backlog was full (a loss of
	// the forwarder). Generated counts frames given to the kernel.
	Sent      uint64 `json:"sent"`
	Generated uint64 `json:"generated"`
	// GeneratorStalls counts the generator's waits for a free ring slot.
	GeneratorStalls uint64 `json:"generator_stalls"`
	// Delivered is the sum of the sinks' rx_packets deltas; PerSink
	// splits it.
	Delivered uint64   `json:"delivered"`
	PerSink   []uint64 `json:"per_sink"`
	// DirectorRxDropped is the director's eth0 rx_dropped delta.
	DirectorRxDropped uint64 `json:"director_rx_dropped"`
	// Seconds is the generator's sending time; PPS = Delivered/Seconds.
	Seconds float64 `json:"seconds"`
	PPS     float64 `json:"pps"`
	SentPPS float64 `json:"sent_pps"`
	LossPct float64 `json:"loss_pct"`
	// CPU time over the point (sending, then draining), in nanoseconds
	// per delivered packet: the forwarder's (see Result.CPUSource), the
	// machine's softirq, and the whole machine's busy time (all CPUs,
	// the generator included).
	ForwarderNsPerPkt float64 `json:"forwarder_ns_per_pkt"`
	SoftirqNsPerPkt   float64 `json:"softirq_ns_per_pkt"`
	MachineNsPerPkt   float64 `json:"machine_ns_per_pkt"`
	// DirectorNsPerPkt is what the director side costs in all, the
	// figure that compares across paths: for the kernel paths the
	// forwarder's (softirq: the director's receive, forwarding, and the
	// bridge and sinks behind it); for a forwarder process, its own time
	// (which includes the softirq work at the end of its sendto calls:
	// bridge and sinks) plus the softirq time of the other CPUs (the
	// director's receive into the process's ring, on the generator's
	// CPU).
	DirectorNsPerPkt float64 `json:"director_ns_per_pkt"`
	// SoftirqNsPerPktByCPU splits the softirq time by CPU: for gvs, the
	// generator's CPU's share is the director's receive into gvs's ring
	// (and gvs's ingress filter), the forwarder CPU's the bridge and sinks
	// behind gvs's transmit.
	SoftirqNsPerPktByCPU []float64 `json:"softirq_ns_per_pkt_by_cpu"`
	// Busy CPU per CPU over the point, in percent.
	CPUBusyPct []float64 `json:"cpu_busy_pct"`
	// OtherCPUPct is the CPU time, in percent of one CPU, that neither
	// this program, nor the forwarder's process, nor the kernel's softirq
	// threads used during the point: other load on the machine, which
	// makes the point's numbers unreliable.
	OtherCPUPct float64 `json:"other_cpu_pct"`
}

// ourCPU is the CPU time, in ticks, of everything the point runs: this
// process (the generator, and the softirq work at the end of its sendto
// calls), the forwarder's process, and the ksoftirqd threads (softirq work
// deferred from either).
func (r *runner) ourCPU(s *setup) uint64 {
	pids := append([]int{os.Getpid()}, r.ksoftirqd...)
	if s.Pid > 0 {
		pids = append(pids, s.Pid)
	}
	return cpustat.SumProcs(pids)
}

// measure runs one point: the generator for d, then the drain.
func (r *runner) measure(ctx context.Context, s *setup, f *pktgen.Frames, d time.Duration) (Sample, error) {
	t := r.e.topo
	gen0, err := t.Counters(t.Gen)
	if err != nil {
		return Sample{}, err
	}
	dir0, err := t.Counters(t.DirIn)
	if err != nil {
		return Sample{}, err
	}
	sinks0, err := r.sinkCounts()
	if err != nil {
		return Sample{}, err
	}
	fwd0, err := s.CPU()
	if err != nil {
		return Sample{}, err
	}
	stat0, err := cpustat.ReadStat()
	if err != nil {
		return Sample{}, err
	}
	ours0, t0 := r.ourCPU(s), time.Now()

	res, err := r.gen.Run(ctx, f, d)
	if err != nil {
		return Sample{}, err
	}
	if err := ctx.Err(); err != nil {
		return Sample{}, err
	}
	sinks1, err := r.drain()
	if err != nil {
		return Sample{}, err
	}

	stat1, err := cpustat.ReadStat()
	if err != nil {
		return Sample{}, err
	}
	ours1, t1 := r.ourCPU(s), time.Now()
	fwd1, err := s.CPU()
	if err != nil {
		return Sample{}, err
	}
	gen1, err := t.Counters(t.Gen)
	if err != nil {
		return Sample{}, err
	}
	dir1, err := t.Counters(t.DirIn)
	if err != nil {
		return Sample{}, err
	}
	if s.Exited != nil {
		if err := s.Exited(); err != nil {
			return Sample{}, err
		}
	}

	g := gen1.Sub(gen0)
	sm := Sample{
		Sent:              g.TxPackets + g.TxDropped,
		Generated:         res.Frames,
		GeneratorStalls:   res.Stalls,
		DirectorRxDropped: dir1.Sub(dir0).RxDropped,
		Seconds:           res.Elapsed().Seconds(),
	}
	for i := range sinks1 {
		n := sinks1[i] - sinks0[i]
		sm.PerSink = append(sm.PerSink, n)
		sm.Delivered += n
	}
	if sm.Seconds > 0 {
		sm.PPS = float64(sm.Delivered) / sm.Seconds
		sm.SentPPS = float64(sm.Sent) / sm.Seconds
	}
	if sm.Sent > 0 {
		sm.LossPct = 100 * (float64(sm.Sent) - float64(sm.Delivered)) / float64(sm.Sent)
	}
	st := stat1.Sub(stat0)
	if sm.Delivered > 0 {
		per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(sm.Delivered) }
		sm.ForwarderNsPerPkt = per(fwd1 - fwd0)
		sm.SoftirqNsPerPkt = per(cpustat.Duration(st.Total.SoftIRQ))
		sm.MachineNsPerPkt = per(cpustat.Duration(st.Total.Busy()))
		dir := fwd1 - fwd0
		for i, c := range st.PerCPU {
			sm.SoftirqNsPerPktByCPU = append(sm.SoftirqNsPerPktByCPU, per(cpustat.Duration(c.SoftIRQ)))
			if s.Pid > 0 && i != r.e.fwdCPU {
				dir += cpustat.Duration(c.SoftIRQ)
			}
		}
		sm.DirectorNsPerPkt = per(dir)
	}
	if busy, ours := st.Total.Busy(), ours1-ours0; busy > ours {
		// Ticks are charged to whoever runs at the tick: a few
		// ticks of difference are sampling noise, not load.
		sm.OtherCPUPct = 100 * cpustat.Duration(busy-ours).Seconds() / t1.Sub(t0).Seconds()
	}
	for _, c := range st.PerCPU {
		all := c.Busy() + c.Idle + c.IOWait + c.Steal
		pct := 0.0
		if all > 0 {
			pct = 100 * float64(c.Busy()) / float64(all)
		}
		sm.CPUBusyPct = append(sm.CPUBusyPct, pct)
	}
	return sm, nil
}

// pickCPUs chooses the generator's and the forwarder's CPUs: 0 and 1, or
// the same one on a single-CPU machine (with a warning from the caller).
func pickCPUs(gen, fwd int) (int, int, bool) {
	n := runtime.NumCPU()
	shared := false
	if gen >= n {
		gen = 0
	}
	if fwd >= n {
		fwd, shared = gen, true
	}
	return gen, fwd, shared || gen == fwd
}
