package trace

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gvs-project/gvs/forward"
	"github.com/gvs-project/gvs/service"
)

// DefaultRate is how many packets a second the trace prints by default.
// A person reads a few blocks a second; a busy director sends millions.
const DefaultRate = 10

// DefaultPcapMaxBytes bounds the capture file by default.
const DefaultPcapMaxBytes = 64 << 20

// Interface is an interface gvs serves, as the trace and the capture name
// it.
type Interface struct {
	Index int
	Name  string
}

// Config configures a Tap.
type Config struct {
	// Interfaces are the interfaces gvs serves: their names for the
	// trace, and the capture's interface blocks (NAME-in, NAME-out).
	Interfaces []Interface
	// Out receives the trace (gvs: its standard output). nil discards it.
	Out io.Writer
	// On traces every service from the start (gvs --trace).
	On bool
	// Rate is the most packets traced a second (0: DefaultRate).
	Rate int
	// Pcap, if set, is the pcapng file to capture to (created or
	// truncated).
	Pcap string
	// PcapMaxBytes bounds the file (0: DefaultPcapMaxBytes); the
	// capture stops at the bound.
	PcapMaxBytes int64
	// PcapServicesOnly captures only frames of virtual services: those
	// gvs forwarded or dropped, and those it answered or relayed.
	PcapServicesOnly bool
	// PcapSample captures one received frame in PcapSample (with what
	// was sent because of it); 0 or 1 captures every frame.
	PcapSample int
	// Logf reports the capture's events (stopped at the bound, a write
	// error). nil discards them.
	Logf func(format string, args ...any)
}

// Stats are a Tap's counters.
type Stats struct {
	// Traced packets were queued for printing (counted as the worker
	// hands them over, before the frame is sent on); Suppressed were
	// over the rate; Lost did not fit the trace's queue.
	Traced, Suppressed, Lost uint64
	// Captured frames were written to the file; Dropped did not fit
	// the capture's queue (or the worker's copy buffer); NotWritten
	// came after the capture stopped at its bound.
	Captured, Dropped, NotWritten uint64
	// Stopped: the capture reached its bound.
	Stopped bool
}

// Tap is gvs's forward.Tap: the trace and the capture. It is safe for
// concurrent use.
type Tap struct {
	cfg   Config
	names map[int]string
	text  *tracer
	pcap  *capture // nil without Config.Pcap
	seq   atomic.Uint64
}

var _ forward.Tap = (*Tap)(nil)

// New starts a Tap: the trace's writer and, with Config.Pcap, the capture
// file and its writer. Close stops them.
func New(cfg Config) (*Tap, error) {
	if cfg.Rate < 0 || cfg.PcapMaxBytes < 0 || cfg.PcapSample < 0 {
		return nil, errors.New("trace: negative rate, bound or sample")
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.PcapMaxBytes == 0 {
		cfg.PcapMaxBytes = DefaultPcapMaxBytes
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	t := &Tap{cfg: cfg, names: map[int]string{}}
	for _, i := range cfg.Interfaces {
		t.names[i.Index] = i.Name
	}
	if cfg.Pcap != "" {
		c, err := openCapture(cfg, t.names)
		if err != nil {
			return nil, err
		}
		t.pcap = c
	}
	t.text = newTracer(cfg, t.names)
	if cfg.On {
		t.text.set(true, nil)
	}
	return t, nil
}

// Close stops tracing and capturing: what is queued is written, the
// capture file is closed. The Tap must be off the engine first.
func (t *Tap) Close() error {
	t.text.close()
	if t.pcap != nil {
		return t.pcap.close()
	}
	return nil
}

// Active reports whether the Tap has anything to do: tracing is on for
// some service, or the capture is open. The engine needs the Tap only
// then.
func (t *Tap) Active() bool {
	return t.text.on.Load() || (t.pcap != nil && !t.pcap.stopped.Load())
}

// ErrNotTraced is returned by SetTrace for switching off a service that
// is not being traced.
var ErrNotTraced = errors.New("not traced")

// SetTrace switches tracing on or off: for every service (svc nil), or
// for one. Switching one service off while every service is traced is
// refused (switch everything off, then on for the services wanted).
func (t *Tap) SetTrace(on bool, svc *service.Key) error {
	return t.text.set(on, svc)
}

// Tracing returns whether every service is traced, and the services
// traced one by one.
func (t *Tap) Tracing() (all bool, services []service.Key) {
	return t.text.tracing()
}

// Stats returns the counters.
func (t *Tap) Stats() Stats {
	s := Stats{Traced: t.text.traced.Load(), Suppressed: t.text.suppressedTotal.Load(), Lost: t.text.lost.Load()}
	if c := t.pcap; c != nil {
		s.Captured, s.Dropped, s.NotWritten, s.Stopped = c.written.Load(), c.dropped.Load(), c.notWritten.Load(), c.stopped.Load()
	}
	return s
}

// Trace implements forward.Tap.
func (t *Tap) Trace(svc *service.Service) bool { return t.text.want(svc) }

// Observe implements forward.Tap.
func (t *Tap) Observe(o *forward.Observation) {
	// One number per received frame, shared by its trace block and
	// its packets in the capture.
	seq := t.seq.Add(1)
	if o.Decision != nil {
		t.text.record(o, seq)
	}
	if c := t.pcap; c != nil {
		c.observe(o, seq)
	}
}

// ifName names an interface by index.
func ifName(names map[int]string, ifindex int) string {
	if n, ok := names[ifindex]; ok {
		return n
	}
	return fmt.Sprintf("if%d", ifindex)
}

// rateLimit is a token bucket: rate tokens a second, as many at most.
type rateLimit struct {
	rate   float64
	tokens float64
	last   time.Time
}

func (r *rateLimit) allow(now time.Time) bool {
	if !r.last.IsZero() {
		r.tokens = min(r.rate, r.tokens+now.Sub(r.last).Seconds()*r.rate)
	} else {
		r.tokens = r.rate
	}
	r.last = now
	if r.tokens >= 1 {
		r.tokens--
		return true
	}
	return false
}

// tracer is the text trace.
type tracer struct {
	cfg   Config
	names map[int]string
	on    atomic.Bool // some service is traced

	mu         sync.Mutex
	all        bool
	services   map[service.Key]bool
	limit      rateLimit
	suppressed uint64           // since the last summary
	now        func() time.Time // the rate limit's clock (tests set it)

	traced, suppressedTotal, lost atomic.Uint64

	queue chan *record
	stop  chan struct{} // closed by close
	done  chan struct{} // closed when run returns
	once  sync.Once
}

// queueLen bounds the records waiting for the writer: a second's worth
// at the highest sensible rate, far more at the default.
const queueLen = 1024

func newTracer(cfg Config, names map[int]string) *tracer {
	t := &tracer{cfg: cfg, names: names, services: map[service.Key]bool{}, now: time.Now,
		limit: rateLimit{rate: float64(cfg.Rate)}, queue: make(chan *record, queueLen),
		stop: make(chan struct{}), done: make(chan struct{})}
	go t.run()
	return t
}

func (t *tracer) set(on bool, svc *service.Key) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case on && svc == nil:
		t.all = true
		clear(t.services)
	case on:
		if !t.all {
			t.services[*svc] = true
		}
	case svc == nil:
		t.all = false
		clear(t.services)
	case t.all:
		return fmt.Errorf("every service is traced: switch tracing off (without a service), then on for the services to trace")
	case !t.services[*svc]:
		return fmt.Errorf("service %v is %w", *svc, ErrNotTraced)
	default:
		delete(t.services, *svc)
	}
	t.on.Store(t.all || len(t.services) > 0)
	return nil
}

func (t *tracer) tracing() (bool, []service.Key) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ks []service.Key
	for k := range t.services {
		ks = append(ks, k)
	}
	return t.all, ks
}

// want is Tap.Trace: the service filter, then the rate.
func (t *tracer) want(svc *service.Service) bool {
	if !t.on.Load() {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.all && !t.services[svc.Key] {
		return false
	}
	if t.limit.allow(t.now()) {
		return true
	}
	t.suppressed++
	t.suppressedTotal.Add(1)
	return false
}

// record copies what the trace needs of o and queues it.
func (t *tracer) record(o *forward.Observation, seq uint64) {
	r := newRecord(o, seq)
	select {
	case t.queue <- r:
		t.traced.Add(1)
	default:
		t.lost.Add(1)
	}
}

// summaryInterval is how often suppressed packets are summarised.
const summaryInterval = time.Second

func (t *tracer) run() {
	defer close(t.done)
	tick := time.NewTicker(summaryInterval)
	defer tick.Stop()
	for {
		select {
		case r := <-t.queue:
			t.write(r)
		case <-tick.C:
			t.summary()
		case <-t.stop:
			for {
				select {
				case r := <-t.queue:
					t.write(r)
				default:
					t.summary()
					return
				}
			}
		}
	}
}

func (t *tracer) write(r *record) {
	t.cfg.Out.Write([]byte(r.format(t.names)))
}

// summary prints how many packets the rate limit left out since the
// last summary, if any.
func (t *tracer) summary() {
	t.mu.Lock()
	n := t.suppressed
	t.suppressed = 0
	t.mu.Unlock()
	if n > 0 {
		fmt.Fprintf(t.cfg.Out, "trace: suppressed %d packets (more than %d a second)\n", n, t.cfg.Rate)
	}
}

func (t *tracer) close() {
	t.once.Do(func() {
		t.on.Store(false)
		close(t.stop)
		<-t.done
	})
}
