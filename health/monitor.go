package health

import (
	"context"
	"net"
	"sync"
	"time"
)

// Clock is what a Monitor reads the time from and waits on between
// probes. SystemClock is the real one; tests use a fake they advance.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// SystemClock is the wall clock.
var SystemClock Clock = systemClock{}

// EventKind says what an Event reports.
type EventKind uint8

const (
	// Probe is one probe's result.
	Probe EventKind = iota + 1
	// Down: the server's check took it down (Fall failures in a row).
	Down
	// Up: the server's check brought it up (Rise successes in a row).
	Up
)

func (k EventKind) String() string {
	switch k {
	case Probe:
		return "probe"
	case Down:
		return "down"
	case Up:
		return "up"
	}
	return "unknown"
}

// Event is one thing a Monitor reports about a check.
type Event struct {
	// Seq numbers the events of a Monitor, all checks together: 1, 2,
	// 3, ... in the order they are reported. A transition's Seq is right
	// after that of the probe that caused it.
	Seq  uint64
	Kind EventKind
	Time time.Time
	// Err is why a probe failed (nil for a success, and for a
	// transition the reason of the last failed probe, if any).
	Err error
	// State is the check's state after the event.
	State State
	// Spec is the check's spec.
	Spec *Spec
}

// OK reports whether a Probe event was a success.
func (e *Event) OK() bool { return e.Kind == Probe && e.Err == nil }

// Status is a check's state and counters, for listings.
type Status struct {
	Spec  *Spec
	State State
	// Probes and Failed count the probes run and those that failed;
	// Downs and Ups the transitions; all since the check was (re)set.
	Probes, Failed, Downs, Ups uint64
	// LastError is the reason of the latest failed probe ("" if none).
	LastError string
	// LastSeq is the Seq of the check's latest event (0 before any).
	LastSeq uint64
	// Since is when the check last changed state, or was set.
	Since time.Time
}

// Stats are a Monitor's counters, over all checks since it was made.
// They only grow.
type Stats struct {
	Probes, Failed, Downs, Ups uint64
	// Seq is the latest event's sequence number.
	Seq uint64
	// Checks is the number of checks running now.
	Checks int
}

// Config configures a Monitor. Zero fields take the defaults.
type Config[K comparable] struct {
	// Clock times the probes (default SystemClock). Timeouts of single
	// probes always use the real time.
	Clock Clock
	// Dialer opens TCP and UDP probes' connections (default a
	// *net.Dialer: the process's network namespace).
	Dialer Dialer
	// Runner runs command checks (default DefaultRunner).
	Runner Runner
	// OnEvent receives every event, in Seq order, one at a time, with
	// the Monitor's lock held: it must not call the Monitor's methods.
	// It is never called for a check once Remove (or a Set replacing
	// it) has returned, so that the caller's view of which servers are
	// checked and the events it sees agree.
	OnEvent func(K, Event)
}

// Monitor runs checks, one goroutine each, keyed by K (the daemon's
// real servers). It is safe for concurrent use.
type Monitor[K comparable] struct {
	cfg    Config[K]
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	checks map[K]*check
	stats  Stats
	closed bool
}

// check is one running check. status and stopped are guarded by the
// Monitor's mu; the rest is fixed.
type check struct {
	spec    *Spec
	prober  *prober
	cancel  context.CancelFunc
	status  Status
	stopped bool
}

// NewMonitor returns a Monitor with no checks.
func NewMonitor[K comparable](cfg Config[K]) *Monitor[K] {
	if cfg.Clock == nil {
		cfg.Clock = SystemClock
	}
	if cfg.Dialer == nil {
		cfg.Dialer = &net.Dialer{}
	}
	if cfg.Runner == nil {
		cfg.Runner = DefaultRunner
	}
	if cfg.OnEvent == nil {
		cfg.OnEvent = func(K, Event) {}
	}
	m := &Monitor[K]{cfg: cfg, checks: map[K]*check{}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m
}

// Set starts checking k's target with spec (Normalize must have
// accepted it), replacing the check k had. The check starts in state
// Up=up() with no results; up is called with the Monitor's lock held,
// after the check it replaces has stopped, so that it reads the verdict
// the last OnEvent left. The first probe runs at once, then one every
// Interval. Set on a closed Monitor does nothing.
func (m *Monitor[K]) Set(k K, t Target, spec *Spec, up func() bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	if old := m.checks[k]; old != nil {
		old.stop()
	}
	ctx, cancel := context.WithCancel(m.ctx)
	c := &check{spec: spec, prober: newProber(spec, t, m.cfg.Dialer, m.cfg.Runner), cancel: cancel,
		status: Status{Spec: spec, State: State{Up: up()}, Since: m.cfg.Clock.Now()}}
	m.checks[k] = c
	m.stats.Checks = len(m.checks)
	m.wg.Add(1)
	go m.run(ctx, k, c)
}

// Remove stops k's check. It reports whether there was one. If there
// was and final is not nil, final is called with the check's last status
// and the next sequence number, under the Monitor's lock as OnEvent is:
// the caller's own event about the check's end (a down server back in
// service without its check) takes its place in the sequence.
func (m *Monitor[K]) Remove(k K, final func(seq uint64, last Status)) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.checks[k]
	if c == nil {
		return false
	}
	c.stop()
	delete(m.checks, k)
	m.stats.Checks = len(m.checks)
	if final != nil {
		m.stats.Seq++
		final(m.stats.Seq, c.status)
	}
	return true
}

// stop ends a check: no event of it is reported after this. Called with
// the Monitor's mu held.
func (c *check) stop() {
	c.stopped = true
	c.cancel()
}

// Keys returns the keys of the running checks.
func (m *Monitor[K]) Keys() []K {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]K, 0, len(m.checks))
	for k := range m.checks {
		out = append(out, k)
	}
	return out
}

// Status returns k's check's status, if k has a check.
func (m *Monitor[K]) Status(k K) (Status, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.checks[k]
	if c == nil {
		return Status{}, false
	}
	return c.status, true
}

// Spec returns k's check's spec, or nil.
func (m *Monitor[K]) Spec(k K) *Spec {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.checks[k]; c != nil {
		return c.spec
	}
	return nil
}

// Stats returns the Monitor's counters.
func (m *Monitor[K]) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Close stops every check and waits for their goroutines (a probe in
// flight is cancelled).
func (m *Monitor[K]) Close() {
	m.mu.Lock()
	m.closed = true
	for k, c := range m.checks {
		c.stop()
		delete(m.checks, k)
	}
	m.stats.Checks = 0
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
}

// run probes one check until it is stopped: a probe at once, then one
// every Interval (from one probe's start to the next's; a probe never
// takes longer than Timeout, which is at most Interval).
func (m *Monitor[K]) run(ctx context.Context, k K, c *check) {
	defer m.wg.Done()
	defer c.prober.close()
	clock := m.cfg.Clock
	for {
		start := clock.Now()
		err := c.prober.probe(ctx)
		if ctx.Err() != nil {
			return
		}
		m.report(k, c, err)
		wait := max(c.spec.Interval-clock.Now().Sub(start), 0)
		select {
		case <-ctx.Done():
			return
		case <-clock.After(wait):
		}
	}
}

// report records a probe's result and reports it, and the transition it
// causes if any.
func (m *Monitor[K]) report(k K, c *check, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.stopped {
		return
	}
	now := m.cfg.Clock.Now()
	st := &c.status
	st.Probes++
	m.stats.Probes++
	if err != nil {
		st.Failed++
		m.stats.Failed++
		st.LastError = err.Error()
	}
	changed := st.State.Observe(err == nil, c.spec.Rise, c.spec.Fall)
	m.stats.Seq++
	st.LastSeq = m.stats.Seq
	m.cfg.OnEvent(k, Event{Seq: m.stats.Seq, Kind: Probe, Time: now, Err: err, State: st.State, Spec: c.spec})
	if !changed {
		return
	}
	kind := Up
	if st.State.Up {
		st.Ups++
		m.stats.Ups++
	} else {
		kind = Down
		st.Downs++
		m.stats.Downs++
	}
	st.Since = now
	m.stats.Seq++
	st.LastSeq = m.stats.Seq
	m.cfg.OnEvent(k, Event{Seq: m.stats.Seq, Kind: kind, Time: now, Err: err, State: st.State, Spec: c.spec})
}
