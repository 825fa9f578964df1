package sched

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gvs-project/gvs/conntrack"
)

// TestExplainForesees: for every scheduler but twos, over random lists,
// weights, loads, overload flags, keys and changes, Explain names the
// destination the next Pick takes, and changes nothing (explaining twice
// foresees the same pick, and the picks made with explanations in between
// are the picks made without).
func TestExplainForesees(t *testing.T) {
	flagsets := map[string][][]string{
		"sh": {nil, {"sh-fallback"}, {"sh-port"}, {"sh-fallback", "sh-port"}},
		"mh": {nil, {"mh-fallback"}, {"mh-port"}, {"mh-fallback", "mh-port"}},
	}
	// A fixed clock: lblc's and lblcr's expiry never runs, as Explain
	// documents it ignores it.
	at := time.Unix(1e9, 0)
	opts := &Options{Now: func() time.Time { return at }}
	for _, name := range Names() {
		if name == "twos" {
			continue
		}
		fs := flagsets[name]
		if fs == nil {
			fs = [][]string{nil}
		}
		for _, flags := range fs {
			t.Run(name+strings.Join(flags, ","), func(t *testing.T) {
				r := rand.New(rand.NewPCG(7, 8))
				c := newConns()
				picked := 0
				for iter := range 20 {
					// Two schedulers fed the same changes: one is
					// explained before every pick, the other never.
					s, err := NewWith(name, flags, opts)
					if err != nil {
						t.Fatal(err)
					}
					ref, _ := NewWith(name, flags, opts)
					l, lref := &list{}, &list{}
					n := 1 + r.IntN(6)
					for i := range n {
						w := int32(r.IntN(4))
						ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(iter), byte(i)}), 80)
						d := l.add(s, fmt.Sprint(i), ap, w)
						dref := lref.add(ref, fmt.Sprint(i), ap, w)
						a, in := r.IntN(4), r.IntN(4)
						c.set(t, d, a, in)
						c.set(t, dref, a, in)
						if r.IntN(5) == 0 {
							c.overload(t, d, true)
							c.overload(t, dref, true)
						}
					}
					for step := range 30 {
						if step%10 == 9 {
							i, w := r.IntN(len(l.ds)), int32(r.IntN(3))
							l.edit(s, l.names[i], w)
							lref.edit(ref, lref.names[i], w)
						}
						k := conntrack.KeyV4(uint8([]int{6, 17}[r.IntN(2)]), [4]byte{192, 168, byte(r.IntN(4)), byte(r.IntN(256))},
							uint16(r.IntN(65536)), [4]byte{192, 168, 150, byte(r.IntN(8))}, 80)
						want, why := Explain(s, l.ds, &k)
						again, why2 := Explain(s, l.ds, &k)
						if again != want || why2 != why {
							t.Fatalf("iter %d step %d: explaining twice differs: %d %q, then %d %q", iter, step, want, why, again, why2)
						}
						got := s.Pick(l.ds, &k)
						if got != want {
							t.Fatalf("iter %d step %d: Explain foresaw %s (%q), Pick took %s", iter, step, l.name(want), why, l.name(got))
						}
						if r := ref.Pick(lref.ds, &k); r != got {
							t.Fatalf("iter %d step %d: with explanations Pick took %s, without %s", iter, step, l.name(got), lref.name(r))
						}
						if !strings.HasPrefix(why, name+":") {
							t.Fatalf("reason %q does not start with %q", why, name+":")
						}
						if got >= 0 {
							picked++
							// Picks change the counts, as new connections do.
							active := r.IntN(2) == 0
							c.add(t, l.ds[got], active)
							c.add(t, lref.ds[got], active)
						}
					}
				}
				if picked == 0 {
					t.Error("never picked anything")
				}
			})
		}
	}
}

// TestExplainText: the reasons, as the trace prints them.
func TestExplainText(t *testing.T) {
	rs12 := netip.MustParseAddrPort("192.168.150.12:80")
	rs13 := netip.MustParseAddrPort("192.168.150.13:80")
	k := conntrack.KeyV4(6, [4]byte{192, 168, 150, 10}, 43000, [4]byte{192, 168, 150, 100}, 80)
	for _, tc := range []struct {
		sched  string
		setup  func(c *conns, d12, d13 *Dest)
		picks  int // picks made before the one explained
		want   string
		wantIx int
	}{
		{sched: "wlc", setup: func(c *conns, d12, d13 *Dest) {
			c.set(t, d12, 2, 1)
			c.set(t, d13, 1, 0)
		}, want: "wlc: 192.168.150.13 overhead 256/1 < 513/1 of 192.168.150.12", wantIx: 0},
		{sched: "wlc", want: "wlc: 192.168.150.13 overhead 0/1 = 0/1 of 192.168.150.12, first in list order", wantIx: 0},
		{sched: "lc", setup: func(c *conns, d12, d13 *Dest) { c.set(t, d13, 1, 0) },
			want: "lc: 192.168.150.12 overhead 0 < 256 of 192.168.150.13", wantIx: 1},
		{sched: "rr", want: "rr: 192.168.150.13, the next available from the head of the list", wantIx: 0},
		{sched: "rr", picks: 1, want: "rr: 192.168.150.12, the next available after 192.168.150.13, the last pick", wantIx: 1},
		{sched: "sh", want: "sh: hash of source 192.168.150.10 -> bucket ", wantIx: -2},
		{sched: "twos", want: "twos: two random choices", wantIx: -1},
	} {
		t.Run(tc.sched, func(t *testing.T) {
			s := mustNew(t, tc.sched)
			l := &list{}
			d12 := l.add(s, "12", rs12, 1)
			d13 := l.add(s, "13", rs13, 1)
			if tc.setup != nil {
				tc.setup(newConns(), d12, d13)
			}
			for range tc.picks {
				s.Pick(l.ds, &k)
			}
			i, why := Explain(s, l.ds, &k)
			if !strings.HasPrefix(why, tc.want) {
				t.Errorf("Explain = %q, want %q", why, tc.want)
			}
			if tc.wantIx != -2 && i != tc.wantIx {
				t.Errorf("Explain foresaw %d, want %d", i, tc.wantIx)
			}
		})
	}
}
