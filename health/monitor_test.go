package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when the test advances it.
type fakeClock struct {
	mu      sync.Mutex
	cond    *sync.Cond
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	c := &fakeClock{now: time.Unix(1700000000, 0)}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	c.cond.Broadcast()
	return ch
}

// Advance moves the time on and fires the waiters it passes.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
			continue
		}
		keep = append(keep, w)
	}
	c.waiters = keep
}

// waitWaiters blocks until n goroutines wait on the clock.
func (c *fakeClock) waitWaiters(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.waiters) < n {
		c.cond.Wait()
	}
}

// scriptDialer answers each dial with the next scripted result: nil
// connects (to one end of a pipe), an error fails.
type scriptDialer struct {
	mu      sync.Mutex
	results []error
	dials   []string
}

func (d *scriptDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dials = append(d.dials, network+" "+addr)
	if len(d.results) == 0 {
		return nil, errors.New("script exhausted")
	}
	err := d.results[0]
	d.results = d.results[1:]
	if err != nil {
		return nil, err
	}
	a, b := net.Pipe()
	b.Close()
	return a, nil
}

type keyedEvent struct {
	key string
	ev  Event
}

// recorder collects events; the channel is large enough that OnEvent
// never blocks in these tests.
func recorder() (chan keyedEvent, func(string, Event)) {
	ch := make(chan keyedEvent, 1000)
	return ch, func(k string, e Event) { ch <- keyedEvent{k, e} }
}

// TestMonitorRiseFall drives one TCP check through a scripted sequence of
// results with a fake clock: the server goes down exactly on the third
// failure in a row and comes back exactly on the second success in a
// row, every event has the next sequence number, and probes are an
// interval apart.
func TestMonitorRiseFall(t *testing.T) {
	fail := errors.New("connection refused")
	script := []error{nil, fail, fail, nil, fail, fail, fail, fail, nil, fail, nil, nil, nil}
	// The verdict after each probe, from the rules (rise 2, fall 3).
	wantTransitions := map[int]EventKind{6: Down, 11: Up}
	d := &scriptDialer{results: script}
	clock := newFakeClock()
	events, onEvent := recorder()
	m := NewMonitor(Config[string]{Clock: clock, Dialer: d, OnEvent: onEvent})
	defer m.Close()
	spec := &Spec{Kind: TCP, Interval: time.Second, Rise: 2, Fall: 3}
	if err := spec.Normalize(); err != nil {
		t.Fatal(err)
	}
	m.Set("rs1", Target{Addr: netip.MustParseAddr("192.0.2.1"), Port: 80}, spec, func() bool { return true })

	var seq uint64
	start := clock.Now()
	for i := range script {
		clock.waitWaiters(1) // probe i is done and reported
		ke := <-events
		if ke.key != "rs1" || ke.ev.Kind != Probe || ke.ev.Seq != seq+1 || ke.ev.OK() != (script[i] == nil) {
			t.Fatalf("probe %d: event %+v, want probe #%d ok=%v", i, ke.ev, seq+1, script[i] == nil)
		}
		if got := ke.ev.Time.Sub(start); got != time.Duration(i)*time.Second {
			t.Fatalf("probe %d ran at +%v, want +%ds", i, got, i)
		}
		seq = ke.ev.Seq
		if want, ok := wantTransitions[i]; ok {
			tr := <-events
			if tr.ev.Kind != want || tr.ev.Seq != seq+1 {
				t.Fatalf("after probe %d: event %+v, want %v #%d", i, tr.ev, want, seq+1)
			}
			if want == Down && tr.ev.State.Failures != 3 || want == Up && tr.ev.State.Successes != 2 {
				t.Fatalf("transition %v with state %+v", want, tr.ev.State)
			}
			seq = tr.ev.Seq
		}
		select {
		case ke := <-events:
			t.Fatalf("after probe %d: unexpected event %+v", i, ke.ev)
		default:
		}
		if i < len(script)-1 {
			clock.Advance(time.Second)
		}
	}
	st, ok := m.Status("rs1")
	if !ok || !st.State.Up || st.Probes != uint64(len(script)) || st.Failed != 7 || st.Downs != 1 || st.Ups != 1 ||
		st.LastError != "connection refused" || st.LastSeq != seq {
		t.Fatalf("status %+v", st)
	}
	if s := m.Stats(); s.Probes != uint64(len(script)) || s.Failed != 7 || s.Downs != 1 || s.Ups != 1 || s.Seq != seq || s.Checks != 1 {
		t.Fatalf("stats %+v", s)
	}
	for _, dial := range d.dials {
		if dial != "tcp4 192.0.2.1:80" {
			t.Fatalf("dialled %q", dial)
		}
	}

	// Removing the check reports one final event in the sequence, and
	// nothing after it.
	var final uint64
	if !m.Remove("rs1", func(seq uint64, last Status) { final = seq }) || final != seq+1 {
		t.Fatalf("remove: final seq %d, want %d", final, seq+1)
	}
	clock.Advance(time.Hour)
	if m.Remove("rs1", nil) {
		t.Fatal("removed twice")
	}
	if s := m.Stats(); s.Checks != 0 {
		t.Fatalf("stats after remove %+v", s)
	}
	select {
	case ke := <-events:
		t.Fatalf("event after remove: %+v", ke.ev)
	default:
	}
}

// TestMonitorStartsDown: a check set with up=false needs Rise successes,
// and a check replaced by Set starts afresh from the state given.
func TestMonitorStartsDown(t *testing.T) {
	d := &scriptDialer{results: []error{nil, nil, nil}}
	clock := newFakeClock()
	events, onEvent := recorder()
	m := NewMonitor(Config[string]{Clock: clock, Dialer: d, OnEvent: onEvent})
	defer m.Close()
	spec := &Spec{Kind: TCP, Port: 8080, Interval: time.Second, Rise: 2, Fall: 1}
	if err := spec.Normalize(); err != nil {
		t.Fatal(err)
	}
	m.Set("a", Target{Addr: netip.MustParseAddr("192.0.2.1"), Port: 80}, spec, func() bool { return false })
	clock.waitWaiters(1)
	if ke := <-events; ke.ev.Kind != Probe || ke.ev.State.Up {
		t.Fatalf("first event %+v", ke.ev)
	}
	clock.Advance(time.Second)
	clock.waitWaiters(1)
	if ke := <-events; ke.ev.Kind != Probe {
		t.Fatalf("second event %+v", ke.ev)
	}
	if ke := <-events; ke.ev.Kind != Up || ke.ev.Seq != 3 {
		t.Fatalf("third event %+v", ke.ev)
	}
	if d.dials[0] != "tcp4 192.0.2.1:8080" {
		t.Fatalf("the check's port was not probed: %v", d.dials)
	}
}

// TestMonitorClose: Close stops probes in flight and waits for them.
func TestMonitorClose(t *testing.T) {
	block := make(chan struct{})
	var started sync.WaitGroup
	started.Add(3)
	dialer := dialFunc(func(ctx context.Context, _, _ string) (net.Conn, error) {
		started.Done()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-block:
			return nil, errors.New("unblocked")
		}
	})
	events := make(chan Event, 10)
	m := NewMonitor(Config[int]{Dialer: dialer, OnEvent: func(_ int, e Event) { events <- e }})
	spec := &Spec{Kind: TCP, Interval: time.Hour, Timeout: time.Hour}
	if err := spec.Normalize(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m.Set(i, Target{Addr: netip.MustParseAddr("192.0.2.1"), Port: 80}, spec, func() bool { return true })
	}
	started.Wait()
	m.Close()
	close(block)
	if len(events) != 0 {
		t.Fatalf("%d events from cancelled probes", len(events))
	}
	m.Set(9, Target{}, spec, func() bool { return true }) // ignored after Close
	if len(m.Keys()) != 0 {
		t.Fatal("a check runs after Close")
	}
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f dialFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}

func TestStateObserve(t *testing.T) {
	for _, tc := range []struct {
		start   bool
		results string // o = success, x = failure
		want    string // U/D after each result, * where it changed
	}{
		{true, "xxx", "UUD*"},
		{true, "xxoxxx", "UUUUUD*"},
		{true, "ooxxxxoo", "UUUUD*DDU*"},
		{false, "ooo", "DU*U"},
		{false, "oxoo", "DDDU*"},
	} {
		s := State{Up: tc.start}
		var b strings.Builder
		for _, r := range tc.results {
			changed := s.Observe(r == 'o', 2, 3)
			if s.Up {
				b.WriteByte('U')
			} else {
				b.WriteByte('D')
			}
			if changed {
				b.WriteByte('*')
			}
		}
		if b.String() != tc.want {
			t.Errorf("start up=%v, %s: %s, want %s", tc.start, tc.results, b.String(), tc.want)
		}
	}
}

func TestSpecNormalize(t *testing.T) {
	for _, tc := range []struct {
		spec    Spec
		wantErr string
		check   func(*Spec) error
	}{
		{spec: Spec{Kind: TCP}, check: func(s *Spec) error {
			if s.Interval != DefaultInterval || s.Timeout != DefaultTimeout || s.Rise != 2 || s.Fall != 3 {
				return fmt.Errorf("defaults %+v", s)
			}
			return nil
		}},
		{spec: Spec{Kind: HTTP, Interval: time.Second}, check: func(s *Spec) error {
			if s.URL != "/" || s.Status != 200 || s.Timeout != time.Second {
				return fmt.Errorf("defaults %+v", s)
			}
			return nil
		}},
		{spec: Spec{Kind: HTTP, URL: "http://www.example.com:8080/x?y=1", Digest: strings.Repeat("AB", 16)}, check: func(s *Spec) error {
			host, target, _ := s.request()
			if host != "www.example.com:8080" || target != "/x?y=1" || s.Digest != strings.Repeat("ab", 16) {
				return fmt.Errorf("%q %q %+v", host, target, s)
			}
			return nil
		}},
		{spec: Spec{}, wantErr: "--check: unknown kind 0"},
		{spec: Spec{Kind: 9}, wantErr: "--check: unknown kind 9"},
		{spec: Spec{Kind: TCP, Interval: time.Millisecond}, wantErr: "--check-interval 1ms is outside 10ms..1h0m0s"},
		{spec: Spec{Kind: TCP, Interval: time.Second, Timeout: 2 * time.Second}, wantErr: "--check-timeout 2s is outside"},
		{spec: Spec{Kind: TCP, Rise: 101}, wantErr: "--check-rise 101 is outside 1..100"},
		{spec: Spec{Kind: TCP, Fall: -1}, wantErr: "--check-fall -1 is outside 1..100"},
		{spec: Spec{Kind: TCP, URL: "/"}, wantErr: "--check-url is for http checks, not tcp"},
		{spec: Spec{Kind: UDP, Status: 200}, wantErr: "--check-status is for http checks, not udp"},
		{spec: Spec{Kind: TCP, Digest: "00"}, wantErr: "--check-digest is for http checks"},
		{spec: Spec{Kind: HTTP, Payload: "x"}, wantErr: "--check-payload is for udp checks, not http"},
		{spec: Spec{Kind: TCP, Command: []string{"/bin/true"}}, wantErr: "--check-cmd is for cmd checks"},
		{spec: Spec{Kind: HTTP, URL: "health"}, wantErr: "is neither a path"},
		{spec: Spec{Kind: HTTP, URL: "https://x/"}, wantErr: "is neither a path"},
		{spec: Spec{Kind: HTTP, URL: "http://u:p@x/"}, wantErr: "is neither a path"},
		{spec: Spec{Kind: HTTP, URL: "/a b"}, wantErr: "no fragment or white space"},
		{spec: Spec{Kind: HTTP, Status: 99}, wantErr: "--check-status 99 is not an HTTP status"},
		{spec: Spec{Kind: HTTP, Digest: "xyz"}, wantErr: "--check-digest \"xyz\" is neither"},
		{spec: Spec{Kind: HTTP, Digest: strings.Repeat("a", 40)}, wantErr: "is neither an MD5"},
		{spec: Spec{Kind: UDP, Payload: strings.Repeat("x", MaxPayload+1)}, wantErr: "--check-payload is 1025 bytes"},
		{spec: Spec{Kind: Cmd}, wantErr: "a cmd check needs --check-cmd"},
		{spec: Spec{Kind: Cmd, Command: []string{"true"}}, wantErr: "must be an absolute path"},
		{spec: Spec{Kind: Cmd, Command: []string{"/bin/true", "a\x00b"}}, wantErr: "NUL"},
		{spec: Spec{Kind: Cmd, Command: append([]string{"/bin/x"}, make([]string, MaxArgs)...)}, wantErr: "--check-cmd has 65 arguments"},
		{spec: Spec{Kind: Cmd, Command: []string{"/bin/x", strings.Repeat("x", MaxCmdLen)}}, wantErr: "bytes long, more than 4096"},
	} {
		s := tc.spec
		err := s.Normalize()
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInvalid) {
				t.Errorf("%+v: error %v, want %q", tc.spec, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("%+v: %v", tc.spec, err)
		case tc.check != nil:
			if err := tc.check(&s); err != nil {
				t.Errorf("%+v: %v", tc.spec, err)
			}
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"5": 5 * time.Second, "0.25": 250 * time.Millisecond,
		"200ms": 200 * time.Millisecond, "1m30s": 90 * time.Second, "3600": time.Hour} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "3601", "2h", "NaN", "Inf", "-5ms"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, d)
		}
	}
}

func TestSpecEqual(t *testing.T) {
	a := &Spec{Kind: Cmd, Command: []string{"/bin/x", "1"}}
	b := &Spec{Kind: Cmd, Command: []string{"/bin/x", "1"}}
	if !a.Equal(b) || a.Equal(nil) || !(*Spec)(nil).Equal(nil) {
		t.Fatal("Equal")
	}
	b.Command = []string{"/bin/x", "2"}
	if a.Equal(b) {
		t.Fatal("Equal ignores the command")
	}
}
