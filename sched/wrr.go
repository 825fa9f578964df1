package sched

import "github.com/gvs-project/gvs/conntrack"

// wrr is weighted round-robin scheduling, as net/netfilter/ipvs/ip_vs_wrr.c
// does it. The kernel keeps a current destination cl, a current weight cw,
// the maximum weight reduced by the step, mw = max - (di - 1), and the step
// di, the greatest common divisor of the positive weights. Each pass over
// the list takes the destinations whose weight is at least cw; between
// passes cw drops by di; when it reaches zero it restarts at mw. Over one
// full cycle each destination is picked weight/di times.
type wrr struct {
	cl int // index of the current destination, or head
	cw int32
	mw int32
	di int32
}

func (s *wrr) Name() string { return "wrr" }

func gcd(a, b int32) int32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// gcdWeight is ip_vs_wrr_gcd_weight: the gcd of the positive weights, 1
// when there are none.
func gcdWeight(ds []*Dest) int32 {
	var g int32
	for _, d := range ds {
		if w := d.Weight(); w > 0 {
			if g > 0 {
				g = gcd(w, g)
			} else {
				g = w
			}
		}
	}
	if g == 0 {
		return 1
	}
	return g
}

// maxWeight is ip_vs_wrr_max_weight.
func maxWeight(ds []*Dest) int32 {
	var m int32
	for _, d := range ds {
		if w := d.Weight(); w > m {
			m = w
		}
	}
	return m
}

// Changed is ip_vs_wrr_dest_changed, the kernel's add_dest, del_dest and
// upd_dest hook: back to the head, recompute di and mw, and keep cw in
// range.
func (s *wrr) Changed(ds []*Dest, _ Change) {
	s.cl = head
	s.di = gcdWeight(ds)
	s.mw = maxWeight(ds) - (s.di - 1)
	switch {
	case s.cw > s.mw || s.cw == 0:
		s.cw = s.mw
	case s.di > 1:
		s.cw = (s.cw/s.di)*s.di + 1
	}
}

// Pick is ip_vs_wrr_schedule.
func (s *wrr) Pick(ds []*Dest, _ *conntrack.Key) int {
	n := len(ds)
	if s.cl >= n {
		s.cl = head
	}
	if s.mw <= 0 {
		return -1
	}
	last := s.cl
	stop := n // none: no index equals n
	lastPass, restarted := false, false
	d := s.cl
	for {
		// list_for_each_entry_continue: from after d to the end.
		for j := d + 1; j < n; j++ {
			if !ds[j].Overloaded() && ds[j].Weight() >= s.cw {
				s.cl = j
				return j
			}
			if j == stop {
				s.cl = j
				return -1 // all destinations are overloaded
			}
		}
		d = head
		s.cw -= s.di
		if s.cw <= 0 {
			s.cw = s.mw
			// Stop if the last pass (weights >= 1) started from the
			// first destination, or a pass already ran for w >= 1.
			if lastPass || last == head {
				s.cl = head
				return -1
			}
			restarted = true
		}
		lastPass = s.cw <= s.di
		if lastPass && restarted && last != head {
			// The first traversal for w >= 1 covered only the
			// destinations after last: now cover those up to last.
			stop = last
		}
	}
}
