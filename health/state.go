package health

// State is a check's verdict and the run of results leading to the next
// one. The zero value is a down server with no results; a Monitor starts
// checks up (see Monitor.Set).
type State struct {
	Up bool
	// Successes and Failures count the consecutive successful and
	// failed probes up to now; at most one of them is non-zero.
	Successes, Failures int
}

// Observe records one probe result and reports whether the verdict
// changed: an up server goes down on its fall-th consecutive failure, a
// down server comes up on its rise-th consecutive success. The run that
// caused a change is kept (Failures is fall right after going down), and
// the next result of the other kind starts a new run.
func (s *State) Observe(ok bool, rise, fall int) (changed bool) {
	if ok {
		s.Failures = 0
		s.Successes++
		if !s.Up && s.Successes >= rise {
			s.Up = true
			return true
		}
		return false
	}
	s.Successes = 0
	s.Failures++
	if s.Up && s.Failures >= fall {
		s.Up = false
		return true
	}
	return false
}
