package arp

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manual clock: AfterFunc callbacks run synchronously,
// in deadline order, from the goroutine that calls Advance.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	when    time.Time
	seq     int // FIFO among equal deadlines
	f       func()
	stopped bool
	fired   bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{c: c, when: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped && !t.fired
	t.stopped = true
	return was
}

// Advance moves the clock forward by d, firing every timer due on the way
// (including timers that those callbacks set, if they fall due too).
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool { return t.stopped || t.fired })
		var next *fakeTimer
		for _, t := range c.timers {
			if t.when.After(target) {
				continue
			}
			if next == nil || t.when.Before(next.when) || (t.when.Equal(next.when) && t.seq < next.seq) {
				next = t
			}
		}
		if next == nil {
			c.now = target
			c.mu.Unlock()
			return
		}
		c.now = next.when
		next.fired = true
		c.mu.Unlock()
		next.f()
	}
}

// pending reports how many timers are armed.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped && !t.fired {
			n++
		}
	}
	return n
}

// fakeConn is an in-memory frameConn. deliver hands the reader one frame
// and returns once the Resolver has finished handling it (the reader has
// come back for the next frame), so tests are deterministic.
type fakeConn struct {
	rx        chan delivery
	closed    chan struct{}
	closeOnce sync.Once
	lastDone  chan struct{} // only the reader goroutine touches it

	mu       sync.Mutex
	sent     [][]byte
	writeErr error
}

type delivery struct {
	b    []byte
	done chan struct{}
}

func newFakeConn() *fakeConn {
	return &fakeConn{rx: make(chan delivery), closed: make(chan struct{})}
}

func (c *fakeConn) ReadFrame(b []byte) (int, error) {
	if c.lastDone != nil {
		close(c.lastDone)
		c.lastDone = nil
	}
	select {
	case d := <-c.rx:
		c.lastDone = d.done
		return copy(b, d.b), nil
	case <-c.closed:
		return 0, fmt.Errorf("fake read: %w", net.ErrClosed)
	}
}

func (c *fakeConn) WriteFrame(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writeErr != nil {
		return c.writeErr
	}
	c.sent = append(c.sent, slices.Clone(b))
	return nil
}

func (c *fakeConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *fakeConn) deliver(t testing.TB, f Frame) {
	t.Helper()
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	c.deliverRaw(t, b)
}

func (c *fakeConn) deliverRaw(t testing.TB, b []byte) {
	t.Helper()
	d := delivery{b: b, done: make(chan struct{})}
	select {
	case c.rx <- d:
	case <-time.After(10 * time.Second): // safety bound only
		t.Fatal("reader did not take the frame")
	}
	select {
	case <-d.done:
	case <-time.After(10 * time.Second): // safety bound only
		t.Fatal("reader did not finish the frame")
	}
}

// take returns and forgets the frames written so far, decoded.
func (c *fakeConn) take(t testing.TB) []Frame {
	t.Helper()
	c.mu.Lock()
	raw := c.sent
	c.sent = nil
	c.mu.Unlock()
	out := make([]Frame, len(raw))
	for i, b := range raw {
		if err := out[i].UnmarshalBinary(b); err != nil {
			t.Fatalf("resolver wrote a bad frame %x: %v", b, err)
		}
	}
	return out
}

// fakeAddrs is the namespace's address list.
type fakeAddrs struct {
	mu    sync.Mutex
	list  []ifAddr
	err   error
	calls int
}

func (a *fakeAddrs) get() ([]ifAddr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	return slices.Clone(a.list), a.err
}

func (a *fakeAddrs) set(list ...ifAddr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.list = list
}

// logSink records log lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (s *logSink) f(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, fmt.Sprintf(format, args...))
}

// count returns the lines containing all of words.
func (s *logSink) count(words ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			n++
		}
	}
	return n
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

// Test fixture: two interfaces.
var (
	mac1 = [6]byte{0x02, 0, 0, 0, 0, 0x01} // eth1, ifindex 2, 192.168.1.1/24
	mac2 = [6]byte{0x02, 0, 0, 0, 0, 0x02} // eth2, ifindex 3, 192.168.2.1/24
	macA = [6]byte{0x02, 0xaa, 0, 0, 0, 0x0a}
	macB = [6]byte{0x02, 0xbb, 0, 0, 0, 0x0b}
	macC = [6]byte{0x02, 0xcc, 0, 0, 0, 0x0c} // a client

	ip1   = netip.MustParseAddr("192.168.1.1")
	ip2   = netip.MustParseAddr("192.168.2.1")
	realA = netip.MustParseAddr("192.168.1.10")
	realB = netip.MustParseAddr("192.168.2.20")
	cliC  = netip.MustParseAddr("192.168.1.50")
	vip   = netip.MustParseAddr("192.168.1.100")
)

type harness struct {
	r      *Resolver
	clk    *fakeClock
	c1, c2 *fakeConn
	addrs  *fakeAddrs
	logs   *logSink // Logf
	errs   *logSink // Errorf
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{clk: newFakeClock(), c1: newFakeConn(), c2: newFakeConn(),
		addrs: &fakeAddrs{}, logs: &logSink{}, errs: &logSink{}}
	h.addrs.set(
		ifAddr{1, netip.MustParsePrefix("127.0.0.1/8")},
		ifAddr{2, netip.PrefixFrom(ip1, 24)},
		ifAddr{3, netip.PrefixFrom(ip2, 24)},
	)
	cfg.Logf, cfg.Errorf = h.logs.f, h.errs.f
	links := []*link{
		{index: 2, name: "eth1", mac: mac1, conn: h.c1},
		{index: 3, name: "eth2", mac: mac2, conn: h.c2},
	}
	r, err := newResolver(links, &cfg, sysDeps{clock: h.clk, addrs: h.addrs.get})
	if err != nil {
		t.Fatal(err)
	}
	h.r = r
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

// reply builds the reply a neighbour at ip/mac sends to eth1.
func replyFrom(ip netip.Addr, mac [6]byte, to [6]byte, toIP netip.Addr) Frame {
	return Frame{Dst: to, Src: mac, Op: OpReply, SenderMAC: mac, SenderIP: ip, TargetMAC: to, TargetIP: toIP}
}

// requestFrom builds a broadcast request from ip/mac for target.
func requestFrom(ip netip.Addr, mac [6]byte, target netip.Addr) Frame {
	return Frame{Dst: Broadcast, Src: mac, Op: OpRequest, SenderMAC: mac, SenderIP: ip, TargetIP: target}
}

// wantRequest checks frames are exactly n broadcast requests for target
// from the link at mac/sender.
func wantRequests(t *testing.T, frames []Frame, n int, mac [6]byte, sender, target netip.Addr) {
	t.Helper()
	if len(frames) != n {
		t.Fatalf("got %d frames, want %d requests: %+v", len(frames), n, frames)
	}
	want := Frame{Dst: Broadcast, Src: mac, Op: OpRequest, SenderMAC: mac, SenderIP: sender, TargetIP: target}
	for _, f := range frames {
		if f != want {
			t.Fatalf("request = %+v, want %+v", f, want)
		}
	}
}
