package service

import (
	"fmt"

	"github.com/gvs-project/gvs/health"
	"github.com/gvs-project/gvs/sched"
)

// OnFailure is what a service does with a real server whose health check
// has it down.
type OnFailure uint8

const (
	// KeepOnFailure, in an EditService, leaves the setting as it is (an
	// ipvsadm -E without --on-failure must not change it). A service
	// added with it quiesces.
	KeepOnFailure OnFailure = iota
	// FailQuiesce gives the server weight 0 while it is down, as
	// keepalived's inhibit_on_failure does: it stays in the scheduler's
	// list (and its persistent clients stay, unless
	// expire_quiescent_template), but takes no new connection.
	FailQuiesce
	// FailRemove takes the server out of the scheduler's list while it
	// is down, as keepalived does by default: hashing schedulers (sh,
	// dh, mh) re-spread its share, and persistence templates to it are
	// not followed.
	FailRemove
)

var onFailureNames = map[OnFailure]string{KeepOnFailure: "", FailQuiesce: "quiesce", FailRemove: "remove"}

// String returns "quiesce" or "remove" ("" for KeepOnFailure).
func (o OnFailure) String() string {
	if n, ok := onFailureNames[o]; ok {
		return n
	}
	return fmt.Sprintf("OnFailure(%d)", uint8(o))
}

// ParseOnFailure parses "quiesce" or "remove" ("" gives KeepOnFailure).
func ParseOnFailure(s string) (OnFailure, error) {
	for o, n := range onFailureNames {
		if n == s {
			return o, nil
		}
	}
	return 0, fmt.Errorf("on-failure %q: one of quiesce, remove: %w", s, ErrInvalid)
}

// Real server flags.
const (
	// flagRemoved: the server was removed from its service (-d, -D, -C).
	flagRemoved = 1 << iota
	// flagFailed: the server's health check has it down.
	flagFailed
	// flagOut: failed and, in a FailRemove service, out of the
	// scheduler's list.
	flagOut
)

// Failed reports whether the real server's health check has it down.
func (r *Real) Failed() bool { return r.flags.Load()&flagFailed != 0 }

// Unavailable reports whether new packets of the real server's
// established flows are for a server that is gone: removed, or down by
// its health check (in either mode). With expire_nodest_conn the data
// path drops such flows at their next packet.
func (r *Real) Unavailable() bool { return r.flags.Load() != 0 }

// InService reports whether the scheduler may choose the server (it may
// still have weight 0): false once removed, or while a health check has
// it out.
func (r *Real) InService() bool { return r.flags.Load()&(flagRemoved|flagOut) == 0 }

// ConfigWeight returns the weight -a or -e gave the server. Weight (the
// scheduler's) is 0 while a health check has the server down.
func (r *Real) ConfigWeight() int32 { return r.cfgWeight.Load() }

// Check returns the server's health check, or nil.
func (r *Real) Check() *health.Spec { return r.check.Load() }

// SetHealth applies a health check's verdict to one of the service's real
// servers: down quiesces it or takes it out (the service's OnFailure);
// up puts it back with its configured weight. It reports whether
// anything changed. A server that was removed, or has no check any
// more, is left as it is (a verdict may arrive just after a change of
// the configuration), except that a server without a check may always
// be brought up.
func (s *Service) SetHealth(r *Real, up bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := r.flags.Load()
	switch {
	case r.service != s || f&flagRemoved != 0:
		return false
	case up == (f&flagFailed == 0):
		return false
	case !up && r.check.Load() == nil:
		return false
	}
	if up {
		s.restore(r)
	} else {
		s.fail(r)
	}
	return true
}

// fail takes a server down. Called with mu held.
func (s *Service) fail(r *Real) {
	r.flags.Or(flagFailed)
	if s.settings.OnFailure == FailRemove {
		s.takeOut(r)
		return
	}
	r.SetWeight(0)
	s.sched.Changed(s.dests, sched.Change{Kind: sched.Updated, Index: s.activeIndex(r)})
}

// restore brings a failed server back. Called with mu held.
func (s *Service) restore(r *Real) {
	out := r.flags.Load()&flagOut != 0
	r.flags.And(^uint32(flagFailed | flagOut))
	r.SetWeight(r.cfgWeight.Load())
	if out {
		s.putBack(r)
		return
	}
	s.sched.Changed(s.dests, sched.Change{Kind: sched.Updated, Index: s.activeIndex(r)})
}

// takeOut removes a server from the scheduler's list. Called with mu held.
func (s *Service) takeOut(r *Real) {
	r.flags.Or(flagOut)
	r.SetWeight(0)
	if j := s.activeIndex(r); j >= 0 {
		s.active = append(s.active[:j:j], s.active[j+1:]...)
		s.dests = append(s.dests[:j:j], s.dests[j+1:]...)
		s.sched.Changed(s.dests, sched.Change{Kind: sched.Removed, Index: j})
	}
}

// putBack returns a server to the head of the scheduler's list, as
// ip_vs_add_dest adds one. Called with mu held; the caller has set its
// weight and flags.
func (s *Service) putBack(r *Real) {
	s.active = append([]*Real{r}, s.active...)
	s.dests = append([]*sched.Dest{&r.Dest}, s.dests...)
	s.sched.Changed(s.dests, sched.Change{Kind: sched.Added, Index: 0})
}

// setOnFailure changes the service's OnFailure, moving its failed
// servers from quiesced to out or back. Called with mu held.
func (s *Service) setOnFailure(o OnFailure) {
	old := s.settings.OnFailure
	s.settings.OnFailure = o
	if old == o {
		return
	}
	for _, r := range s.reals {
		if r.flags.Load()&flagFailed == 0 {
			continue
		}
		if o == FailRemove {
			s.takeOut(r)
		} else {
			r.flags.And(^uint32(flagOut))
			s.putBack(r) // weight 0: quiesced
		}
	}
}

// activeIndex returns r's position in the scheduler's list, or -1.
func (s *Service) activeIndex(r *Real) int {
	for j, a := range s.active {
		if a == r {
			return j
		}
	}
	return -1
}
