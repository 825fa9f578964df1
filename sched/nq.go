package sched

import "github.com/gvs-project/gvs/conntrack"

// nq is never-queue scheduling, as net/netfilter/ipvs/ip_vs_nq.c
// (ip_vs_nq_schedule) does it: walking the list in order and skipping
// overloaded destinations and those of weight 0, the first destination
// with no active connection is taken at once; failing that, the one with
// the least (activeconns + 1) / weight, as sed, compared by
// cross-multiplication with ties to the destination met first.
type nq struct{}

func (nq) Name() string { return "nq" }

func (nq) Pick(ds []*Dest, _ *conntrack.Key) int {
	least := -1
	var loh int64
	for i, d := range ds {
		if d.Overloaded() || d.Weight() == 0 {
			continue
		}
		doh := sedOverhead(d)
		if d.Active() == 0 {
			return i // idle: no queue to wait in
		}
		if least < 0 || loh*int64(d.Weight()) > doh*int64(ds[least].Weight()) {
			least, loh = i, doh
		}
	}
	return least
}

func (nq) Changed([]*Dest, Change) {}
