//go:build linux

package pktgen

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gvs-project/gvs/internal/afpacket"
)

// Defaults of Config.
const (
	// DefaultBatch frames go to the kernel per sendto: forward.BatchSize,
	// the forwarder's own batch, so both ends amortise a system call the
	// same way.
	DefaultBatch = 64
	// DefaultRingFrames slots of ringFrameSize bytes (4 MiB) let a few
	// dozen batches be in flight while the kernel frees sent slots.
	DefaultRingFrames = 2048
	// ringFrameSize holds the largest frame (MaxSize - FCSLen = 1514
	// bytes) plus the 42 bytes of slot and vnet header in front, rounded to
	// two slots per 4 KiB page.
	ringFrameSize = 2048
	// stallSleep is how long the generator sleeps when the ring is full:
	// about the time the kernel needs to consume a few dozen frames,
	// short next to a point (seconds).
	stallSleep = 50 * time.Microsecond
)

// Config configures a Generator. Zero fields mean the defaults.
type Config struct {
	// CPU is the CPU the sending thread is pinned to; negative: no pinning.
	CPU int
	// Batch is the number of frames per sendto (default DefaultBatch).
	Batch int
	// RingFrames is the number of transmit slots (default DefaultRingFrames).
	RingFrames int
}

// Generator sends frames on one interface.
type Generator struct {
	cfg Config
	tx  *afpacket.TX
	// The flow the next run starts with: a run goes on where the last
	// one with the same Frames stopped, so that runs shorter than a
	// cycle through the flows still visit them all in turn.
	last *Frames
	next int
}

// cursor returns the flow a run of f starts with.
func (g *Generator) cursor(f *Frames) int {
	if g.last != f || g.next >= f.Flows() {
		g.last, g.next = f, 0
	}
	return g.next
}

// Open opens a transmit ring on the interface with index ifindex. The
// caller must be in the interface's network namespace (the socket stays
// there; Run may be called from anywhere).
func Open(ifindex int, cfg Config) (*Generator, error) {
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.RingFrames <= 0 {
		cfg.RingFrames = DefaultRingFrames
	}
	tx, err := afpacket.OpenTX(ifindex, &afpacket.TXConfig{
		FrameSize:  ringFrameSize,
		FrameCount: cfg.RingFrames,
		// veth has no qdisc (noqueue), so nothing is lost by going
		// straight to the driver, and a lock and a few checks are saved.
		QdiscBypass: true,
	})
	if err != nil {
		return nil, fmt.Errorf("pktgen: %w", err)
	}
	return &Generator{cfg: cfg, tx: tx}, nil
}

// Close closes the ring.
func (g *Generator) Close() error { return g.tx.Close() }

// Result is what one Run did.
type Result struct {
	// Frames is the number of frames committed to the ring and flushed.
	Frames uint64
	// Refused counts frames the kernel's egress path refused (ENOBUFS;
	// afpacket.TX.Drops), which never left.
	Refused uint64
	// Stalls counts the times every slot of the ring was in flight, so
	// the generator slept (stallSleep) to let the kernel catch up.
	Stalls uint64
	// Start and End bound the sending: the first frame written, and
	// the return of the last sendto.
	Start, End time.Time
}

// Elapsed is End - Start.
func (r Result) Elapsed() time.Duration { return r.End.Sub(r.Start) }

// Run sends frames, cycling through the flows (from where the last run of
// the same f stopped), for d or until ctx is done, on a thread pinned to
// Config.CPU. It returns early only if pinning fails. Runs must not
// overlap.
func (g *Generator) Run(ctx context.Context, f *Frames, d time.Duration) (Result, error) {
	if f.Len() > g.tx.MaxFrame() {
		return Result{}, fmt.Errorf("pktgen: %d-byte frames do not fit %d-byte slots", f.Len(), g.tx.MaxFrame())
	}
	type out struct {
		r   Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		// Never unlocked: the thread dies with the goroutine (see
		// the package doc).
		runtime.LockOSThread()
		if g.cfg.CPU >= 0 {
			var set unix.CPUSet
			set.Set(g.cfg.CPU)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				done <- out{err: fmt.Errorf("pktgen: pinning to CPU %d: %w", g.cfg.CPU, os.NewSyscallError("sched_setaffinity", err))}
				return
			}
		}
		done <- out{r: g.loop(ctx, f, d)}
	}()
	o := <-done
	return o.r, o.err
}

func (g *Generator) loop(ctx context.Context, f *Frames, d time.Duration) Result {
	tx, batch, flows := g.tx, g.cfg.Batch, f.Flows()
	stop := ctx.Done()
	drops0 := tx.Drops()
	var r Result
	r.Start = time.Now()
	deadline := r.Start.Add(d)
	flow := g.cursor(f)
	defer func() { g.next = flow }()
	for {
		for range batch {
			_, buf, ok := tx.Slot()
			if !ok {
				// Every slot in flight (the kernel frees one when
				// it has consumed its frame). Spinning here would
				// take the CPU from the softirq work that frees
				// them when it is deferred to ksoftirqd, on the
				// same CPU: sleep instead, then flush and retry.
				r.Stalls++
				time.Sleep(stallSleep)
				break
			}
			tx.Commit(f.Write(buf, flow))
			r.Frames++
			if flow++; flow == flows {
				flow = 0
			}
		}
		_ = tx.Flush() // EAGAIN-like conditions leave frames queued for the next Flush
		select {
		case <-stop:
			return g.finish(r, drops0)
		default:
		}
		if !time.Now().Before(deadline) {
			return g.finish(r, drops0)
		}
	}
}

// finish pushes out what is still queued (bounded: a stalled ring gives up
// after a few tries) and stamps the end.
func (g *Generator) finish(r Result, drops0 uint64) Result {
	for i := 0; i < 100 && g.tx.Pending(); i++ {
		_ = g.tx.Flush()
	}
	r.End = time.Now()
	r.Refused = g.tx.Drops() - drops0
	return r
}

// timerSlack is the paced sender's timer slack (prctl PR_SET_TIMERSLACK):
// 1 ns instead of the default 50 µs, so that a sleep of a few tens of
// microseconds between frames ends on time.
const timerSlack = 1

// RunPaced sends one stamped frame per sendto at rate frames per second,
// cycling through the flows, for d or until ctx is done, on a thread
// pinned to Config.CPU. Each frame carries the time it was handed to the
// kernel (WriteStamped with time.Now().UnixNano(), CLOCK_REALTIME, the
// clock the kernel stamps received frames with), taken right before its
// sendto. Between frames the thread sleeps (nanosleep with a 1 ns timer
// slack) rather than spin, so that the CPU stays free for the softirq work
// and whatever else runs there; a frame whose time has passed is sent at
// once, and the schedule never runs more than one frame ahead.
func (g *Generator) RunPaced(ctx context.Context, f *Frames, d time.Duration, rate int) (Result, error) {
	if rate <= 0 {
		return Result{}, fmt.Errorf("pktgen: rate %d frames/s", rate)
	}
	if f.Len() > g.tx.MaxFrame() {
		return Result{}, fmt.Errorf("pktgen: %d-byte frames do not fit %d-byte slots", f.Len(), g.tx.MaxFrame())
	}
	type out struct {
		r   Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		runtime.LockOSThread() // never unlocked, as in Run
		if g.cfg.CPU >= 0 {
			var set unix.CPUSet
			set.Set(g.cfg.CPU)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				done <- out{err: fmt.Errorf("pktgen: pinning to CPU %d: %w", g.cfg.CPU, os.NewSyscallError("sched_setaffinity", err))}
				return
			}
		}
		if err := unix.Prctl(unix.PR_SET_TIMERSLACK, timerSlack, 0, 0, 0); err != nil {
			done <- out{err: fmt.Errorf("pktgen: %w", os.NewSyscallError("prctl PR_SET_TIMERSLACK", err))}
			return
		}
		done <- out{r: g.paced(ctx, f, d, time.Second/time.Duration(rate))}
	}()
	o := <-done
	return o.r, o.err
}

func (g *Generator) paced(ctx context.Context, f *Frames, d, interval time.Duration) Result {
	tx, flows := g.tx, f.Flows()
	stop := ctx.Done()
	drops0 := tx.Drops()
	var r Result
	r.Start = time.Now()
	deadline := r.Start.Add(d)
	next := r.Start
	flow := g.cursor(f)
	defer func() { g.next = flow }()
	for {
		now := time.Now()
		if !now.Before(deadline) {
			return g.finish(r, drops0)
		}
		if wait := next.Sub(now); wait > 0 {
			ts := unix.NsecToTimespec(int64(wait))
			_ = unix.Nanosleep(&ts, nil) // EINTR: a frame slightly early
		} else if -wait > interval {
			next = now // fallen behind by more than a frame: no burst to catch up
		}
		next = next.Add(interval)
		_, buf, ok := tx.Slot()
		if !ok {
			r.Stalls++
			_ = tx.Flush()
			continue
		}
		tx.Commit(f.WriteStamped(buf, flow, time.Now().UnixNano()))
		_ = tx.Flush()
		r.Frames++
		if flow++; flow == flows {
			flow = 0
		}
		select {
		case <-stop:
			return g.finish(r, drops0)
		default:
		}
	}
}
