package director

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/gvs-project/gvs/arp"
	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/control"
	"github.com/gvs-project/gvs/forward"
	"github.com/gvs-project/gvs/ingress"
	"github.com/gvs-project/gvs/service"
)

// Handle answers one control request. It is safe for concurrent use:
// changes are serialised by the service table.
func (d *Director) Handle(req *control.Request) *control.Reply {
	switch req.Op {
	case control.OpInfo:
		return &control.Reply{Info: &control.Info{Version: Version, IPVSVersion: IPVSVersion,
			ConnTableSize: d.conns.Size(), Counters: d.counters()}}
	case control.OpList:
		return d.list(req)
	case control.OpConns:
		return &control.Reply{Conns: d.connections()}
	case control.OpTimeouts:
		return &control.Reply{Timeouts: d.timeouts()}
	case control.OpSetTimeouts:
		d.applyMu.Lock()
		defer d.applyMu.Unlock()
		return d.setTimeouts(req.Timeouts)
	case control.OpBatch:
		return d.apply(req.Commands, true)
	case control.OpAddService, control.OpEditService, control.OpDelService, control.OpClear,
		control.OpAddDest, control.OpEditDest, control.OpDelDest, control.OpZero,
		control.OpAddLaddr, control.OpDelLaddr:
		return d.apply([]control.Request{*req}, false)
	case control.OpTrace:
		return d.traceOp(req)
	}
	return errorReply(control.CodeInvalid, -1, fmt.Sprintf("unknown operation %q", req.Op))
}

func errorReply(code string, index int, msg string) *control.Reply {
	return &control.Reply{Error: &control.Error{Code: code, Message: msg, Index: index}}
}

// refusal is gvs refusing what IPVS would accept (CodeRefused).
type refusal struct{ err error }

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// requestError is a request that cannot become a service.Op.
type requestError struct {
	code string
	msg  string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(code, format string, args ...any) error {
	return &requestError{code: code, msg: fmt.Sprintf(format, args...)}
}

// serviceKey turns a request's service into a key.
func serviceKey(s *control.Service) (service.Key, error) {
	if s == nil {
		return service.Key{}, badRequest(control.CodeInvalid, "the request names no service")
	}
	var proto uint8
	switch s.Protocol {
	case control.TCP:
		proto = 6
	case control.UDP:
		proto = 17
	default:
		return service.Key{}, badRequest(control.CodeNotSupported, "protocol %q is not supported by gvs (tcp and udp are)", s.Protocol)
	}
	a := s.Addr.Unmap()
	switch {
	case !a.IsValid():
		return service.Key{}, badRequest(control.CodeInvalid, "the service has no address")
	case !a.Is4():
		return service.Key{}, badRequest(control.CodeNotSupported, "IPv6 services are not supported yet (service %v)", a)
	}
	return service.KeyOf(proto, a, s.Port), nil
}

var forwards = map[string]service.Forward{
	"":                service.Route,
	control.FwdRoute:  service.Route,
	control.FwdTunnel: service.Tunnel,
	control.FwdMasq:   service.Masq,
	"fullnat":         service.FullNAT,
}

func realSpec(op control.Op, dst *control.Dest) (service.RealSpec, error) {
	if dst == nil {
		return service.RealSpec{}, badRequest(control.CodeInvalid, "the request names no real server")
	}
	a := dst.Addr.Unmap()
	if !a.Is4() {
		if a.IsValid() {
			return service.RealSpec{}, badRequest(control.CodeNotSupported, "IPv6 real servers are not supported yet (%v)", a)
		}
		return service.RealSpec{}, badRequest(control.CodeInvalid, "the real server has no address")
	}
	fwd, ok := forwards[dst.Forward]
	if !ok {
		return service.RealSpec{}, badRequest(control.CodeInvalid, "unknown forwarding method %q", dst.Forward)
	}
	r := service.RealSpec{Addr: a, Port: dst.Port, Forward: fwd, Weight: dst.Weight,
		UThreshold: dst.UThreshold, LThreshold: dst.LThreshold}
	var err error
	if r.Check, r.KeepCheck, err = checkSpec(op, dst); err != nil {
		return r, err
	}
	if op == control.OpEditDest && len(dst.Set) > 0 {
		r.KeepForward, r.KeepWeight, r.KeepThresholds = true, true, true
		for _, f := range dst.Set {
			switch f {
			case "forward":
				r.KeepForward = false
			case "weight":
				r.KeepWeight = false
			case "u_threshold", "l_threshold":
				r.KeepThresholds = false
			case "check":
			default:
				return r, badRequest(control.CodeInvalid, "unknown field %q in set", f)
			}
		}
	}
	return r, nil
}

// toOp translates one configuration request.
func toOp(req *control.Request) (service.Op, error) {
	var op service.Op
	switch req.Op {
	case control.OpClear:
		return service.Op{Kind: service.Clear}, nil
	case control.OpZero:
		if req.Service == nil {
			return service.Op{Kind: service.Zero, All: true}, nil
		}
	}
	k, err := serviceKey(req.Service)
	if err != nil {
		return op, err
	}
	op.Service = k
	switch req.Op {
	case control.OpAddService, control.OpEditService:
		op.Kind = service.AddService
		if req.Op == control.OpEditService {
			op.Kind = service.EditService
		}
		s := req.Service
		if s.PE != "" {
			return op, badRequest(control.CodeNotSupported, "persistence engine %q is not supported by gvs", s.PE)
		}
		nm := s.Netmask
		if nm == 0 {
			nm = 32
		}
		op.Settings = service.Settings{Scheduler: s.Scheduler, SchedFlags: s.SchedFlags, Persistent: s.Persistent,
			Timeout: s.Timeout, Netmask: nm, OnePacket: s.OnePacket}
		if op.Settings.OnFailure, err = onFailure(s.OnFailure); err != nil {
			return op, err
		}
	case control.OpDelService:
		op.Kind = service.DelService
	case control.OpAddLaddr, control.OpDelLaddr:
		op.Kind = service.AddLocalAddr
		if req.Op == control.OpDelLaddr {
			op.Kind = service.DelLocalAddr
		}
		if !req.Laddr.IsValid() {
			return op, badRequest(control.CodeInvalid, "the request names no local address")
		}
		op.Addr = req.Laddr
	case control.OpZero:
		op.Kind = service.Zero
	case control.OpAddDest, control.OpEditDest, control.OpDelDest:
		op.Kind = map[control.Op]service.OpKind{control.OpAddDest: service.AddReal,
			control.OpEditDest: service.EditReal, control.OpDelDest: service.DelReal}[req.Op]
		if op.Real, err = realSpec(req.Op, req.Dest); err != nil {
			return op, err
		}
	default:
		return op, badRequest(control.CodeInvalid, "operation %q is not allowed here", req.Op)
	}
	return op, nil
}

// errorCode maps the service table's errors to the errno names IPVS uses.
func errorCode(err error) string {
	switch {
	case errors.Is(err, service.ErrServiceExists), errors.Is(err, service.ErrRealExists), errors.Is(err, service.ErrLocalExists):
		return control.CodeExists
	case errors.Is(err, service.ErrNoLocal):
		return control.CodeNoDest
	case errors.Is(err, service.ErrNoService):
		return control.CodeNoService
	case errors.Is(err, service.ErrNoReal), errors.Is(err, service.ErrScheduler):
		return control.CodeNoDest
	case errors.As(err, new(*refusal)):
		return control.CodeRefused
	case errors.Is(err, service.ErrRange):
		return control.CodeRange
	case errors.Is(err, service.ErrNotSupported):
		return control.CodeNotSupported
	case errors.Is(err, service.ErrInvalid):
		return control.CodeInvalid
	}
	return control.CodeInternal
}

// apply translates and applies requests all or nothing.
func (d *Director) apply(reqs []control.Request, batch bool) *control.Reply {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	ops := make([]service.Op, 0, len(reqs))
	index := func(i int) int {
		if batch {
			return i
		}
		return -1
	}
	for i := range reqs {
		if reqs[i].Op == control.OpBatch || reqs[i].Op == control.OpList || reqs[i].Op == control.OpConns {
			return errorReply(control.CodeInvalid, index(i), fmt.Sprintf("operation %q is not allowed in a batch", reqs[i].Op))
		}
		if reqs[i].Op == control.OpSetTimeouts {
			// --set in a restore file: applied with the rest below.
			ops = append(ops, service.Op{})
			continue
		}
		op, err := toOp(&reqs[i])
		if err != nil {
			var re *requestError
			errors.As(err, &re)
			return errorReply(re.code, index(i), re.msg)
		}
		ops = append(ops, op)
	}
	// Timeouts are not part of the service table: take them out and
	// apply them only if the rest succeeds.
	var timeouts []*control.Timeouts
	var svcOps []service.Op
	var opIndex []int
	for i := range ops {
		if reqs[i].Op == control.OpSetTimeouts {
			if reqs[i].Timeouts == nil {
				return errorReply(control.CodeInvalid, index(i), "set-timeouts without timeouts")
			}
			timeouts = append(timeouts, reqs[i].Timeouts)
			continue
		}
		svcOps = append(svcOps, ops[i])
		opIndex = append(opIndex, i)
	}
	plan, err := d.services.Apply(svcOps, d.prepare)
	if err != nil {
		var oe *service.OpError
		if errors.As(err, &oe) {
			return errorReply(errorCode(err), index(opIndex[oe.Index]), err.Error())
		}
		var re *requestError
		if errors.As(err, &re) {
			return errorReply(re.code, -1, re.msg)
		}
		return errorReply(control.CodeInternal, -1, err.Error())
	}
	for _, t := range timeouts {
		d.setTimeouts(t)
	}
	d.afterApply(plan)
	d.checks.reconcile(d.services.Services())
	return &control.Reply{}
}

// prepare gives the real servers an apply adds (or whose forwarding
// method it changes) their link, checks new FULLNAT local addresses, and
// brings the kernel's ingress filter in step with the services, before
// anything changes. On error nothing is left behind.
func (d *Director) prepare(p *service.Plan) (err error) {
	var acquired []*arp.Neighbor
	defer func() {
		if err != nil {
			for _, n := range acquired {
				d.resolver.Release(n)
			}
		}
	}()
	link := func(addr netip.Addr, fwd service.Forward, op int) (*service.Link, error) {
		l, n, err := d.linkTo(addr, fwd)
		if err != nil {
			return nil, &service.OpError{Index: op, Err: &refusal{err}}
		}
		acquired = append(acquired, n)
		return l, nil
	}
	for i, r := range p.NewReals {
		l, err := link(r.Addr, r.Forward(), p.NewRealOps[i])
		if err != nil {
			return err
		}
		r.SetLink(l)
	}
	for i := range p.Relinks {
		rl := &p.Relinks[i]
		if rl.Link, err = link(rl.Real.Addr, rl.Forward, rl.Op); err != nil {
			return err
		}
	}
	for i, a := range p.NewLocalAddrs {
		if d.kernelHolds(a) {
			return &service.OpError{Index: p.NewLocalAddrOps[i], Err: &refusal{fmt.Errorf(
				"local address %v is an address of this host's kernel, whose TCP stack would reset the real servers' replies: "+
					"give FULLNAT an address of its own", a)}}
		}
	}
	old := d.rxProg
	if err := d.setReceiveFilter(d.receiveFilter(p)); err != nil {
		return &requestError{code: control.CodeInternal, msg: fmt.Sprintf("updating the receive rings' filter: %v", err)}
	}
	if d.filter != nil {
		if err := d.filter.Set(filterRules(p)); err != nil {
			if rerr := d.setReceiveFilter(old); rerr != nil {
				d.log.Error("restoring the receive rings' filter", "err", rerr)
			}
			return &requestError{code: control.CodeInternal, msg: fmt.Sprintf("updating the kernel's ingress filter: %v", err)}
		}
	}
	return nil
}

// filterRules are the frames the kernel must leave to gvs after a plan:
// those to each service, the NAT real servers' replies, and everything
// to a FULLNAT local address.
func filterRules(p *service.Plan) []ingress.Rule {
	rules := make([]ingress.Rule, 0, len(p.Services)+len(p.NATSources)+2*len(p.LocalAddrs))
	for _, k := range p.Services {
		rules = append(rules, ingress.Rule{Protocol: k.Protocol, Addr: netip.AddrFrom4(k.Addr), Port: k.Port})
	}
	for _, k := range p.NATSources {
		rules = append(rules, ingress.Rule{Protocol: k.Protocol, Addr: netip.AddrFrom4(k.Addr), Port: k.Port, Source: true})
	}
	for _, a := range p.LocalAddrs {
		rules = append(rules, ingress.Rule{Protocol: 6, Addr: a}, ingress.Rule{Protocol: 17, Addr: a})
	}
	return rules
}

// linkTo finds where frames for a real server leave: for DR the server
// itself, which must be on a gvs interface's network; for NAT, FULLNAT and
// TUN the next hop the routing table gives, on a gvs interface. It takes
// a reference on the next hop's ARP neighbour.
func (d *Director) linkTo(addr netip.Addr, fwd service.Forward) (*service.Link, *arp.Neighbor, error) {
	var ifi *net.Interface
	hop := addr
	var src [4]byte
	if fwd == service.Route {
		var err error
		if ifi, err = d.onLink(addr); err != nil {
			return nil, nil, err
		}
		src = firstIPv4(ifi)
	} else {
		rt, err := d.route(addr)
		if err != nil {
			return nil, nil, err
		}
		ifi, hop, src = rt.ifi, rt.hop, rt.src
	}
	n, err := d.resolver.Neighbor(ifi.Index, hop)
	if err != nil {
		return nil, nil, fmt.Errorf("resolving %v on %s: %w", hop, ifi.Name, err)
	}
	return &service.Link{Hop: n, Source: src}, n, nil
}

// afterApply retires removed real servers, releases links no longer
// used, and tells ARP which addresses gvs now owns (VIPs and FULLNAT local
// addresses).
func (d *Director) afterApply(p *service.Plan) {
	if len(p.Removed) > 0 {
		d.retiredMu.Lock()
		d.retired = append(d.retired, p.Removed...)
		d.retiredMu.Unlock()
	}
	for _, l := range p.Unlinked {
		d.releaseLink(l)
	}
	var owned []netip.Addr
	for _, k := range p.Services {
		a := netip.AddrFrom4(k.Addr)
		if !slices.Contains(owned, a) {
			owned = append(owned, a)
		}
	}
	for _, a := range p.LocalAddrs {
		if !slices.Contains(owned, a) {
			owned = append(owned, a)
		}
	}
	d.resolver.SetOwned(owned)
	d.log.Debug("configuration applied", "services", len(p.Services), "removed_reals", len(p.Removed))
}

func (d *Director) timeouts() *control.Timeouts {
	ts := d.conns.Timeouts()
	return &control.Timeouts{
		TCP:    uint32(ts.TCP[conntrack.StateEstablished] / time.Second),
		TCPFin: uint32(ts.TCP[conntrack.StateFinWait] / time.Second),
		UDP:    uint32(ts.UDP / time.Second),
	}
}

// maxTimeout is ipvsadm's MAX_TIMEOUT: 31 days.
const maxTimeout = 86400 * 31

func (d *Director) setTimeouts(t *control.Timeouts) *control.Reply {
	if t == nil {
		return errorReply(control.CodeInvalid, -1, "set-timeouts without timeouts")
	}
	for _, v := range []uint32{t.TCP, t.TCPFin, t.UDP} {
		if v > maxTimeout {
			return errorReply(control.CodeInvalid, -1, fmt.Sprintf("timeout %d s is above the maximum of %d s", v, maxTimeout))
		}
	}
	// As ip_vs_set_timeout: a zero keeps the current value.
	ts := d.conns.Timeouts()
	if t.TCP != 0 {
		ts.TCP[conntrack.StateEstablished] = time.Duration(t.TCP) * time.Second
	}
	if t.TCPFin != 0 {
		ts.TCP[conntrack.StateFinWait] = time.Duration(t.TCPFin) * time.Second
	}
	if t.UDP != 0 {
		ts.UDP = time.Duration(t.UDP) * time.Second
	}
	d.conns.SetTimeouts(ts)
	d.log.Info("timeouts set", "tcp", t.TCP, "tcpfin", t.TCPFin, "udp", t.UDP)
	return &control.Reply{}
}

func stats(c *service.Counters) control.Stats {
	return control.Stats{Conns: c.Conns.Load(), InPkts: c.InPkts.Load(), InBytes: c.InBytes.Load(),
		OutPkts: c.OutPkts.Load(), OutBytes: c.OutBytes.Load()}
}

// list answers ipvsadm -L: every service, or the one named.
func (d *Director) list(req *control.Request) *control.Reply {
	var only *service.Key
	if req.Service != nil {
		k, err := serviceKey(req.Service)
		if err != nil {
			var re *requestError
			errors.As(err, &re)
			return errorReply(re.code, -1, re.msg)
		}
		only = &k
	}
	var out []control.Service
	for _, s := range d.services.Services() {
		if only != nil && s.Key != *only {
			continue
		}
		st := s.Settings()
		cs := control.Service{Protocol: s.Key.ProtocolName(), Addr: netip.AddrFrom4(s.Key.Addr), Port: s.Key.Port,
			Scheduler: st.Scheduler, SchedFlags: st.SchedFlags, Persistent: st.Persistent, Timeout: st.Timeout,
			OnePacket: st.OnePacket, Stats: stats(&s.Counters), Rates: d.est.rates(&s.Counters),
			OnFailure: st.OnFailure.String()}
		if st.Persistent && st.Netmask != 32 {
			cs.Netmask = st.Netmask
		}
		cs.LocalAddrs = s.LocalAddrs()
		for _, r := range s.Reals() {
			u, l := r.Thresholds()
			cs.Dests = append(cs.Dests, control.Dest{Addr: r.Addr, Port: r.Port, Forward: forwardName(r.Forward()),
				Weight: r.Weight(), UThreshold: u, LThreshold: l, ActiveConns: uint32(r.Active()),
				InactiveConns: uint32(r.Inactive()), PersistConns: uint32(r.Persistent()), Stats: stats(&r.Counters),
				Rates: d.est.rates(&r.Counters)})
			d.destHealth(&cs.Dests[len(cs.Dests)-1], r)
		}
		out = append(out, cs)
	}
	if only != nil && len(out) == 0 {
		return errorReply(control.CodeNoService, -1, fmt.Sprintf("no such service: %v", *only))
	}
	return &control.Reply{Services: out}
}

// counters gathers the daemon's counters for OpInfo.
func (d *Director) counters() map[string]uint64 {
	c := map[string]uint64{}
	es := d.engine.Stats()
	c["frames"] = es.Frames
	c["batches"] = es.Batches
	for _, r := range forward.Reasons() {
		c["verdict."+r.String()] = es.Verdicts[r]
	}
	c["icmp.sent"] = es.ICMPSent
	c["icmp.relayed"] = es.ICMPRelayed
	c["tunnel.frag_needed"] = es.FragNeeded
	c["tunnel.fragmented"] = es.Fragmented
	c["tunnel.segmented"] = es.Segmented
	c["tx.drops"] = es.TXDrops
	// What the receive rings took in, and what the kernel dropped
	// because a ring was full (gvs fell behind).
	for _, rx := range d.rxs {
		if p, dr, err := rx.Stats(); err == nil {
			c["rx.packets"] += p
			c["rx.ring_drops"] += dr
		}
	}
	cs := d.conns.Stats()
	c["conns.entries"] = uint64(cs.Entries)
	c["conns.created"] = cs.Created
	c["conns.expired"] = cs.Expired
	c["conns.evicted"] = cs.Evicted
	c["conns.full"] = cs.Full
	as := d.resolver.Stats()
	c["arp.requests_sent"] = as.RequestsSent
	c["arp.answers_sent"] = as.AnswersSent
	c["arp.failures"] = as.Failures
	c["arp.drops"] = as.Drops
	c["arp.malformed"] = as.Malformed
	c["arp.conflicts"] = as.Conflicts
	c["arp.disputes"] = as.Disputes
	c["arp.refuted"] = as.Refuted
	fs := d.engine.FragStats()
	c["frags.tracked"] = uint64(fs.Tracked)
	c["frags.placed"] = fs.Placed
	c["frags.evicted"] = fs.Evicted
	c["conns.max"] = uint64(d.conns.Max())
	d.traceCounters(c)
	d.healthCounters(c)
	return c
}

// expires is the seconds left before an entry expires, as the kernel
// reports it (0 for a template kept past its timeout by its connections).
func expires(at, now int64) uint32 {
	if at <= now {
		return 0
	}
	return uint32((at - now) / int64(time.Second))
}

func forwardName(f service.Forward) string {
	for name, v := range forwards {
		if v == f && name != "" {
			return name
		}
	}
	return ""
}

// connections answers ipvsadm -Lc.
func (d *Director) connections() []control.Conn {
	now := conntrack.Now()
	var out []control.Conn
	d.conns.Walk(now, func(e conntrack.Entry[*service.Real]) bool {
		proto := control.TCP
		if e.Key.Protocol == 17 {
			proto = control.UDP
		}
		out = append(out, control.Conn{Protocol: proto, Client: e.Key.ClientAddr(), Virtual: e.Key.VirtualAddr(),
			Dest: e.Dest.AddrPort(), State: e.State.String(), Expires: expires(e.Expires, now), Template: e.Template})
		return true
	})
	return out
}
