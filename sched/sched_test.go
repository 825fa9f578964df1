package sched

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gvs-project/gvs/conntrack"
)

// list builds a service's destination list the way the kernel does: each
// added destination goes to the head, and the scheduler hears of each add.
// names and weights are given in the order the servers were added.
type list struct {
	ds    []*Dest
	names []string
}

func build(s Scheduler, names []string, weights []int32) *list {
	l := &list{}
	for i, n := range names {
		d := &Dest{}
		d.SetWeight(weights[i])
		l.ds = append([]*Dest{d}, l.ds...)
		l.names = append([]string{n}, l.names...)
		s.Changed(l.ds, Change{Kind: Added, Index: 0})
	}
	return l
}

func (l *list) remove(s Scheduler, name string) {
	for i, n := range l.names {
		if n == name {
			l.ds = append(l.ds[:i:i], l.ds[i+1:]...)
			l.names = append(l.names[:i:i], l.names[i+1:]...)
			s.Changed(l.ds, Change{Kind: Removed, Index: i})
			return
		}
	}
	panic("no " + name)
}

func (l *list) picks(s Scheduler, n int) string {
	var out []string
	for range n {
		i := s.Pick(l.ds, nil)
		if i < 0 {
			out = append(out, "-")
			continue
		}
		out = append(out, l.names[i])
	}
	return strings.Join(out, " ")
}

func mustNew(t *testing.T, name string) Scheduler {
	t.Helper()
	s, err := New(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The expected sequences below were derived by hand from the kernel's
// ip_vs_rr_schedule and ip_vs_rr_del_dest (net/netfilter/ipvs/ip_vs_rr.c),
// with new destinations added at the head of the list (ip_vs_add_dest ->
// __ip_vs_update_dest -> list_add_rcu).
func TestRR(t *testing.T) {
	t.Run("seed lab: .12 added, then .13", func(t *testing.T) {
		s := mustNew(t, "rr")
		l := build(s, []string{"12", "13"}, []int32{1, 1})
		// The list is [13 12]: the first pick is the most recently added.
		if got, want := l.picks(s, 5), "13 12 13 12 13"; got != want {
			t.Errorf("picks %q, want %q", got, want)
		}
	})
	t.Run("weight 0 is skipped", func(t *testing.T) {
		s := mustNew(t, "rr")
		l := build(s, []string{"a", "b", "c"}, []int32{1, 0, 1})
		if got, want := l.picks(s, 4), "c a c a"; got != want {
			t.Errorf("picks %q, want %q", got, want)
		}
	})
	t.Run("all quiesced", func(t *testing.T) {
		s := mustNew(t, "rr")
		l := build(s, []string{"a", "b"}, []int32{0, 0})
		if got := l.picks(s, 2); got != "- -" {
			t.Errorf("picks %q, want none", got)
		}
	})
	t.Run("removing the last pick continues after its predecessor", func(t *testing.T) {
		s := mustNew(t, "rr")
		l := build(s, []string{"a", "b", "c"}, []int32{1, 1, 1}) // [c b a]
		if got := l.picks(s, 2); got != "c b" {
			t.Fatalf("picks %q, want \"c b\"", got)
		}
		l.remove(s, "b") // pointer moves to c
		if got, want := l.picks(s, 3), "a c a"; got != want {
			t.Errorf("after removing b: %q, want %q", got, want)
		}
	})
	t.Run("an added server waits for the wrap", func(t *testing.T) {
		s := mustNew(t, "rr")
		l := build(s, []string{"a", "b"}, []int32{1, 1}) // [b a]
		if got := l.picks(s, 1); got != "b" {
			t.Fatalf("first pick %q", got)
		}
		build2 := &Dest{}
		build2.SetWeight(1)
		l.ds = append([]*Dest{build2}, l.ds...) // [c b a]
		l.names = append([]string{"c"}, l.names...)
		s.Changed(l.ds, Change{Kind: Added, Index: 0})
		if got, want := l.picks(s, 4), "a c b a"; got != want {
			t.Errorf("after adding c: %q, want %q", got, want)
		}
	})
}

// Sequences derived by hand from ip_vs_wrr_schedule and
// ip_vs_wrr_dest_changed (net/netfilter/ipvs/ip_vs_wrr.c), including the
// first, partial cycle that follows from cw as dest_changed leaves it.
func TestWRR(t *testing.T) {
	tests := []struct {
		name    string
		added   []string
		weights []int32
		n       int
		want    string
	}{
		{
			// Added c(2), b(3), a(4): list [a b c], di=1, mw=4, cw=1.
			name: "4:3:2", added: []string{"c", "b", "a"}, weights: []int32{2, 3, 4}, n: 15,
			want: "a b c a a b a b c a b c a a b",
		},
		{
			// Added b(2), a(4): di=2, mw=3, cw=(1/2)*2+1=1.
			name: "4:2 with gcd 2", added: []string{"b", "a"}, weights: []int32{2, 4}, n: 8,
			want: "a b a a b a a b",
		},
		{
			name: "weight 0 never picked", added: []string{"b", "a"}, weights: []int32{1, 0}, n: 3,
			want: "b b b",
		},
		{
			name: "all weights 0", added: []string{"b", "a"}, weights: []int32{0, 0}, n: 2,
			want: "- -",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, "wrr")
			l := build(s, tt.added, tt.weights)
			if got := l.picks(s, tt.n); got != tt.want {
				t.Errorf("picks %q, want %q", got, tt.want)
			}
		})
	}
}

// TestWLC: expectations from ip_vs_wlc_schedule (net/netfilter/ipvs/ip_vs_wlc.c):
// overhead = active*256 + inactive, compared as loh*w_d > doh*w_least.
func TestWLC(t *testing.T) {
	s := mustNew(t, "wlc")
	l := build(s, []string{"a", "b", "c"}, []int32{1, 3, 1}) // [c b a]
	tab := conntrack.New[*Dest](nil)
	now := int64(time.Hour)
	conn := func(i int, d *Dest, established bool) {
		k := conntrack.KeyV4(6, [4]byte{10, 0, 0, byte(i)}, uint16(i), [4]byte{10, 0, 1, 1}, 80)
		tab.Insert(&k, d, true, 0x02, now) // SYN: SYN_RECV, active
		if !established {
			tab.Lookup(&k, conntrack.Input, 0x01, now) // FIN: TIME_WAIT, inactive
		}
	}
	// All idle: every overhead is 0, so the first in list order wins.
	if got := l.picks(s, 1); got != "c" {
		t.Fatalf("idle: %q, want c", got)
	}
	// c: 1 active (256/1). b: 2 active (512/3 < 256/1). a: idle (0/1).
	conn(1, l.ds[0], true)
	conn(2, l.ds[1], true)
	conn(3, l.ds[1], true)
	if got := l.picks(s, 1); got != "a" {
		t.Fatalf("a idle: %q, want a", got)
	}
	// a: 1 active (256/1): b wins at 512/3.
	conn(4, l.ds[2], true)
	if got := l.picks(s, 1); got != "b" {
		t.Fatalf("%q, want b (512/3 < 256/1)", got)
	}
	// Inactive connections weigh 1: give c 1 active + 1 inactive (257/1);
	// b 3 active (768/3 = 256/1); a 256/1. b and a tie at 256 per weight;
	// b is met first after c loses: 257*3 > 768*1, then 768*1 > 256*3 is false.
	conn(5, l.ds[0], false)
	conn(6, l.ds[1], true)
	if got := l.picks(s, 1); got != "b" {
		t.Fatalf("%q, want b (tie with a, met first)", got)
	}
	// Weight 0 never wins, even idle.
	l.ds[1].SetWeight(0)
	if got := l.picks(s, 1); got != "a" {
		t.Fatalf("%q, want a", got)
	}
}

// TestWRRCycleProperty: in steady state, any window of one full cycle
// (sum of weight/gcd picks) holds exactly weight/gcd picks of each server.
func TestWRRCycleProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for iter := range 200 {
		n := 1 + r.IntN(8)
		names := make([]string, n)
		weights := make([]int32, n)
		for i := range n {
			names[i] = string(rune('a' + i))
			weights[i] = int32(r.IntN(6)) * int32(1+r.IntN(3))
		}
		s := mustNew(t, "wrr")
		l := build(s, names, weights)
		g := gcdWeight(l.ds)
		var period int
		for _, d := range l.ds {
			period += int(d.Weight() / g)
		}
		if period == 0 {
			continue
		}
		l.picks(s, 2*period) // leave the first, partial cycle behind
		count := map[int]int{}
		for range period {
			count[s.Pick(l.ds, nil)]++
		}
		for i, d := range l.ds {
			if want := int(d.Weight() / g); count[i] != want {
				t.Fatalf("iter %d weights %v: server %s picked %d times in a cycle, want %d",
					iter, weights, l.names[i], count[i], want)
			}
		}
	}
}

// TestOverloadSkipped uses a real connection table to drive a destination
// over its upper threshold, as IPVS's OVERLOAD flag does.
func TestOverloadSkipped(t *testing.T) {
	for _, name := range []string{"rr", "wrr"} {
		t.Run(name, func(t *testing.T) {
			s := mustNew(t, name)
			l := build(s, []string{"a", "b"}, []int32{1, 1}) // [b a]
			l.ds[0].SetThresholds(1, 0)
			tab := conntrack.New[*Dest](nil)
			k := conntrack.KeyV4(6, [4]byte{1, 2, 3, 4}, 1, [4]byte{5, 6, 7, 8}, 80)
			tab.Insert(&k, l.ds[0], true, 0x02, int64(time.Hour))
			if !l.ds[0].Overloaded() {
				t.Fatal("b not overloaded at its threshold")
			}
			if got := l.picks(s, 3); got != "a a a" {
				t.Errorf("picks %q, want only a", got)
			}
		})
	}
}

func TestNew(t *testing.T) {
	if _, err := New("nosuch", nil); !errors.Is(err, ErrUnknownScheduler) {
		t.Errorf("New(nosuch): %v, want ErrUnknownScheduler", err)
	}
	if _, err := New("rr", []string{"flag-1"}); err == nil {
		t.Error("rr accepted scheduler flags")
	}
}

// pickFixture is a service of n servers (10.0.x.y:80, weights 1..5) and
// 256 connection keys from distinct clients to four virtual addresses.
func pickFixture(s Scheduler, n int) (*list, []conntrack.Key) {
	l := &list{}
	for i := range n {
		l.add(s, itoa(i), netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 80), int32(1+i%5))
	}
	keys := make([]conntrack.Key, 256)
	for i := range keys {
		keys[i] = conntrack.KeyV4(6, [4]byte{192, 168, byte(i >> 4), byte(i)}, uint16(30000+i), [4]byte{192, 168, 150, byte(i % 4)}, 80)
	}
	return l, keys
}

// TestPickAllocs: Pick allocates nothing in steady state (for lblc and
// lblcr, once each virtual address has its entry).
func TestPickAllocs(t *testing.T) {
	for _, name := range Names() {
		s := mustNew(t, name)
		l, keys := pickFixture(s, 3)
		for i := range keys {
			s.Pick(l.ds, &keys[i])
		}
		i := 0
		if n := testing.AllocsPerRun(1000, func() { s.Pick(l.ds, &keys[i&255]); i++ }); n != 0 {
			t.Errorf("%s: %v allocs per Pick", name, n)
		}
		if n := testing.AllocsPerRun(100, func() { s.Pick(l.ds, nil) }); n != 0 {
			t.Errorf("%s: %v allocs per Pick with a nil key", name, n)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	for _, name := range Names() {
		for _, n := range []int{10, 1000} {
			b.Run(name+"/"+itoa(n), func(b *testing.B) {
				s, _ := New(name, nil)
				l, keys := pickFixture(s, n)
				for i := range keys {
					s.Pick(l.ds, &keys[i])
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					s.Pick(l.ds, &keys[i&255])
					i++
				}
			})
		}
	}
}

// BenchmarkChanged is the cost of one destination change (a weight
// update) for the schedulers that rebuild a table.
func BenchmarkChanged(b *testing.B) {
	for _, name := range []string{"dh", "sh", "mh"} {
		for _, n := range []int{10, 1000} {
			b.Run(name+"/"+itoa(n), func(b *testing.B) {
				s, _ := New(name, nil)
				l, _ := pickFixture(s, n)
				b.ReportAllocs()
				for b.Loop() {
					s.Changed(l.ds, Change{Kind: Updated, Index: 0})
				}
			})
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}
