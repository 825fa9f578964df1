package sched

import "github.com/gvs-project/gvs/conntrack"

// wlc is weighted least-connection scheduling, as
// net/netfilter/ipvs/ip_vs_wlc.c does it: the destination with the least
// overhead per unit of weight, where the overhead counts an active
// connection 256 times as much as an inactive one. Ratios are compared by
// cross-multiplication (no division), and a tie goes to the destination
// met first in list order. It is the default scheduler of ipvsadm.
type wlc struct{}

func (wlc) Name() string { return "wlc" }

// connOverhead is ip_vs_dest_conn_overhead: (activeconns << 8) +
// inactconns, in the kernel's 32-bit int (which wraps, as the kernel is
// built with -fno-strict-overflow, only past 8 million active connections).
func connOverhead(d *Dest) int32 {
	return d.Active()<<8 + d.Inactive()
}

// overhead is connOverhead widened as the kernel's (__s64) casts widen it
// for the cross-multiplications.
func overhead(d *Dest) int64 { return int64(connOverhead(d)) }

func (wlc) Pick(ds []*Dest, _ *conntrack.Key) int {
	least := -1
	var loh int64
	for i, d := range ds {
		if least < 0 {
			// The first available destination starts the search.
			if d.available() {
				least, loh = i, overhead(d)
			}
			continue
		}
		if d.Overloaded() {
			continue
		}
		// A destination of weight 0 never wins: loh*0 > doh*w is false.
		doh := overhead(d)
		if loh*int64(d.Weight()) > doh*int64(ds[least].Weight()) {
			least, loh = i, doh
		}
	}
	return least
}

func (wlc) Changed([]*Dest, Change) {}
