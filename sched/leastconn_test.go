package sched

import (
	"fmt"
	"net/netip"
	"testing"
)

// srv describes a server for the table tests: name, weight, active and
// inactive connections, and the OVERLOAD flag (set with an upper threshold
// of 1; a flagged server without connections gets one inactive one).
type srv struct {
	name       string
	w          int32
	act, inact int
	overloaded bool
}

// buildSrvs adds the servers in the order given (so the list holds them in
// reverse, most recent first, as the kernel's does) and gives them their
// connections.
func buildSrvs(t *testing.T, s Scheduler, srvs []srv) *list {
	t.Helper()
	l, c := &list{}, newConns()
	for i, x := range srvs {
		l.add(s, x.name, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 80), x.w)
	}
	for _, x := range srvs {
		d := l.dest(x.name)
		c.set(t, d, x.act, x.inact)
		if x.overloaded {
			c.overload(t, d, true)
		}
	}
	return l
}

// The expectations below are derived by hand from the kernel's schedule
// functions, with the list in reverse order of "added":
//
//   - lc: ip_vs_lc.c, ip_vs_lc_schedule: skip "test_bit(OVERLOAD) ||
//     weight == 0"; "doh = ip_vs_dest_conn_overhead(dest)" (active<<8 +
//     inactive); take it "if (!least || doh < loh)" (unsigned).
//   - sed: ip_vs_sed.c, ip_vs_sed_schedule: the first not overloaded with
//     "weight > 0" starts, loh = ip_vs_sed_dest_overhead = active + 1;
//     then, skipping overloaded, "(__s64)loh * dest->weight > (__s64)doh *
//     least->weight" replaces.
//   - nq: ip_vs_nq.c, ip_vs_nq_schedule: skip "OVERLOAD || !weight"; "if
//     (atomic_read(&dest->activeconns) == 0)" return it at once; else as
//     sed, "if (!least || loh*dw > doh*lw)".
//   - fo: ip_vs_fo.c, ip_vs_fo_schedule: not overloaded and "weight > hw",
//     hw starting at 0.
//   - ovf: ip_vs_ovf.c, ip_vs_ovf_schedule: skip "OVERLOAD || activeconns
//     > w || w == 0"; take it "if (!h || w > hw)".
//   - wlc: ip_vs_wlc.c, ip_vs_wlc_schedule: as sed with
//     ip_vs_dest_conn_overhead.
func TestLeastConnFamily(t *testing.T) {
	tests := []struct {
		sched, name string
		added       []srv
		want        string
	}{
		// lc
		{"lc", "idle: first in list order", []srv{{"a", 1, 0, 0, false}, {"b", 1, 0, 0, false}, {"c", 1, 0, 0, false}}, "c"},
		{"lc", "least overhead whatever the weight", []srv{{"a", 1, 0, 2, false}, {"b", 5, 0, 3, false}, {"c", 100, 1, 0, false}}, "a"},
		{"lc", "tie goes to the first met", []srv{{"a", 1, 0, 2, false}, {"b", 1, 0, 2, false}, {"c", 1, 1, 0, false}}, "b"},
		{"lc", "an active connection outweighs 255 inactive", []srv{{"a", 1, 1, 0, false}, {"b", 1, 0, 257, false}}, "a"},
		{"lc", "256 inactive tie with one active", []srv{{"a", 1, 1, 0, false}, {"b", 1, 0, 256, false}}, "b"},
		{"lc", "weight 0 and overloaded skipped", []srv{{"a", 1, 1, 0, false}, {"b", 0, 0, 0, false}, {"c", 1, 0, 1, true}}, "a"},
		{"lc", "none available", []srv{{"a", 0, 0, 0, false}, {"b", 1, 0, 1, true}}, "-"},
		// sed
		{"sed", "idle: the heaviest", []srv{{"c", 3, 0, 0, false}, {"b", 2, 0, 0, false}, {"a", 1, 0, 0, false}}, "c"},
		// b: (5+1)/10 against a: (0+1)/1: 6*1 > 1*10 is false, b stays
		// (wlc would take a: 1280/10 > 0).
		{"sed", "counts the incoming job", []srv{{"a", 1, 0, 0, false}, {"b", 10, 5, 0, false}}, "b"},
		{"wlc", "same servers under wlc", []srv{{"a", 1, 0, 0, false}, {"b", 10, 5, 0, false}}, "a"},
		{"sed", "inactive connections do not count", []srv{{"a", 1, 0, 100, false}, {"b", 1, 1, 0, false}}, "a"},
		// b: 4/2, a: 2/1: 4*1 > 2*2 is false.
		{"sed", "tie goes to the first met", []srv{{"a", 1, 1, 0, false}, {"b", 2, 3, 0, false}}, "b"},
		{"sed", "weight 0 cannot start", []srv{{"b", 1, 3, 0, false}, {"a", 0, 0, 0, false}}, "b"},
		{"sed", "weight 0 never wins", []srv{{"a", 0, 0, 0, false}, {"b", 1, 3, 0, false}}, "b"},
		{"sed", "overloaded skipped", []srv{{"a", 1, 2, 0, false}, {"b", 5, 0, 1, true}}, "a"},
		// nq
		// b is busy, a idle: a at once (sed would keep b: 2*1 > 1*100 is false).
		{"nq", "an idle server at once", []srv{{"a", 1, 0, 10, false}, {"b", 100, 1, 0, false}}, "a"},
		{"sed", "same servers under sed", []srv{{"a", 1, 0, 10, false}, {"b", 100, 1, 0, false}}, "b"},
		{"nq", "first idle in list order", []srv{{"a", 1, 0, 0, false}, {"b", 5, 0, 0, false}}, "b"},
		// b: 7/3, a: 2/1: 7*1 > 2*3.
		{"nq", "no idle: least expected delay", []srv{{"a", 1, 1, 0, false}, {"b", 3, 6, 0, false}}, "a"},
		// b: 6/3, a: 2/1: 6*1 > 2*3 is false.
		{"nq", "no idle: tie to the first met", []srv{{"a", 1, 1, 0, false}, {"b", 3, 5, 0, false}}, "b"},
		{"nq", "idle but weight 0", []srv{{"a", 0, 0, 0, false}, {"b", 1, 2, 0, false}}, "b"},
		{"nq", "idle but overloaded", []srv{{"a", 1, 0, 1, true}, {"b", 1, 2, 0, false}}, "b"},
		// fo
		{"fo", "highest weight", []srv{{"a", 5, 0, 0, false}, {"b", 10, 0, 0, false}, {"c", 7, 0, 0, false}}, "b"},
		{"fo", "tie goes to the first met", []srv{{"a", 10, 0, 0, false}, {"b", 10, 0, 0, false}}, "b"},
		{"fo", "connections do not count", []srv{{"a", 5, 100, 0, false}, {"b", 3, 0, 0, false}}, "a"},
		{"fo", "overloaded skipped", []srv{{"a", 5, 0, 0, false}, {"b", 10, 0, 1, true}}, "a"},
		{"fo", "all weight 0", []srv{{"a", 0, 0, 0, false}, {"b", 0, 0, 0, false}}, "-"},
		// ovf
		{"ovf", "heaviest while active <= weight", []srv{{"a", 2, 2, 0, false}, {"b", 1, 0, 0, false}}, "a"},
		{"ovf", "overflow to the next", []srv{{"a", 2, 3, 0, false}, {"b", 1, 1, 0, false}}, "b"},
		{"ovf", "all overflowing", []srv{{"a", 2, 3, 0, false}, {"b", 1, 2, 0, false}}, "-"},
		{"ovf", "tie goes to the first met", []srv{{"a", 2, 0, 0, false}, {"b", 2, 0, 0, false}}, "b"},
		{"ovf", "inactive connections do not count", []srv{{"a", 2, 0, 50, false}, {"b", 1, 0, 0, false}}, "a"},
		{"ovf", "overloaded skipped", []srv{{"a", 5, 0, 1, true}, {"b", 1, 0, 0, false}}, "b"},
		{"ovf", "weight 0 skipped even idle", []srv{{"a", 0, 0, 0, false}}, "-"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.sched, tt.name), func(t *testing.T) {
			s := mustNew(t, tt.sched)
			l := buildSrvs(t, s, tt.added)
			if got := l.name(s.Pick(l.ds, nil)); got != tt.want {
				t.Errorf("picked %s, want %s", got, tt.want)
			}
		})
	}
}

// TestTwosByHand: two picks of twos derived by hand from
// ip_vs_twos_schedule (ip_vs_twos.c) and __get_random_u32_below
// (drivers/char/random.c); testdata/kernel_vectors.txt has more.
// List [c(3) b(2) a(1)], overheads c 1*256+5 = 261, b 512, a 0; total
// weight 6, so both draws are get_random_u32_below(7) = (7*x) >> 32.
func TestTwosByHand(t *testing.T) {
	tests := []struct {
		name   string
		stream []uint32
		want   string
	}{
		// r1 = 7*2^31 >> 32 = 3, r2 = 7*2^28 >> 32 = 0. At c (weight 3)
		// r1 = 0 <= 0 and r2 = -3: both choices are c.
		{"both choices the same", []uint32{0x80000000, 0x10000000}, "c"},
		// r1 = 1, r2 = 6: choice1 c (r1 = -2), choice2 a (r2: 3, 1, 0).
		// w2*oh1 = 1*261 > w1*oh2 = 3*0: a.
		{"second choice less loaded", []uint32{0x30000000, 0xe0000000}, "a"},
		// r1 = 6 -> a, r2 = 1 -> c: w2*oh1 = 3*0 > 1*261 is false: a.
		{"first choice less loaded", []uint32{0xe0000000, 0x30000000}, "a"},
		// 0 is rejected (low half 0 < 2^32 % 7 = 4), then r1 = 3, r2 = 3:
		// both c.
		{"rejection sampling", []uint32{0, 0x80000000, 0x80000000}, "c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &scriptRand{vals: tt.stream}
			s, err := NewWith("twos", nil, &Options{Rand: r})
			if err != nil {
				t.Fatal(err)
			}
			l := buildSrvs(t, s, []srv{{"a", 1, 0, 0, false}, {"b", 2, 2, 0, false}, {"c", 3, 1, 5, false}})
			if got := l.name(s.Pick(l.ds, nil)); got != tt.want || r.n != len(tt.stream) {
				t.Errorf("picked %s with %d draws, want %s with %d", got, r.n, tt.want, len(tt.stream))
			}
		})
	}
}

// TestTwosPrefersLessLoaded checks the kernel's rule statistically: of the
// two weighted random choices, the one with less overhead per weight wins.
// Four servers of weight 1, list [d c b a], loads a < b < c < d. The
// kernel draws r in [0, 4] and takes the first server where r - 1, r - 2,
// ... drops to 0 or below, so d (first in the list) is chosen for r = 0 or
// 1 (2/5) and each other for one value (1/5). The pick is the less loaded
// of two independent choices, so P(pick x) = P(no choice less loaded than
// x) - P(no choice as loaded as x or less): a 1 - (4/5)^2 = 9/25, b
// (4/5)^2 - (3/5)^2 = 7/25, c (3/5)^2 - (2/5)^2 = 5/25, d (2/5)^2 = 4/25.
// One random choice alone would give a, b, c 1/5 and d 2/5.
func TestTwosPrefersLessLoaded(t *testing.T) {
	const n = 200000
	want := map[string]float64{"a": 9.0 / 25, "b": 7.0 / 25, "c": 5.0 / 25, "d": 4.0 / 25}
	s, err := NewWith("twos", nil, &Options{Rand: &xorshift32{x: 2463534242}})
	if err != nil {
		t.Fatal(err)
	}
	l := buildSrvs(t, s, []srv{{"a", 1, 0, 0, false}, {"b", 1, 1, 0, false}, {"c", 1, 2, 0, false}, {"d", 1, 3, 0, false}})
	count := map[string]int{}
	for range n {
		count[l.name(s.Pick(l.ds, nil))]++
	}
	for name, p := range want {
		got := float64(count[name]) / n
		// The standard deviation of each share is at most
		// sqrt(0.25/n) ~ 0.0011; allow 0.006 (over 5 sigma).
		if got < p-0.006 || got > p+0.006 {
			t.Errorf("%s picked %.4f of the time, want %.4f", name, got, p)
		}
	}
	t.Logf("shares over %d picks: a %.4f b %.4f c %.4f d %.4f (want .36 .28 .20 .16)",
		n, float64(count["a"])/n, float64(count["b"])/n, float64(count["c"])/n, float64(count["d"])/n)
}
