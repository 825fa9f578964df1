package director

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gvs-project/gvs/service"
)

// config is a configuration as a rules file gives it: services in order,
// each with its servers in the order they are added.
type config []svcConfig

type svcConfig struct {
	key    service.Key
	sched  string
	reals  []service.RealSpec
	laddrs []netip.Addr
}

// build makes a table from c, as a fresh start with its rules file would.
func build(t *testing.T, c config) *service.Table {
	t.Helper()
	var ops []service.Op
	for _, s := range c {
		ops = append(ops, service.Op{Kind: service.AddService, Service: s.key, Settings: service.Settings{Scheduler: s.sched}})
		for _, r := range s.reals {
			ops = append(ops, service.Op{Kind: service.AddReal, Service: s.key, Real: r})
		}
		for _, a := range s.laddrs {
			ops = append(ops, service.Op{Kind: service.AddLocalAddr, Service: s.key, Addr: a})
		}
	}
	tb := service.New()
	if _, err := tb.Apply(ops, nil); err != nil {
		t.Fatalf("building %v: %v", c, err)
	}
	return tb
}

// dump describes a table: services in order, settings, servers in list
// order with their settings, local addresses.
func dump(tb *service.Table) string {
	var b strings.Builder
	for _, s := range tb.Services() {
		st := s.Settings()
		fmt.Fprintf(&b, "%v %s %v\n", s.Key, st.Scheduler, s.LocalAddrs())
		for _, r := range s.Reals() {
			fmt.Fprintf(&b, "  %+v\n", specOf(r))
		}
	}
	return b.String()
}

var (
	keys = []service.Key{
		service.KeyOf(6, netip.MustParseAddr("10.0.0.1"), 80),
		service.KeyOf(17, netip.MustParseAddr("10.0.0.1"), 80),
		service.KeyOf(6, netip.MustParseAddr("10.0.0.2"), 443),
		service.KeyOf(6, netip.MustParseAddr("10.0.0.3"), 80),
	}
	rips = []netip.Addr{netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.1.0.2"),
		netip.MustParseAddr("10.1.0.3"), netip.MustParseAddr("10.1.0.4")}
	laddrs = []netip.Addr{netip.MustParseAddr("10.2.0.1"), netip.MustParseAddr("10.2.0.2"), netip.MustParseAddr("10.2.0.3")}
)

// randomConfig draws a configuration from rng.
func randomConfig(rng *rand.Rand) config {
	var c config
	for _, i := range rng.Perm(len(keys))[:rng.IntN(len(keys)+1)] {
		s := svcConfig{key: keys[i], sched: []string{"rr", "wrr", "sh", "mh"}[rng.IntN(4)]}
		fwd := service.Route
		if rng.IntN(3) == 0 {
			fwd = service.Masq
		}
		for _, j := range rng.Perm(len(rips))[:rng.IntN(len(rips)+1)] {
			r := service.RealSpec{Addr: rips[j], Port: s.key.Port, Forward: fwd, Weight: int32(rng.IntN(3))}
			if rng.IntN(4) == 0 {
				r.UThreshold, r.LThreshold = 10, 5
			}
			s.reals = append(s.reals, r)
		}
		for _, j := range rng.Perm(len(laddrs))[:rng.IntN(len(laddrs)+1)] {
			s.laddrs = append(s.laddrs, laddrs[j])
		}
		c = append(c, s)
	}
	return c
}

// TestReplaceOps: from any configuration to any other, replaceOps's
// operations leave the table exactly as a fresh start with the second
// would (services, their order, settings, servers in list order, local
// addresses), and they apply cleanly.
func TestReplaceOps(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		from, to := randomConfig(rng), randomConfig(rng)
		if i%5 == 0 {
			to = from // no change at all
		}
		cur, want := build(t, from), build(t, to)
		ops, keys := replaceOps(cur.Services(), want.Services())
		if len(ops) != len(keys) {
			t.Fatalf("%d operations, %d origin keys", len(ops), len(keys))
		}
		if _, err := cur.Apply(ops, nil); err != nil {
			t.Fatalf("case %d: applying %v: %v", i, ops, err)
		}
		if diff := cmp.Diff(dump(want), dump(cur)); diff != "" {
			t.Fatalf("case %d: from\n%v\nto\n%v\n(-want +got):\n%s", i, from, to, diff)
		}
		if i%5 == 0 && len(ops) != 0 {
			t.Fatalf("case %d: %d operations to change nothing: %v", i, len(ops), ops)
		}
	}
}

// TestReplaceOpsKeeps: what stays the same stays in place: the same
// *Real objects (their connections, counts and templates) and services.
func TestReplaceOpsKeeps(t *testing.T) {
	r := func(i int, w int32) service.RealSpec {
		return service.RealSpec{Addr: rips[i], Port: 80, Forward: service.Route, Weight: w}
	}
	k := keys[0]
	for _, tc := range []struct {
		name     string
		from, to config
		kept     []netip.Addr // servers of k kept in place
		wantOps  int
	}{
		{"weight changed", config{{key: k, sched: "rr", reals: []service.RealSpec{r(0, 1), r(1, 1)}}},
			config{{key: k, sched: "rr", reals: []service.RealSpec{r(0, 1), r(1, 3)}}}, rips[:2], 1},
		{"server added last", config{{key: k, sched: "sh", reals: []service.RealSpec{r(0, 1), r(1, 1)}}},
			config{{key: k, sched: "sh", reals: []service.RealSpec{r(0, 1), r(1, 1), r(2, 1)}}}, rips[:2], 1},
		{"first server removed", config{{key: k, sched: "sh", reals: []service.RealSpec{r(0, 1), r(1, 1), r(2, 1)}}},
			config{{key: k, sched: "sh", reals: []service.RealSpec{r(1, 1), r(2, 1)}}}, rips[1:3], 1},
		{"scheduler changed, service added", config{{key: k, sched: "rr", reals: []service.RealSpec{r(0, 1)}}},
			config{{key: k, sched: "wlc", reals: []service.RealSpec{r(0, 1)}}, {key: keys[1], sched: "rr"}}, rips[:1], 2},
		{"order swapped", config{{key: k, sched: "sh", reals: []service.RealSpec{r(0, 1), r(1, 1)}}},
			config{{key: k, sched: "sh", reals: []service.RealSpec{r(1, 1), r(0, 1)}}}, rips[1:2], 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur, want := build(t, tc.from), build(t, tc.to)
			before := map[netip.Addr]*service.Real{}
			svc := cur.Services()[0]
			for _, x := range svc.Reals() {
				before[x.Addr] = x
			}
			ops, _ := replaceOps(cur.Services(), want.Services())
			if len(ops) != tc.wantOps {
				t.Errorf("%d operations, want %d: %+v", len(ops), tc.wantOps, ops)
			}
			if _, err := cur.Apply(ops, nil); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(dump(want), dump(cur)); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
			if cur.Services()[0] != svc {
				t.Error("the service was replaced, not kept")
			}
			for _, x := range cur.Services()[0].Reals() {
				kept := before[x.Addr] == x
				if want := contains(tc.kept, x.Addr); kept != want {
					t.Errorf("server %v kept in place: %v, want %v", x.Addr, kept, want)
				}
			}
		})
	}
}

func contains(as []netip.Addr, a netip.Addr) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

func TestKeptPrefixSuffix(t *testing.T) {
	for _, tc := range []struct {
		cur, want      string
		prefix, suffix int
	}{
		{"", "", 0, 0},
		{"abc", "", 0, 0},
		{"", "abc", 0, 0},
		{"abc", "abc", 3, 3},
		{"abc", "ac", 2, 2},
		{"abc", "cab", 1, 2},
		{"abc", "bca", 2, 1},
		{"axbyc", "abcd", 3, 0},
		{"abc", "xbc", 0, 2},
	} {
		cur, want := strings.Split(tc.cur, ""), strings.Split(tc.want, "")
		if p := keptPrefix(cur, want); p != tc.prefix {
			t.Errorf("keptPrefix(%q, %q) = %d, want %d", tc.cur, tc.want, p, tc.prefix)
		}
		if s := keptSuffix(cur, want); s != tc.suffix {
			t.Errorf("keptSuffix(%q, %q) = %d, want %d", tc.cur, tc.want, s, tc.suffix)
		}
	}
}
