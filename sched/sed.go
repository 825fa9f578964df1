package sched

import "github.com/gvs-project/gvs/conntrack"

// sed is shortest-expected-delay scheduling, as
// net/netfilter/ipvs/ip_vs_sed.c (ip_vs_sed_schedule) does it: the
// destination with the least (activeconns + 1) / weight
// (ip_vs_sed_dest_overhead counts only active connections, plus the one
// being scheduled). The first destination that is not overloaded and has
// a positive weight starts the search; after it, overloaded ones are
// skipped and ratios are compared by cross-multiplication, loh*w_d >
// doh*w_least in 64 bits, so a tie stays with the destination met first
// and a weight-0 destination never wins.
type sed struct{}

func (sed) Name() string { return "sed" }

// sedOverhead is ip_vs_sed_dest_overhead (and ip_vs_nq_dest_overhead):
// activeconns + 1.
func sedOverhead(d *Dest) int64 { return int64(d.Active() + 1) }

func (sed) Pick(ds []*Dest, _ *conntrack.Key) int {
	least := -1
	var loh int64
	for i, d := range ds {
		if least < 0 {
			if d.available() {
				least, loh = i, sedOverhead(d)
			}
			continue
		}
		if d.Overloaded() {
			continue
		}
		doh := sedOverhead(d)
		if loh*int64(d.Weight()) > doh*int64(ds[least].Weight()) {
			least, loh = i, doh
		}
	}
	return least
}

func (sed) Changed([]*Dest, Change) {}
