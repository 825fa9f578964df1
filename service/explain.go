package service

import (
	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/sched"
)

// Explain returns the real server the scheduler would pick now for a new
// connection with key k, and why (see sched.Explain), changing nothing.
// The real server is nil when there is none or the pick cannot be
// foreseen (twos). It takes the service's lock, as Pick does, and
// allocates: it serves gvs --trace, never the forwarding path.
func (s *Service) Explain(k *conntrack.Key) (*Real, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, why := sched.Explain(s.sched, s.dests, k)
	if i < 0 || i >= len(s.reals) {
		return nil, why
	}
	return s.reals[i], why
}
