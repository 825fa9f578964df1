package ipvsadm

import (
	"errors"
	"fmt"

	"github.com/gvs-project/gvs/control"
)

// ErrNotConfig is returned by Request for commands that change nothing
// (listings, -S, -R, -h, -v).
var ErrNotConfig = errors.New("not a configuration command")

// Request turns a configuration command (-A -E -D -C -a -e -d -Z --set)
// into the control.Request gvs applies, carrying what ipvsadm would send
// to the kernel:
//
//   - -A and -E send every setting, defaults included: like the kernel's
//     edit, -E replaces the whole service (an -E without -s sets wlc);
//   - -a and -e send every destination field with Dest.Set empty ("all"),
//     so an -e without -m makes a NAT server a routed one, as in ipvsadm;
//   - -D and -d send only the keys; -Z sends no service for "all".
func (c *Command) Request() (*control.Request, error) {
	r := &control.Request{Version: control.Version}
	key := &control.Service{Protocol: c.Service.Protocol, Addr: c.Service.Addr, Port: c.Service.Port}
	switch c.Kind {
	case KindAdd, KindEdit:
		r.Op = control.OpAddService
		if c.Kind == KindEdit {
			r.Op = control.OpEditService
		}
		s := c.Service
		s.Dests, s.Stats, s.Rates = nil, control.Stats{}, control.Stats{}
		r.Service = &s
	case KindDel:
		r.Op, r.Service = control.OpDelService, key
	case KindFlush:
		r.Op = control.OpClear
	case KindAddDest, KindEditDest:
		r.Op = control.OpAddDest
		if c.Kind == KindEditDest {
			r.Op = control.OpEditDest
		}
		r.Service = key
		r.Dest = &control.Dest{
			Addr:       c.Dest.Addr,
			Port:       c.Dest.Port,
			Forward:    c.Dest.Forward,
			Weight:     c.Dest.Weight,
			UThreshold: c.Dest.UThreshold,
			LThreshold: c.Dest.LThreshold,
			Check:      c.Check,
		}
	case KindDelDest:
		r.Op, r.Service = control.OpDelDest, key
		r.Dest = &control.Dest{Addr: c.Dest.Addr, Port: c.Dest.Port}
	case KindZero:
		r.Op = control.OpZero
		// libipvs zeroes everything when the service is all zeroes.
		if c.HasService() && (c.Service.Addr.IsValid() && !c.Service.Addr.IsUnspecified() || c.Service.Port != 0) {
			r.Service = key
		}
	case KindTimeout:
		t := c.Timeouts
		r.Op, r.Timeouts = control.OpSetTimeouts, &t
	case KindAddLaddr, KindDelLaddr:
		r.Op = control.OpAddLaddr
		if c.Kind == KindDelLaddr {
			r.Op = control.OpDelLaddr
		}
		r.Service, r.Laddr = key, c.Laddr
	default:
		return nil, fmt.Errorf("%w: %s", ErrNotConfig, c.Kind)
	}
	return r, nil
}
