package sched

import "github.com/gvs-project/gvs/conntrack"

// lc is least-connection scheduling, as net/netfilter/ipvs/ip_vs_lc.c
// (ip_vs_lc_schedule) does it: the destination with the least overhead,
// activeconns*256 + inactconns (ip_vs_dest_conn_overhead), regardless of
// weight, skipping overloaded destinations and those of weight 0. The
// kernel compares the overheads as unsigned ints with <, so a tie goes to
// the destination met first in list order.
type lc struct{}

func (lc) Name() string { return "lc" }

func (lc) Pick(ds []*Dest, _ *conntrack.Key) int {
	least := -1
	var loh uint32
	for i, d := range ds {
		// The kernel tests weight == 0, not <= 0; weights are never
		// negative (ipvsadm and the service table allow 0..65535).
		if d.Overloaded() || d.Weight() == 0 {
			continue
		}
		doh := uint32(connOverhead(d))
		if least < 0 || doh < loh {
			least, loh = i, doh
		}
	}
	return least
}

func (lc) Changed([]*Dest, Change) {}
