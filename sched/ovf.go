package sched

import "github.com/gvs-project/gvs/conntrack"

// ovf is overflow-connection scheduling, as net/netfilter/ipvs/ip_vs_ovf.c
// (ip_vs_ovf_schedule) does it: the destination with the highest weight
// among those that are not overloaded, have a non-zero weight and have no
// more active connections than their weight; among equal weights the one
// met first in list order. So all connections go to the heaviest server
// until its active connections exceed its weight, then overflow to the
// next. Only active connections count (the kernel notes it may not suit
// UDP).
type ovf struct{}

func (ovf) Name() string { return "ovf" }

func (ovf) Pick(ds []*Dest, _ *conntrack.Key) int {
	best := -1
	var hw int32
	for i, d := range ds {
		w := d.Weight()
		if d.Overloaded() || d.Active() > w || w == 0 {
			continue
		}
		if best < 0 || w > hw {
			best, hw = i, w
		}
	}
	return best
}

func (ovf) Changed([]*Dest, Change) {}
