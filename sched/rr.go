package sched

import "github.com/gvs-project/gvs/conntrack"

// rr is round-robin scheduling, as net/netfilter/ipvs/ip_vs_rr.c does it:
// starting after the destination picked last, take the next one in list
// order that is available, wrapping around; start from the head of the
// list when nothing was picked yet.
type rr struct {
	pos int // index of the last pick, or head
}

func (s *rr) Name() string { return "rr" }

func (s *rr) Pick(ds []*Dest, _ *conntrack.Key) int {
	n := len(ds)
	if s.pos >= n {
		s.pos = head
	}
	// ip_vs_rr_schedule walks from the element after the last pick to the
	// end, then from the first element up to and including the last pick
	// itself; from the head it makes a single pass over the whole list.
	start := s.pos + 1
	for i := range n {
		j := (start + i) % n
		if ds[j].available() {
			s.pos = j
			return j
		}
	}
	return -1
}

func (s *rr) Changed(ds []*Dest, c Change) {
	switch c.Kind {
	case Added:
		// The new destination is at the head: everything after it
		// moved up one place. A scheduler still at the head stays there
		// and will start with the new destination.
		if s.pos != head {
			s.pos++
		}
	case Removed:
		// ip_vs_rr_del_dest: if the last pick is removed, continue from
		// its predecessor (the head if it was first).
		switch {
		case s.pos == c.Index:
			s.pos = c.Index - 1
			if s.pos < 0 {
				s.pos = head
			}
		case s.pos > c.Index:
			s.pos--
		}
	}
}
