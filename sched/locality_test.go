package sched

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gvs-project/gvs/conntrack"
)

// fakeClock is an injected clock: tests move it, nothing sleeps.
type fakeClock struct{ t time.Time }

var clockBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newFakeClock() *fakeClock          { return &fakeClock{t: clockBase} }
func (c *fakeClock) now() time.Time     { return c.t }
func (c *fakeClock) at(d time.Duration) { c.t = clockBase.Add(d) }
func (c *fakeClock) opts() *Options     { return &Options{Now: c.now} }
func (c *fakeClock) optsExp(e time.Duration) *Options {
	return &Options{Now: c.now, Expiration: e}
}

// vip returns a key from a fixed client to virtual address 192.168.150.x.
func vip(x byte) *conntrack.Key {
	k := conntrack.KeyV4(6, [4]byte{192, 168, 1, 1}, 40000, [4]byte{192, 168, 150, x}, 80)
	return &k
}

func newLocality(t *testing.T, name string, o *Options) (Scheduler, *list, *conns) {
	t.Helper()
	s, err := NewWith(name, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	l := &list{}
	l.add(s, "a", netip.MustParseAddrPort("10.0.0.1:80"), 1)
	l.add(s, "b", netip.MustParseAddrPort("10.0.0.2:80"), 1) // list [b a]
	return s, l, newConns()
}

func (l *list) pick(s Scheduler, k *conntrack.Key) string { return l.name(s.Pick(l.ds, k)) }

// TestLBLC follows ip_vs_lblc_schedule (ip_vs_lblc.c): "if (en) {
// en->lastuse = jiffies; dest = en->dest; if ((dest->flags &
// IP_VS_DEST_F_AVAILABLE) && weight > 0 && !is_overloaded(dest, svc)) goto
// out; }", else __ip_vs_lblc_schedule (wlc's rule) and ip_vs_lblc_new.
// is_overloaded: "activeconns > weight" and some server with
// "activeconns*2 < weight".
func TestLBLC(t *testing.T) {
	clk := newFakeClock()
	s, l, c := newLocality(t, "lblc", clk.opts())
	clk.at(time.Second)
	if got := l.pick(s, vip(1)); got != "b" {
		t.Fatalf("first pick %s, want b (all idle: the first)", got)
	}
	c.add(t, l.dest("b"), true) // b: 1 active, not more than its weight
	if got := l.pick(s, vip(1)); got != "b" {
		t.Errorf("cached pick %s, want b", got)
	}
	if got := l.pick(s, vip(2)); got != "a" {
		t.Errorf("another address %s, want a (b has 256 of overhead)", got)
	}
	c.add(t, l.dest("b"), true) // b: 2 active > weight 1, and a has 0*2 < 1
	if got := l.pick(s, vip(1)); got != "a" {
		t.Errorf("with b overloaded in lblc's sense: %s, want a", got)
	}
	if got := l.pick(s, vip(1)); got != "a" {
		t.Errorf("after the entry moved: %s, want a", got)
	}
	// ip_vs_lblc_new replaced vip(1)'s entry with ip_vs_lblc_del, which
	// does not decrement tbl->entries: 3 counted, 2 present.
	ls := s.(*lblc)
	if ls.entries != 3 || countEntries(ls) != 2 {
		t.Errorf("entries counted %d, present %d; want 3 and 2 (the kernel's drift)", ls.entries, countEntries(ls))
	}

	t.Run("overloaded only if some server is below half its weight", func(t *testing.T) {
		s, l, c := newLocality(t, "lblc", newFakeClock().opts())
		if got := l.pick(s, vip(1)); got != "b" {
			t.Fatalf("first pick %s", got)
		}
		c.set(t, l.dest("b"), 2, 0)
		c.set(t, l.dest("a"), 1, 0) // 1*2 < 1 is false, and b: 2*2 < 1 too
		if got := l.pick(s, vip(1)); got != "b" {
			t.Errorf("%s, want b kept", got)
		}
	})
	t.Run("a flagged server stays cached", func(t *testing.T) {
		s, l, c := newLocality(t, "lblc", newFakeClock().opts())
		if got := l.pick(s, vip(1)); got != "b" {
			t.Fatalf("first pick %s", got)
		}
		c.overload(t, l.dest("b"), true)
		// lblc does not test IP_VS_DEST_FL_OVERLOAD for a cached server.
		if got := l.pick(s, vip(1)); got != "b" {
			t.Errorf("%s, want b (lblc ignores the flag for its cache)", got)
		}
		if got := l.pick(s, vip(2)); got != "a" {
			t.Errorf("new address %s, want a (the wlc pick skips flagged servers)", got)
		}
	})
	t.Run("weight 0 or removed: scheduled again", func(t *testing.T) {
		s, l, _ := newLocality(t, "lblc", newFakeClock().opts())
		if got := l.pick(s, vip(1)); got != "b" {
			t.Fatalf("first pick %s", got)
		}
		l.edit(s, "b", 0)
		if got := l.pick(s, vip(1)); got != "a" {
			t.Errorf("b quiesced: %s, want a", got)
		}
		l.edit(s, "b", 1)
		l.remove(s, "a")
		if got := l.pick(s, vip(1)); got != "b" {
			t.Errorf("a removed: %s, want b", got)
		}
	})
}

func countEntries(s *lblc) int {
	n := 0
	for _, en := range s.buckets {
		for ; en != nil; en = en.next {
			n++
		}
	}
	return n
}

// TestLBLCExpiry: ip_vs_lblc_check_expire runs every CHECK_EXPIRE_INTERVAL
// (60 s) from init_service; with the table within max_size it counts, and
// every COUNT_FOR_FULL_EXPIRATION-th (30th) run is ip_vs_lblc_full_check,
// which drops entries unless "time_before(now, en->lastuse +
// sysctl_lblc_expiration)". So full checks run at 30 min, 1 h, ... after
// the scheduler was made, and an entry last used at 1 s goes at the first
// full check at or after 24 h + 1 s: 24 h 30 min.
func TestLBLCExpiry(t *testing.T) {
	for _, name := range []string{"lblc", "lblcr"} {
		t.Run(name, func(t *testing.T) {
			clk := newFakeClock()
			s, l, c := newLocality(t, name, clk.opts())
			clk.at(time.Second)
			if got := l.pick(s, vip(1)); got != "b" {
				t.Fatalf("first pick %s", got)
			}
			c.add(t, l.dest("b"), true) // the wlc rule now prefers a
			clk.at(24*time.Hour + 29*time.Minute + 59*time.Second)
			s.Changed(l.ds, Change{Kind: Updated, Index: -1}) // runs due timer work only
			if !hasEntry(s, vip(1)) {
				t.Fatal("entry gone before the full check at 24h30m")
			}
			clk.at(24*time.Hour + 30*time.Minute)
			if got := l.pick(s, vip(2)); got != "a" {
				t.Fatalf("pick for another address: %s", got)
			}
			if hasEntry(s, vip(1)) {
				t.Fatal("entry kept past the full check at 24h30m")
			}
			if got := l.pick(s, vip(1)); got != "a" {
				t.Errorf("after expiry: %s, want a (scheduled afresh)", got)
			}
		})
	}
	t.Run("a use keeps the entry", func(t *testing.T) {
		clk := newFakeClock()
		s, l, c := newLocality(t, "lblc", clk.opts())
		clk.at(time.Second)
		l.pick(s, vip(1))
		c.add(t, l.dest("b"), true)
		clk.at(23 * time.Hour)
		if got := l.pick(s, vip(1)); got != "b" {
			t.Fatalf("at 23h: %s, want b", got)
		}
		clk.at(46*time.Hour + 30*time.Minute)
		if got := l.pick(s, vip(1)); got != "b" {
			t.Errorf("at 46h30m, 23h30m after its last use: %s, want b", got)
		}
		// The full check at 70h30m (>= 46h30m + 24h) drops it.
		clk.at(70*time.Hour + 30*time.Minute)
		if got := l.pick(s, vip(1)); got != "a" {
			t.Errorf("at 70h30m, 24h after its last use: %s, want a (expired)", got)
		}
	})
	t.Run("the expiration option", func(t *testing.T) {
		clk := newFakeClock()
		s, l, _ := newLocality(t, "lblc", clk.optsExp(time.Hour))
		clk.at(time.Second)
		l.pick(s, vip(1))
		clk.at(time.Hour + 29*time.Minute)
		s.Changed(l.ds, Change{Kind: Updated, Index: -1})
		if !hasEntry(s, vip(1)) {
			t.Fatal("gone before 1h30m")
		}
		clk.at(time.Hour + 30*time.Minute)
		s.Changed(l.ds, Change{Kind: Updated, Index: -1})
		if hasEntry(s, vip(1)) {
			t.Fatal("kept past 1h30m with a 1h expiration")
		}
	})
	t.Run("a year idle", func(t *testing.T) {
		clk := newFakeClock()
		s, l, _ := newLocality(t, "lblc", clk.opts())
		clk.at(time.Second)
		l.pick(s, vip(1))
		clk.at(365 * 24 * time.Hour)
		s.Changed(l.ds, Change{Kind: Updated, Index: -1})
		if hasEntry(s, vip(1)) {
			t.Fatal("entry survived a year")
		}
		// 525600 ticks are due at the year's end: the last was a full
		// check (525600 = 30*17520), so the counter is back to 1.
		tm := s.(*lblc).timer
		if tm.counter != 1 || tm.next != int64(365*24*time.Hour+time.Minute) {
			t.Errorf("timer counter %d next %v, want 1 and 365d+1m", tm.counter, time.Duration(tm.next))
		}
	})
}

func hasEntry(s Scheduler, k *conntrack.Key) bool {
	switch s := s.(type) {
	case *lblc:
		return s.get(&k.Virtual) != nil
	case *lblcr:
		return s.get(&k.Virtual) != nil
	}
	panic("not a locality scheduler")
}

// TestLBLCOverSize: above max_size (IP_VS_LBLC_TAB_SIZE*16 = 16384)
// entries, a timer run that is not a full check collects: goal =
// (entries - max_size)*4/3, capped at max_size/2; from the bucket after the
// rover, each bucket loses its entries unused for ENTRY_TIMEOUT (6 min),
// and the walk stops after the bucket that brings goal to 0 or below,
// leaving the rover there (ip_vs_lblc_check_expire, ip_vs_lblcr
// likewise).
func TestLBLCOverSize(t *testing.T) {
	for _, name := range []string{"lblc", "lblcr"} {
		t.Run(name, func(t *testing.T) {
			const extra = 300
			clk := newFakeClock()
			s, l, _ := newLocality(t, name, clk.opts())
			clk.at(time.Second)
			size := make([]int, lblcTabSize)
			for i := range lblcMaxSize + extra {
				k := conntrack.KeyV4(6, [4]byte{192, 168, 1, 1}, 40000, [4]byte{198, 18, byte(i >> 8), byte(i)}, 80)
				k.Virtual[11] = byte(i >> 16) // distinct even past 65536 (not mapped v4 then)
				l.pick(s, &k)
				size[lblcBucket(&k.Virtual)]++
			}
			ex := s.(expirer)
			if ex.entryCount() != lblcMaxSize+extra {
				t.Fatalf("%d entries, want %d", ex.entryCount(), lblcMaxSize+extra)
			}
			// Timer runs at 60 s ... 360 s find nothing unused for 6 min
			// (360 < 1 + 360) and walk all 1024 buckets: the rover comes
			// back to 0.
			clk.at(7*time.Minute - time.Nanosecond)
			s.Changed(l.ds, Change{Kind: Updated, Index: -1})
			if ex.entryCount() != lblcMaxSize+extra {
				t.Fatalf("entries collected before they were 6 min unused")
			}
			// At 420 s: goal 400, buckets 1, 2, ... are emptied until 400
			// or more entries are gone.
			goal, removed, rover := extra*4/3, 0, 0
			for j := 1; removed < goal; j++ {
				removed += size[j]
				rover = j
			}
			clk.at(7 * time.Minute)
			s.Changed(l.ds, Change{Kind: Updated, Index: -1})
			if got := ex.entryCount(); got != lblcMaxSize+extra-removed {
				t.Errorf("%d entries left, want %d (buckets 1..%d emptied)", got, lblcMaxSize+extra-removed, rover)
			}
			var tm gcTimer
			switch s := s.(type) {
			case *lblc:
				tm = s.timer
			case *lblcr:
				tm = s.timer
			}
			if tm.rover != rover || tm.counter != 1 {
				t.Errorf("rover %d counter %d, want %d and 1 (collecting runs do not count)", tm.rover, tm.counter, rover)
			}
			t.Logf("%d entries over max_size: goal %d, buckets 1..%d emptied, %d entries removed", extra, goal, rover, removed)
		})
	}
}

// TestLBLCR follows ip_vs_lblcr_schedule (ip_vs_lblcr.c).
func TestLBLCR(t *testing.T) {
	t.Run("replication", func(t *testing.T) {
		s, l, c := newLocality(t, "lblcr", newFakeClock().opts())
		if got := l.pick(s, vip(1)); got != "b" {
			t.Fatalf("first pick %s, want b", got)
		}
		// b: 2 active > weight 1 and a idle: is_overloaded(b). The set's
		// least-loaded member is b, overloaded, so the wlc pick (a) is
		// added to the set (at its head) and used.
		c.set(t, l.dest("b"), 2, 0)
		if got := l.pick(s, vip(1)); got != "a" {
			t.Fatalf("b overloaded: %s, want a", got)
		}
		if got := setOf(s, l, vip(1)); got != "a b" {
			t.Errorf("set %q, want \"a b\"", got)
		}
		// ip_vs_dest_set_min over [a b]: a 0/1, b 512/1: a.
		if got := l.pick(s, vip(1)); got != "a" {
			t.Errorf("%s, want a", got)
		}
	})
	t.Run("a flagged member is skipped", func(t *testing.T) {
		s, l, c := newLocality(t, "lblcr", newFakeClock().opts())
		if got := l.pick(s, vip(1)); got != "b" {
			t.Fatalf("first pick %s", got)
		}
		c.overload(t, l.dest("b"), true)
		// Unlike lblc, ip_vs_dest_set_min skips IP_VS_DEST_FL_OVERLOAD.
		if got := l.pick(s, vip(1)); got != "a" {
			t.Errorf("%s, want a", got)
		}
	})
	t.Run("a removed member is skipped", func(t *testing.T) {
		s, l, _ := newLocality(t, "lblcr", newFakeClock().opts())
		l.pick(s, vip(1))
		l.remove(s, "b")
		if got := l.pick(s, vip(1)); got != "a" {
			t.Errorf("%s, want a", got)
		}
		if got := setOf(s, l, vip(1)); got != "a ?" {
			t.Errorf("set %q, want \"a ?\" (the removed b stays a member)", got)
		}
	})
	// "More than one destination + enough time passed by, cleanup": if
	// the set has more than one member and "time_after(jiffies,
	// en->set.lastmod + sysctl_lblcr_expiration)", ip_vs_dest_set_max's
	// member is erased (setting lastmod). The returned server was chosen
	// by ip_vs_dest_set_min before.
	t.Run("the set shrinks after the expiration", func(t *testing.T) {
		clk := newFakeClock()
		s, l, c := newLocality(t, "lblcr", clk.optsExp(time.Hour))
		clk.at(10 * time.Second)
		l.pick(s, vip(1)) // set [b]
		c.set(t, l.dest("b"), 2, 0)
		clk.at(20 * time.Second)
		if got := l.pick(s, vip(1)); got != "a" { // set [a b], lastmod 20 s
			t.Fatalf("%s, want a", got)
		}
		c.set(t, l.dest("a"), 1, 0) // a 256/1 < b 512/1; a not overloaded (1 > 1 is false)
		for _, at := range []time.Duration{20 * time.Minute, 40 * time.Minute, time.Hour + 20*time.Second} {
			clk.at(at) // keep the entry in use; the last is lastmod + 1h exactly
			if got := l.pick(s, vip(1)); got != "a" || setOf(s, l, vip(1)) != "a b" {
				t.Fatalf("at %v: %s with set %q, want a with [a b]", at, got, setOf(s, l, vip(1)))
			}
		}
		clk.at(time.Hour + 20*time.Second + time.Nanosecond)
		if got := l.pick(s, vip(1)); got != "a" || setOf(s, l, vip(1)) != "a" {
			t.Errorf("past lastmod + 1h: %s with set %q, want a with [a] (b, the most loaded, dropped)", got, setOf(s, l, vip(1)))
		}
	})
	t.Run("the member erased can be the one used", func(t *testing.T) {
		clk := newFakeClock()
		s, l, c := newLocality(t, "lblcr", clk.optsExp(time.Hour))
		clk.at(10 * time.Second)
		l.pick(s, vip(1)) // [b]
		c.set(t, l.dest("b"), 2, 0)
		l.pick(s, vip(1))           // [a b]
		c.set(t, l.dest("a"), 2, 0) // now a and b both 512/1
		// Both a and b are overloaded in lblc's sense only if some server
		// is below half its weight; none is, so a is used.
		clk.at(time.Hour + 11*time.Second)
		// set_min: a (first, ties stay); set_max: a too (first of positive
		// weight, ties stay): a is erased yet returned.
		if got := l.pick(s, vip(1)); got != "a" || setOf(s, l, vip(1)) != "b" {
			t.Errorf("%s with set %q, want a with [b]", got, setOf(s, l, vip(1)))
		}
	})
}

// setOf names an lblcr entry's members, "?" for one no longer listed.
func setOf(s Scheduler, l *list, k *conntrack.Key) string {
	en := s.(*lblcr).get(&k.Virtual)
	if en == nil {
		return "<none>"
	}
	var names []string
	for _, d := range en.set {
		n := "?"
		for i, x := range l.ds {
			if x == d {
				n = l.names[i]
			}
		}
		names = append(names, n)
	}
	return joinSpace(names)
}

func joinSpace(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += " "
		}
		out += s
	}
	return out
}

// refExpirer is a plain model of a table for the timer reference test.
type refExpirer struct {
	buckets [lblcTabSize][]int64 // last uses
	n       int
	removed []int // bucket of each removal, in order
}

func (e *refExpirer) entryCount() int { return e.n }

func (e *refExpirer) expireBucket(j int, now, age int64) int {
	k := 0
	kept := e.buckets[j][:0]
	for _, lu := range e.buckets[j] {
		if now < lu+age {
			kept = append(kept, lu)
			continue
		}
		k++
		e.removed = append(e.removed, j)
	}
	e.buckets[j] = kept
	e.n -= k
	return k
}

// refRun is ip_vs_lblc_check_expire run once per due tick, literally: the
// reference for gcTimer.run, which skips and merges ticks.
func refRun(t *gcTimer, tab expirer, now, expiration int64) {
	for t.next <= now {
		tick := t.next
		switch {
		case t.counter%countForFullExpiration == 0:
			t.fullCheck(tab, tick, expiration)
			t.counter = 1
		case tab.entryCount() <= lblcMaxSize:
			t.counter++
		default:
			t.collect(tab, tick)
		}
		t.next = tick + checkExpireInterval
	}
}

// TestGCTimerAgainstReference drives gcTimer.run and the literal
// one-tick-at-a-time model with the same random tables and time jumps
// (seconds to months) and compares tables, counters and rovers.
func TestGCTimerAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const expiration = int64(24 * time.Hour)
	for iter := range 12 {
		var a, b refExpirer
		ta, tb := newGCTimer(), newGCTimer()
		now := int64(0)
		for step := range 20 {
			// Add entries used now, sometimes enough to pass max_size.
			n := r.IntN(50)
			if r.IntN(8) == 0 {
				n = lblcMaxSize/4 + r.IntN(lblcMaxSize/2)
			}
			for range n {
				j := r.IntN(lblcTabSize)
				a.buckets[j] = append(a.buckets[j], now)
				b.buckets[j] = append(b.buckets[j], now)
				a.n++
				b.n++
			}
			jumps := []int64{int64(time.Second), int64(time.Minute), int64(7 * time.Minute), int64(time.Hour), int64(30 * time.Hour), int64(10 * 24 * time.Hour)}
			now += r.Int64N(jumps[r.IntN(len(jumps))])
			ta.run(&a, now, expiration)
			refRun(&tb, &b, now, expiration)
			if ta != tb || a.n != b.n || !slices.Equal(sortedCopy(a.removed), sortedCopy(b.removed)) {
				t.Fatalf("iter %d step %d at %v: timer %+v entries %d, reference %+v entries %d",
					iter, step, time.Duration(now), ta, a.n, tb, b.n)
			}
		}
	}
}

func sortedCopy(s []int) []int {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
