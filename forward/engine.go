package forward

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"

	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/service"
)

// BatchSize is the most frames a worker takes from its receive ring at
// once. 64 amortises the per-batch work (clock, snapshot, one sendto per
// transmit ring) while keeping a batch's frames in the L1/L2 cache; it is
// also the batch size recvmmsg-based forwarders settle on.
const BatchSize = 64

// Receiver is a source of frame batches; *afpacket.RX implements it.
type Receiver interface {
	// Receive waits for at least one frame and fills frames with the
	// ready ones, valid until Release.
	Receive(frames []afpacket.Frame) (int, error)
	// Release gives the frames of the last Receive back.
	Release()
}

// Transmitter queues frames for sending; *afpacket.TX implements it.
type Transmitter interface {
	// Slot returns room for one frame, or ok=false when there is none.
	Slot() (vnet *afpacket.VNetHdr, buf []byte, ok bool)
	// Commit queues the frame of n bytes written into the last slot.
	Commit(n int)
	// Flush sends what was committed.
	Flush() error
}

// Egress is one interface a worker can send on.
type Egress struct {
	Ifindex int
	MAC     [6]byte
	// Addr is the interface's IPv4 address (zero if it has none): the
	// source of the ICMP errors gvs sends from it.
	Addr [4]byte
	// MTU is the interface's MTU (TUN sends fragmentation-needed or
	// fragments above it; 0 means 1500).
	MTU int
	TX  Transmitter

	// direct is TX when it can also send a super-frame at once from
	// where it lies (directSender), and directMin the smallest frame it
	// takes: set by AddWorker.
	direct    directSender
	directMin int
}

// directSender is a Transmitter that can also send a large frame at once,
// from wherever it is: *afpacket.TX opened with TXConfig.DirectMin. A worker
// rewrites such a frame in its receive slot and sends it from there instead
// of copying it into a transmit slot (see afpacket.TX.SendDirect for why).
type directSender interface {
	DirectMin() int
	SendDirect(vnet *afpacket.VNetHdr, frame []byte) error
}

// Config is what an Engine forwards with.
type Config struct {
	// Services is the virtual-service table.
	Services *service.Table
	// Conns is the connection table, shared by all workers.
	Conns *conntrack.Table[*service.Real]
	// ExpireQuiescentTemplate makes a persistence template whose real
	// server has weight 0 invalid, so the client is scheduled anew (the
	// kernel's expire_quiescent_template sysctl; off by default, as
	// there: a quiesced server keeps its persistent clients).
	ExpireQuiescentTemplate bool
	// ExpireNodestConn drops the connection entry (and the packet) when a
	// packet arrives for a connection whose real server was removed (or
	// is down by its health check, see service.Real.Unavailable), so
	// that the client sees the connection fail and reconnects (the
	// kernel's expire_nodest_conn sysctl; off by default, as there: the
	// flows of a removed server keep going until they end).
	ExpireNodestConn bool
	// Ports holds FULLNAT's local ports. The connection table's OnRemove
	// must call its Release. nil: FULLNAT connections are refused.
	Ports *PortPools
}

// Engine is the data path: a set of workers sharing one service table and
// one connection table.
type Engine struct {
	cfg     Config
	workers []*Worker
	frags   *fragTable // later fragments' ports, by datagram (frag.go)
	tap     engineTap  // gvs --trace, --pcap (tap.go)
}

// New returns an engine without workers.
func New(cfg Config) *Engine {
	return &Engine{cfg: cfg, frags: newFragTable()}
}

// Worker forwards the frames of one receive ring. Its methods other than
// Run and Stats must not be called while it runs.
type Worker struct {
	Name    string
	e       *Engine
	rx      Receiver
	egress  []Egress
	ifindex int // the interface rx reads
	in      int // index of that interface in egress

	frames [BatchSize]afpacket.Frame
	// A batch's frames classified ahead of their handling, and their
	// connection keys, for a large table's Prefetch (handleBatch).
	pkts     [BatchSize]packet
	verdicts [BatchSize]Reason
	pkeys    [BatchSize]conntrack.Key
	key      conntrack.Key // scratch for the frame being handled
	tkey     conntrack.Key // scratch for its persistence template
	rkey     conntrack.Key // scratch for a reply key
	ipID     uint16        // IP ID of the outer headers this worker writes
	laddrN   uint32        // round-robin over FULLNAT local addresses
	opts     conntrack.InsertOpts[*service.Real]
	dirty    []bool // egress i has committed frames since its last flush
	// txDrops are the egress transmitters that count their refused
	// frames, taken when the worker is made: the tap swaps the
	// transmitters in egress while the worker runs, so Stats, called from
	// other goroutines, must not read them there.
	txDrops []dropCounter

	// scratch holds an outer IPIP packet being fragmented: the largest
	// IPv4 packet and its outer header.
	scratch []byte
	tap     *workerTap // made at the first tapped batch (tap.go)
	// tapping is set while a tapped batch runs: every frame then goes
	// through the transmit slots, where the tap sees it.
	tapping bool

	counts      [numReasons]atomic.Uint64
	frameN      atomic.Uint64
	batchN      atomic.Uint64
	sizes       batchSizes    // batches by size
	icmpSent    atomic.Uint64 // ICMP errors gvs sent (time exceeded, fragmentation needed)
	icmpRelayed atomic.Uint64 // ICMP errors about connections relayed
	fragNeededN atomic.Uint64 // fragmentation-needed sent (TUN)
	fragmented  atomic.Uint64 // outer packets sent in fragments (TUN)
	segmented   atomic.Uint64 // super-frames cut into segments (TUN)
}

// AddWorker adds a worker that reads rx, the receive ring of interface
// ifindex, and can send on egress (one entry per interface gvs serves,
// including ifindex itself). Call Run to start it.
func (e *Engine) AddWorker(name string, ifindex int, rx Receiver, egress []Egress) *Worker {
	w := &Worker{Name: name, e: e, rx: rx, egress: egress, ifindex: ifindex, dirty: make([]bool, len(egress)),
		scratch: make([]byte, outerLen+0xffff)}
	w.in = w.egressFor(ifindex)
	for i := range egress {
		if d, ok := egress[i].TX.(dropCounter); ok {
			w.txDrops = append(w.txDrops, d)
		}
		if d, ok := egress[i].TX.(directSender); ok && d.DirectMin() > 0 {
			egress[i].direct, egress[i].directMin = d, d.DirectMin()
		}
	}
	e.workers = append(e.workers, w)
	return w
}

// Workers returns the engine's workers.
func (e *Engine) Workers() []*Worker { return e.workers }

// Run forwards until the receive ring is closed; it then returns nil.
// Other errors of the receive ring are returned. The worker keeps its OS
// thread to itself, so that the scheduler never moves it (and its ring's
// cache lines) between CPUs behind its back.
//
// Closing the receive ring stops the worker between batches: the batch in
// hand is finished and flushed first. A frame reaches a transmit ring only
// once its rewrite is complete (Commit comes last), so a stop never sends
// a half-rewritten frame.
func (w *Worker) Run() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for {
		n, err := w.rx.Receive(w.frames[:])
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				// Frames a full socket buffer held back get one
				// more chance before the transmit rings close.
				for i := range w.egress {
					w.egress[i].TX.Flush()
				}
				return nil
			}
			return fmt.Errorf("worker %s: %w", w.Name, err)
		}
		w.batch(n)
	}
}

// reapSteps is the most steps of the connection table's sweep a worker
// takes after a batch (conntrack.Table.ReapDue).
const reapSteps = 4

// batch handles the n frames of the last Receive, flushes the transmit
// rings it used and releases the receive slots.
func (w *Worker) batch(n int) {
	now := conntrack.Now()
	snap := w.e.cfg.Services.Load()
	// Verdicts are tallied per batch: one atomic add per verdict seen
	// rather than one per frame.
	var tally [numReasons]uint16
	if h := w.e.tapped(); h != nil {
		// gvs --trace or --pcap: the one branch per batch they cost
		// when off (none with -tags notrace).
		w.tapBatch(h, n, now, snap, &tally)
	} else {
		w.handleBatch(w.frames[:n], now, snap, &tally)
	}
	for r, k := range tally {
		if k != 0 {
			w.counts[r].Add(uint64(k))
		}
	}
	for i, d := range w.dirty {
		if d {
			w.egress[i].TX.Flush()
			w.dirty[i] = false
		}
	}
	w.rx.Release()
	// Expiry, a few buckets of the table at a time when they are due:
	// here, between batches on the worker's own thread, it cannot preempt
	// the forwarding. Up to reapSteps steps (64 entries or so) keep pace
	// with a million connections even at a few batches per millisecond.
	w.e.cfg.Conns.ReapDue(now, reapSteps)
	w.frameN.Add(uint64(n))
	w.batchN.Add(1)
	w.sizes.add(n)
}

// prefetchFrom is the size of the connection table from which a batch's
// lookups are prefetched: below it the table stays in the cache and the
// extra pass would only cost (BenchmarkHandleFlows).
const prefetchFrom = 1 << 15

// handleBatch handles frames, tallying their verdicts. With a large
// connection table it first classifies every frame and has the table
// prefetch their connections, so that the cache misses of the batch's
// lookups overlap instead of coming one after another: with a million
// connections they are most of a frame's cost.
func (w *Worker) handleBatch(frames []afpacket.Frame, now int64, snap *service.Snapshot, tally *[numReasons]uint16) {
	conns := w.e.cfg.Conns
	if conns.Len() < prefetchFrom {
		for i := range frames {
			tally[w.handle(&frames[i], now, snap)]++
		}
		return
	}
	keys := w.pkeys[:0]
	for i := range frames {
		p := &w.pkts[i]
		*p = packet{}
		w.verdicts[i] = classify(&frames[i], p)
		if w.verdicts[i] == Forwarded {
			keys = append(keys, conntrack.KeyV4(p.proto, p.src, p.sport, p.dst, p.dport))
		}
	}
	conns.Prefetch(keys)
	for i := range frames {
		tally[w.handleClassified(&frames[i], &w.pkts[i], w.verdicts[i], now, snap)]++
	}
}

// egressFor returns the index of the egress interface with ifindex, or -1.
// A director serves a handful of interfaces: a scan beats a map.
func (w *Worker) egressFor(ifindex int) int {
	for i := range w.egress {
		if w.egress[i].Ifindex == ifindex {
			return i
		}
	}
	return -1
}

// Stats are a worker's (or the engine's summed) counters.
type Stats struct {
	Frames  uint64
	Batches uint64
	// BatchSizes counts batches by size, in buckets of upper bound
	// BatchBucketBound(i).
	BatchSizes [BatchBuckets]uint64
	// Verdicts counts frames by verdict.
	Verdicts [numReasons]uint64
	// ICMPSent counts the ICMP errors gvs sent, ICMPRelayed those about
	// connections it passed on; FragNeeded, Fragmented and Segmented
	// count TUN's fragmentation-needed errors, fragmented outer packets
	// and super-frames it cut into segments.
	ICMPSent, ICMPRelayed, FragNeeded, Fragmented, Segmented uint64
	// TXDrops counts frames the kernel's egress path refused after
	// they were queued on the worker's transmit rings (a full or dropping
	// qdisc, an interface that went down).
	TXDrops uint64
}

// dropCounter is what a Transmitter that counts its refused frames
// (*afpacket.TX) also implements.
type dropCounter interface{ Drops() uint64 }

// Stats returns the worker's counters.
func (w *Worker) Stats() Stats {
	s := Stats{Frames: w.frameN.Load(), Batches: w.batchN.Load(),
		ICMPSent: w.icmpSent.Load(), ICMPRelayed: w.icmpRelayed.Load(), FragNeeded: w.fragNeededN.Load(),
		Fragmented: w.fragmented.Load(), Segmented: w.segmented.Load(), BatchSizes: w.sizes.load()}
	for i := range s.Verdicts {
		s.Verdicts[i] = w.counts[i].Load()
	}
	for _, d := range w.txDrops {
		s.TXDrops += d.Drops()
	}
	return s
}

// Stats returns the sum of the workers' counters.
func (e *Engine) Stats() Stats {
	var s Stats
	for _, w := range e.workers {
		ws := w.Stats()
		s.Frames += ws.Frames
		s.Batches += ws.Batches
		s.ICMPSent += ws.ICMPSent
		s.ICMPRelayed += ws.ICMPRelayed
		s.FragNeeded += ws.FragNeeded
		s.Fragmented += ws.Fragmented
		s.Segmented += ws.Segmented
		s.TXDrops += ws.TXDrops
		for i := range s.Verdicts {
			s.Verdicts[i] += ws.Verdicts[i]
		}
		for i := range s.BatchSizes {
			s.BatchSizes[i] += ws.BatchSizes[i]
		}
	}
	return s
}
