package sched

import "github.com/gvs-project/gvs/conntrack"

// fo is weighted failover scheduling, as net/netfilter/ipvs/ip_vs_fo.c
// (ip_vs_fo_schedule) does it: the destination with the highest weight
// that is not overloaded; among equal weights the one met first in list
// order (the kernel replaces its pick only on a strictly higher weight,
// starting from 0, so weight 0 never wins). Connection counts play no
// part.
type fo struct{}

func (fo) Name() string { return "fo" }

func (fo) Pick(ds []*Dest, _ *conntrack.Key) int {
	best := -1
	var hw int32
	for i, d := range ds {
		if w := d.Weight(); !d.Overloaded() && w > hw {
			best, hw = i, w
		}
	}
	return best
}

func (fo) Changed([]*Dest, Change) {}
