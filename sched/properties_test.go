package sched

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/gvs-project/gvs/conntrack"
)

// TestMHRemovalDisruption measures Maglev's consistency in the kernel's
// variant: with five servers of weight 1 and M = 4093, remove one and
// count how many of the surviving servers' slots change hands. Maglev
// does not promise zero (populate restarts every permutation from its
// offset), only few; TestKernelVectors checks the exact figure for one
// removal against the kernel's algorithm.
func TestMHRemovalDisruption(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e"}
	var sumMoved, sumTotal int
	var report []string
	for _, gone := range names {
		s := mustNew(t, "mh")
		l := &list{}
		for i, n := range names {
			l.add(s, n, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 80), 1)
		}
		before := tableOf(s, l)
		l.remove(s, gone)
		moved, total := movedSlots(before, tableOf(s, l), l.names)
		if moved == 0 || moved*100 > total*5 {
			t.Errorf("removing %s moved %d of %d surviving slots; want some, under 5%%", gone, moved, total)
		}
		sumMoved += moved
		sumTotal += total
		report = append(report, fmt.Sprintf("%s: %d/%d (%.2f%%)", gone, moved, total, 100*float64(moved)/float64(total)))
	}
	t.Logf("mh, M=%d, 5 servers of weight 1 (10.0.0.1-5:80), one removed: surviving slots moved %s; mean %.2f%%",
		mhTabSize, strings.Join(report, ", "), 100*float64(sumMoved)/float64(sumTotal))

	// The same over random addresses.
	r := rand.New(rand.NewPCG(5, 6))
	const sets = 100
	sumMoved, sumTotal = 0, 0
	maxShare := 0.0
	for range sets {
		s := mustNew(t, "mh")
		l := &list{}
		for _, n := range names {
			a := netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
			l.add(s, n, netip.AddrPortFrom(a, 80), 1)
		}
		before := tableOf(s, l)
		l.remove(s, names[r.IntN(len(names))])
		moved, total := movedSlots(before, tableOf(s, l), l.names)
		sumMoved += moved
		sumTotal += total
		maxShare = max(maxShare, float64(moved)/float64(total))
	}
	t.Logf("mh over %d random sets of 5 servers, one removed: mean %.2f%% of surviving slots moved, worst %.2f%%",
		sets, 100*float64(sumMoved)/float64(sumTotal), 100*maxShare)
}

// TestWeightZeroNeverPicked: no scheduler picks a destination of weight 0,
// over random lists, weights, loads, flags, keys and changes.
func TestWeightZeroNeverPicked(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	flagsets := map[string][][]string{
		"sh": {nil, {"sh-fallback"}, {"sh-port"}, {"sh-fallback", "sh-port"}},
		"mh": {nil, {"mh-fallback"}, {"mh-port"}, {"mh-fallback", "mh-port"}},
	}
	for _, name := range Names() {
		fs := flagsets[name]
		if fs == nil {
			fs = [][]string{nil}
		}
		for _, flags := range fs {
			t.Run(name+strings.Join(flags, ","), func(t *testing.T) {
				picked := 0
				c := newConns()
				for iter := range 30 {
					s, err := NewWith(name, flags, &Options{Rand: rand.New(rand.NewPCG(uint64(iter), 9))})
					if err != nil {
						t.Fatal(err)
					}
					l := &list{}
					n := 1 + r.IntN(6)
					for i := range n {
						w := int32(r.IntN(4))
						d := l.add(s, fmt.Sprint(i), netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(iter), byte(i)}), 80), w)
						c.set(t, d, r.IntN(4), r.IntN(4))
					}
					for step := range 40 {
						if step%10 == 9 {
							// Change a weight, possibly to or from 0.
							i := r.IntN(len(l.ds))
							l.edit(s, l.names[i], int32(r.IntN(3)))
						}
						k := conntrack.KeyV4(uint8([]int{6, 17}[r.IntN(2)]), [4]byte{192, 168, byte(r.IntN(4)), byte(r.IntN(256))},
							uint16(r.IntN(65536)), [4]byte{192, 168, 150, byte(r.IntN(8))}, 80)
						i := s.Pick(l.ds, &k)
						if i >= 0 {
							picked++
							if w := l.ds[i].Weight(); w <= 0 {
								t.Fatalf("iter %d: picked %s of weight %d", iter, l.names[i], w)
							}
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

func TestNewFlags(t *testing.T) {
	tests := []struct {
		sched   string
		flags   []string
		wantErr bool
	}{
		{"sh", []string{"sh-fallback", "sh-port"}, false},
		{"sh", []string{"flag-1", "flag-2"}, false},
		{"mh", []string{"mh-fallback", "mh-port"}, false},
		{"mh", []string{"flag-2"}, false},
		{"sh", []string{"mh-port"}, true}, // ipvsadm: incompatible scheduler flag
		{"mh", []string{"sh-fallback"}, true},
		{"sh", []string{"flag-3"}, true}, // SCHED3 means nothing to sh
		{"rr", []string{"flag-1"}, true}, // rr reads no flags
		{"wlc", []string{"flag-3"}, true},
		{"sh", []string{"sh-fallbak"}, true}, // unknown
		{"lblc", nil, false},
	}
	for _, tt := range tests {
		_, err := New(tt.sched, tt.flags)
		if (err != nil) != tt.wantErr {
			t.Errorf("New(%s, %v): %v, want error %v", tt.sched, tt.flags, err, tt.wantErr)
		}
		if err != nil && !errors.Is(err, ErrSchedFlag) {
			t.Errorf("New(%s, %v): %v does not wrap ErrSchedFlag", tt.sched, tt.flags, err)
		}
	}
	s, _ := New("sh", []string{"sh-port"})
	if sh := s.(*sh); !sh.port || sh.fallback {
		t.Errorf("sh-port set port %v fallback %v", sh.port, sh.fallback)
	}
	s, _ = New("mh", []string{"flag-1"})
	if mh := s.(*mh); mh.port || !mh.fallback {
		t.Errorf("mh flag-1 set port %v fallback %v", mh.port, mh.fallback)
	}
	want := []string{"dh", "fo", "lblc", "lblcr", "lc", "mh", "nq", "ovf", "rr", "sed", "sh", "twos", "wlc", "wrr"}
	if got := Names(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Names() = %v, want %v", got, want)
	}
}

// TestBoundToExistingList: a scheduler bound to a service that already has
// destinations (Changed with Updated and Index -1, the kernel's
// init_service) builds the same tables as one that saw every addition.
func TestBoundToExistingList(t *testing.T) {
	for _, name := range []string{"dh", "sh", "mh"} {
		s := mustNew(t, name)
		l := &list{}
		for i, w := range []int32{3, 1, 0, 2} {
			l.add(s, string(rune('a'+i)), netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 80), w)
		}
		late := mustNew(t, name)
		late.Changed(l.ds, Change{Kind: Updated, Index: -1})
		if a, b := tableOf(s, l), tableOf(late, l); a != b {
			t.Errorf("%s: tables differ:\n%.60s\n%.60s", name, a, b)
		}
	}
}

// TestNilKey: every scheduler accepts a nil key (hashing the zero key).
func TestNilKey(t *testing.T) {
	for _, name := range Names() {
		s := mustNew(t, name)
		l := build(s, []string{"a", "b"}, []int32{1, 1})
		if i := s.Pick(l.ds, nil); i < 0 {
			t.Errorf("%s: no pick for a nil key", name)
		}
	}
}

func TestSchedulerNames(t *testing.T) {
	for _, name := range Names() {
		if got := mustNew(t, name).Name(); got != name {
			t.Errorf("New(%q).Name() = %q", name, got)
		}
	}
}

// TestMHTooManyDests: ip_vs_mh_reassign returns -EINVAL for more
// destinations than slots ("if (svc->num_dests > IP_VS_MH_TAB_SIZE)") and
// leaves the lookup table as it was: the newcomer gets no slot, the others
// keep theirs.
func TestMHTooManyDests(t *testing.T) {
	s := mustNew(t, "mh")
	l := &list{}
	for i := range mhTabSize {
		d := &Dest{}
		d.SetAddr(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 80))
		d.SetWeight(1)
		l.ds = append(l.ds, d)
		l.names = append(l.names, fmt.Sprint(i))
	}
	s.Changed(l.ds, Change{Kind: Updated, Index: -1})
	before := slices.Clone(s.(*mh).lookup)
	extra := l.add(s, "extra", netip.MustParseAddrPort("10.2.0.1:80"), 1)
	for slot, i := range s.(*mh).lookup {
		if l.ds[i] == extra || l.ds[i] != l.ds[before[slot]+1] {
			t.Fatalf("slot %d moved to %s", slot, l.names[i])
		}
	}
	l.remove(s, "0")
	for _, i := range s.(*mh).lookup {
		if l.ds[i] == extra {
			return // rebuilt with the newcomer
		}
	}
	t.Error("newcomer still without a slot after a rebuild")
}
