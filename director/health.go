package director

import (
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/gvs-project/gvs/control"
	"github.com/gvs-project/gvs/health"
	"github.com/gvs-project/gvs/service"
)

// checks runs the real servers' health checks (package health) and
// applies their verdicts to the service table. The checks follow the
// table: after every change, reconcile starts the checks of servers that
// have one, replaces those whose spec changed, and stops those of servers
// (or checks) that are gone.
type checks struct {
	log *slog.Logger
	mon *health.Monitor[*service.Real]
	// mu serialises reconcile (two gvsadm clients may apply at once).
	mu sync.Mutex
}

// Log messages of health events. Probes are logged at debug level,
// transitions at info; every event carries "seq", one sequence for all
// checks, in the order the events happened.
const (
	msgProbe      = "health probe"
	msgDown       = "real server down"
	msgUp         = "real server up"
	msgCheckStops = "health check stopped"
)

// newChecks makes the director's checker. cfg may replace the clock,
// dialer and runner (tests); nil means the real ones: probes then run in
// gvs's own network namespace, the director's.
func newChecks(log *slog.Logger, cfg *health.Config[*service.Real]) *checks {
	c := &checks{log: log}
	var mc health.Config[*service.Real]
	if cfg != nil {
		mc = *cfg
	}
	mc.OnEvent = c.onEvent
	c.mon = health.NewMonitor(mc)
	return c
}

// close stops every check.
func (c *checks) close() { c.mon.Close() }

// onEvent applies a check's event (called by the Monitor, in sequence
// order) and logs it.
func (c *checks) onEvent(r *service.Real, e health.Event) {
	svc := r.Service()
	attrs := []any{"seq", e.Seq, "service", svc.Key.String(), "real", r.AddrPort().String(), "check", e.Spec.Kind.String()}
	if e.Err != nil {
		attrs = append(attrs, "err", e.Err.Error())
	}
	switch e.Kind {
	case health.Probe:
		attrs = append(attrs, "ok", e.Err == nil, "successes", e.State.Successes, "failures", e.State.Failures)
		c.log.Debug(msgProbe, attrs...)
	case health.Down, health.Up:
		up := e.Kind == health.Up
		applied := svc.SetHealth(r, up)
		st := svc.Settings()
		msg := msgDown
		if up {
			msg = msgUp
			attrs = append(attrs, "successes", e.State.Successes, "rise", e.Spec.Rise, "weight", r.ConfigWeight())
		} else {
			attrs = append(attrs, "failures", e.State.Failures, "fall", e.Spec.Fall, "on_failure", st.OnFailure.String())
		}
		// A verdict about a server the configuration changed meanwhile
		// (removed, or its check gone) is logged but not applied.
		attrs = append(attrs, "applied", applied)
		c.log.Info(msg, attrs...)
	}
}

// reconcile brings the running checks in step with the service table.
func (c *checks) reconcile(services []*service.Service) {
	c.mu.Lock()
	defer c.mu.Unlock()
	want := map[*service.Real]bool{}
	for _, s := range services {
		for _, r := range s.Reals() {
			spec := r.Check()
			if spec == nil {
				continue
			}
			want[r] = true
			if spec.Equal(c.mon.Spec(r)) {
				continue
			}
			c.mon.Set(r, health.Target{Addr: r.Addr, Port: r.Port, Service: s.Key.String()}, spec,
				func() bool { return !r.Failed() })
			c.log.Debug("health check set", "service", s.Key.String(), "real", r.AddrPort().String(),
				"check", spec.Kind.String(), "interval", spec.Interval, "rise", spec.Rise, "fall", spec.Fall)
		}
	}
	for _, r := range c.mon.Keys() {
		if want[r] {
			continue
		}
		c.mon.Remove(r, func(seq uint64, last health.Status) {
			svc := r.Service()
			attrs := []any{"seq", seq, "service", svc.Key.String(), "real", r.AddrPort().String()}
			if r.Check() != nil {
				// The server itself was removed (a check removed
				// from a server leaves it nil).
				c.log.Info(msgCheckStops, append(attrs, "reason", "real server removed")...)
				return
			}
			svc.SetHealth(r, true) // the table did it already when the check went
			if !last.State.Up {
				c.log.Info(msgUp, append(attrs, "reason", "check removed", "weight", r.ConfigWeight())...)
				return
			}
			c.log.Info(msgCheckStops, append(attrs, "reason", "check removed")...)
		})
	}
}

// checkSpec translates a request's check into a spec; an edit-dest
// without one keeps the server's (keep). set is the request's dest.set.
func checkSpec(op control.Op, dst *control.Dest) (spec *health.Spec, keep bool, err error) {
	switch op {
	case control.OpAddDest:
	case control.OpEditDest:
		if len(dst.Set) > 0 && !slices.Contains(dst.Set, "check") {
			return nil, true, nil
		}
		if dst.Check == nil {
			if len(dst.Set) > 0 {
				return nil, false, badRequest(control.CodeInvalid, "set names check but the request has none (kind \"none\" removes it)")
			}
			return nil, true, nil
		}
	default:
		return nil, false, nil // del-dest: the check goes with the server
	}
	c := dst.Check
	if c == nil || c.Kind == control.CheckNone {
		return nil, false, nil
	}
	kind, err := health.ParseKind(c.Kind)
	if err != nil {
		return nil, false, badRequest(control.CodeInvalid, "%v", err)
	}
	spec = &health.Spec{Kind: kind, Port: c.Port, Interval: time.Duration(c.IntervalMS) * time.Millisecond,
		Timeout: time.Duration(c.TimeoutMS) * time.Millisecond, Rise: int(c.Rise), Fall: int(c.Fall),
		URL: c.URL, Status: int(c.Status), Digest: c.Digest, Payload: c.Payload, Command: c.Cmd}
	if err := spec.Normalize(); err != nil {
		return nil, false, badRequest(control.CodeInvalid, "real server %v: %v", dst.Addr, err)
	}
	return spec, false, nil
}

// controlCheck is a spec as the protocol carries it.
func controlCheck(s *health.Spec) *control.Check {
	if s == nil {
		return nil
	}
	return &control.Check{Kind: s.Kind.String(), Port: s.Port, IntervalMS: uint32(s.Interval / time.Millisecond),
		TimeoutMS: uint32(s.Timeout / time.Millisecond), Rise: uint32(s.Rise), Fall: uint32(s.Fall),
		URL: s.URL, Status: uint32(s.Status), Digest: s.Digest, Payload: s.Payload, Cmd: s.Command}
}

// destHealth fills in a listed real server's check and health.
func (d *Director) destHealth(cd *control.Dest, r *service.Real) {
	cd.Weight = r.ConfigWeight()
	spec := r.Check()
	if spec == nil {
		return
	}
	cd.Check = controlCheck(spec)
	h := &control.Health{State: "up", InService: r.InService(), Weight: r.Weight()}
	if r.Failed() {
		h.State = "down"
	}
	if !h.InService {
		h.Weight = 0
	}
	if st, ok := d.checks.mon.Status(r); ok {
		h.Successes, h.Failures = uint32(st.State.Successes), uint32(st.State.Failures)
		h.Probes, h.Failed, h.Downs, h.Ups = st.Probes, st.Failed, st.Downs, st.Ups
		h.LastError, h.LastSeq = st.LastError, st.LastSeq
		h.Since = uint32(time.Since(st.Since) / time.Second)
	}
	cd.Health = h
}

// healthCounters adds the checks' counters to OpInfo's.
func (d *Director) healthCounters(c map[string]uint64) {
	s := d.checks.mon.Stats()
	c["health.probes"] = s.Probes
	c["health.probe_failures"] = s.Failed
	c["health.down"] = s.Downs
	c["health.up"] = s.Ups
	c["health.seq"] = s.Seq
}

// HandlePeer answers a request from a control socket peer: as Handle,
// except that only root and gvs's own user may configure command checks,
// which run programs as gvs's user (a group let in with --socket-group
// may change the services, not run programs as root).
func (d *Director) HandlePeer(p control.Peer, req *control.Request) *control.Reply {
	if p.UID != 0 && p.UID != uint32(os.Getuid()) {
		reqs, batch := []control.Request{*req}, false
		if req.Op == control.OpBatch {
			reqs, batch = req.Commands, true
		}
		for i := range reqs {
			if dst := reqs[i].Dest; dst != nil && dst.Check != nil && dst.Check.Kind == control.CheckCmd {
				index := -1
				if batch {
					index = i
				}
				return errorReply(control.CodeRefused, index, fmt.Sprintf(
					"uid %d may not configure command checks: they run programs as gvs's user; only root may", p.UID))
			}
		}
	}
	return d.Handle(req)
}

var _ control.PeerHandler = (*Director)(nil)

// onFailure translates a service's on_failure.
func onFailure(s string) (service.OnFailure, error) {
	o, err := service.ParseOnFailure(s)
	if err != nil {
		return 0, badRequest(control.CodeInvalid, "on_failure %q: one of quiesce, remove", s)
	}
	return o, nil
}
