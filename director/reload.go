package director

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/control"
	"github.com/gvs-project/gvs/ipvsadm"
	"github.com/gvs-project/gvs/service"
)

// RulesError is a rules file that was not applied: the line at fault (0
// when no one line is) and why.
type RulesError struct {
	File string
	Line int
	Err  error
}

func (e *RulesError) Error() string {
	msg := e.Err.Error()
	switch {
	case e.Line > 0:
		return fmt.Sprintf("rules file %s line %d: %s", e.File, e.Line, msg)
	case strings.HasPrefix(msg, "line "):
		// The parser's errors name the line themselves.
		return fmt.Sprintf("rules file %s %s", e.File, msg)
	}
	return fmt.Sprintf("rules file %s: %s", e.File, msg)
}

func (e *RulesError) Unwrap() error { return e.Err }

// ReloadResult says what a reload changed.
type ReloadResult struct {
	// Ops is how many changes the reload made to the service table:
	// services and servers added, edited and removed.
	Ops int
	// Commands is the number of commands in the file.
	Commands int
}

// Reload replaces the running configuration with the rules file's (gvs
// --rules FILE, on SIGHUP), all or nothing: afterwards gvs is configured
// exactly as a fresh start with the file would configure it (services in
// the file's order, each service's real servers in the same list order,
// so the schedulers make the same picks; timeouts the defaults unless the
// file sets them), and every change made with gvsadm since the file was
// loaded is gone. A file that cannot be read, parsed or applied changes
// nothing and is reported as a *RulesError naming the line.
//
// The connection table is left alone, and what the file keeps is kept in
// place, not rebuilt: a service whose settings are unchanged keeps its
// scheduler's state and counters, and a real server the file keeps (same
// service, address and port, in the same relative order) keeps its
// connections, counts, persistence templates and counters. Only what the
// file changes is changed, by the same all-or-nothing Apply gvsadm's
// commands go through. A server the reload removes is retired as with
// gvsadm -d: its established flows keep going (or, with
// --expire-nodest-conn, end at their next packet).
func (d *Director) Reload(path string) (ReloadResult, error) {
	fail := func(line int, err error) (ReloadResult, error) {
		return ReloadResult{}, &RulesError{File: path, Line: line, Err: err}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fail(0, err)
	}
	batch, lines, err := ipvsadm.ParseRestore(string(b), &ipvsadm.SystemNames{})
	if err != nil {
		// ParseRestore's error names the line itself.
		return fail(0, err)
	}
	lineOf := func(i int) int {
		if i >= 0 && i < len(lines) {
			return lines[i]
		}
		return 0
	}
	// The file's commands as service table operations (and timeouts).
	var ops []service.Op
	var opCmd []int // the command each op comes from
	var timeouts []*control.Timeouts
	for i := range batch.Commands {
		req := &batch.Commands[i]
		if req.Op == control.OpSetTimeouts {
			if rep := checkTimeouts(req.Timeouts); rep != nil {
				return fail(lineOf(i), errors.New(rep.Error.Message))
			}
			timeouts = append(timeouts, req.Timeouts)
			continue
		}
		op, err := toOp(req)
		if err != nil {
			return fail(lineOf(i), err)
		}
		ops = append(ops, op)
		opCmd = append(opCmd, i)
	}
	// What the file builds on an empty table: the configuration wanted.
	want := service.New()
	if _, err := want.Apply(ops, nil); err != nil {
		var oe *service.OpError
		if errors.As(err, &oe) {
			return fail(lineOf(opCmd[oe.Index]), err)
		}
		return fail(0, err)
	}
	// Where each service, server and local address of it was last set.
	origin := map[string]int{}
	for i, op := range ops {
		switch op.Kind {
		case service.AddService, service.EditService:
			origin[op.Service.String()] = opCmd[i]
		case service.AddReal, service.EditReal:
			origin[op.Service.String()+" "+netip.AddrPortFrom(op.Real.Addr, op.Real.Port).String()] = opCmd[i]
		case service.AddLocalAddr:
			origin[op.Service.String()+" laddr "+op.Addr.String()] = opCmd[i]
		}
	}

	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	if d.stopping {
		return fail(0, errors.New("gvs is stopping"))
	}
	changes, keys := replaceOps(d.services.Services(), want.Services())
	plan, err := d.services.Apply(changes, d.prepare)
	if err != nil {
		var oe *service.OpError
		if errors.As(err, &oe) {
			return fail(lineOf(origin[keys[oe.Index]]), err)
		}
		var re *requestError
		if errors.As(err, &re) {
			return fail(0, errors.New(re.msg))
		}
		return fail(0, err)
	}
	ts := conntrack.DefaultTimeouts()
	if d.cfg.Conns != nil && d.cfg.Conns.Timeouts != nil {
		ts = *d.cfg.Conns.Timeouts
	}
	d.conns.SetTimeouts(ts)
	for _, t := range timeouts {
		d.setTimeouts(t)
	}
	d.afterApply(plan)
	return ReloadResult{Ops: len(changes), Commands: len(batch.Commands)}, nil
}

// stopReloads makes later reloads fail and waits for one in progress.
func (d *Director) stopReloads() {
	d.applyMu.Lock()
	d.stopping = true
	d.applyMu.Unlock()
}

// checkTimeouts checks a --set line as setTimeouts would, without setting
// anything: nil if it is good.
func checkTimeouts(t *control.Timeouts) *control.Reply {
	if t == nil {
		return errorReply(control.CodeInvalid, -1, "set-timeouts without timeouts")
	}
	for _, v := range []uint32{t.TCP, t.TCPFin, t.UDP} {
		if v > maxTimeout {
			return errorReply(control.CodeInvalid, -1, fmt.Sprintf("timeout %d s is above the maximum of %d s", v, maxTimeout))
		}
	}
	return nil
}

// replaceOps returns the operations that turn the services cur into want
// (two tables' Services(), in order), keeping in place whatever can be
// kept, and for each operation the origin key (as Reload's origin map
// names services, servers and local addresses) of what it sets.
//
// The service table appends a new service at the end of its order, and
// puts a new real server first in its service's list (as IPVS does), and
// the order matters (listings; the schedulers' picks follow the list). So
// the services kept are the longest start of want's order that cur has in
// the same relative order, and the real servers kept are the longest end
// of a service's wanted list that its current list has in the same
// relative order; everything else is removed and added again. Local
// addresses are appended, like services.
func replaceOps(cur, want []*service.Service) (ops []service.Op, keys []string) {
	add := func(op service.Op, key string) {
		ops = append(ops, op)
		keys = append(keys, key)
	}
	curKeys := make([]service.Key, len(cur))
	for i, s := range cur {
		curKeys[i] = s.Key
	}
	wantKeys := make([]service.Key, len(want))
	for i, s := range want {
		wantKeys[i] = s.Key
	}
	kept := keptPrefix(curKeys, wantKeys)
	for _, s := range cur {
		if !slices.Contains(wantKeys[:kept], s.Key) {
			add(service.Op{Kind: service.DelService, Service: s.Key}, s.Key.String())
		}
	}
	for i, w := range want {
		sk := w.Key
		var c *service.Service
		if i < kept {
			c = cur[slices.Index(curKeys, sk)]
		}
		ws := w.Settings()
		if c == nil {
			add(service.Op{Kind: service.AddService, Service: sk, Settings: ws}, sk.String())
		} else if !sameSettings(c.Settings(), ws) {
			add(service.Op{Kind: service.EditService, Service: sk, Settings: ws}, sk.String())
		}

		// Real servers: keep the longest wanted tail the current list
		// has in order, remove the others, and add the rest last first.
		wr := w.Reals()
		var cr []*service.Real
		if c != nil {
			cr = c.Reals()
		}
		wantRK := make([]netip.AddrPort, len(wr))
		for j, r := range wr {
			wantRK[j] = r.AddrPort()
		}
		curRK := make([]netip.AddrPort, len(cr))
		for j, r := range cr {
			curRK[j] = r.AddrPort()
		}
		from := len(wr) - keptSuffix(curRK, wantRK)
		realKey := func(r *service.Real) string { return sk.String() + " " + r.AddrPort().String() }
		for _, r := range cr {
			if !slices.Contains(wantRK[from:], r.AddrPort()) {
				add(service.Op{Kind: service.DelReal, Service: sk, Real: service.RealSpec{Addr: r.Addr, Port: r.Port}}, realKey(r))
			}
		}
		for j := from - 1; j >= 0; j-- {
			add(service.Op{Kind: service.AddReal, Service: sk, Real: specOf(wr[j])}, realKey(wr[j]))
		}
		for _, r := range wr[from:] {
			old := cr[slices.Index(curRK, r.AddrPort())]
			if specOf(old) != specOf(r) {
				add(service.Op{Kind: service.EditReal, Service: sk, Real: specOf(r)}, realKey(r))
			}
		}

		// FULLNAT local addresses.
		wl := w.LocalAddrs()
		var cl []netip.Addr
		if c != nil {
			cl = c.LocalAddrs()
		}
		keptL := keptPrefix(cl, wl)
		for _, a := range cl {
			if !slices.Contains(wl[:keptL], a) {
				add(service.Op{Kind: service.DelLocalAddr, Service: sk, Addr: a}, sk.String()+" laddr "+a.String())
			}
		}
		for _, a := range wl[keptL:] {
			add(service.Op{Kind: service.AddLocalAddr, Service: sk, Addr: a}, sk.String()+" laddr "+a.String())
		}
	}
	return ops, keys
}

// keptPrefix is the length of the longest start of want whose elements
// appear in cur in the same order (not necessarily next to each other).
func keptPrefix[T comparable](cur, want []T) int {
	j := 0
	for i, w := range want {
		for j < len(cur) && cur[j] != w {
			j++
		}
		if j == len(cur) {
			return i
		}
		j++
	}
	return len(want)
}

// keptSuffix is the length of the longest end of want whose elements
// appear in cur in the same order.
func keptSuffix[T comparable](cur, want []T) int {
	j := len(cur) - 1
	for i := len(want) - 1; i >= 0; i-- {
		for j >= 0 && cur[j] != want[i] {
			j--
		}
		if j < 0 {
			return len(want) - 1 - i
		}
		j--
	}
	return len(want)
}

// specOf is a real server's settings as an operation sets them all.
func specOf(r *service.Real) service.RealSpec {
	u, l := r.Thresholds()
	return service.RealSpec{Addr: r.Addr, Port: r.Port, Forward: r.Forward(), Weight: r.Weight(), UThreshold: u, LThreshold: l}
}

func sameSettings(a, b service.Settings) bool {
	return slices.Equal(a.SchedFlags, b.SchedFlags) && a.Scheduler == b.Scheduler && a.Persistent == b.Persistent &&
		a.Timeout == b.Timeout && a.Netmask == b.Netmask && a.OnePacket == b.OnePacket
}
