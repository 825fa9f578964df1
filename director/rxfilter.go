package director

import (
	"fmt"

	"github.com/gvs-project/gvs/forward"
	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/service"
)

// receiveFilter returns the receive rings' program after plan p
// (forward.ReceiveFilter: the frames to virtual and FULLNAT local
// addresses, NAT real servers' replies, ICMP), or nil for no filter: with
// Config.NoReceiveFilter, and while --pcap captures every frame gvs
// receives (without --pcap-services-only), since the capture promises the
// frames gvs leaves to the kernel too.
func (d *Director) receiveFilter(p *service.Plan) []afpacket.Instruction {
	if d.cfg.NoReceiveFilter || (d.cfg.Trace != nil && d.cfg.Trace.Pcap != "" && !d.cfg.Trace.PcapServicesOnly) {
		return nil
	}
	var dsts, srcs [][4]byte
	if p != nil {
		for _, k := range p.Services {
			dsts = append(dsts, k.Addr)
		}
		for _, a := range p.LocalAddrs {
			dsts = append(dsts, a.As4())
		}
		for _, k := range p.NATSources {
			srcs = append(srcs, k.Addr)
		}
	}
	prog := forward.ReceiveFilter(dsts, srcs)
	if tooBig := prog == nil; tooBig != d.filterTooBig {
		d.filterTooBig = tooBig
		if tooBig {
			d.log.Warn("too many addresses for the receive rings' filter: every frame on gvs's interfaces reaches gvs until there are fewer",
				"destinations", len(dsts), "sources", len(srcs))
		} else {
			d.log.Info("the receive rings filter again")
		}
	}
	return prog
}

// setReceiveFilter puts prog on every receive ring (nil: none). If a ring
// refuses it, the rings already changed get the previous program back and
// the error is returned: the rings then filter as before.
func (d *Director) setReceiveFilter(prog []afpacket.Instruction) error {
	for i, rx := range d.rxs {
		if err := rx.SetFilter(prog); err != nil {
			for _, done := range d.rxs[:i] {
				if rerr := done.SetFilter(d.rxProg); rerr != nil {
					d.log.Error("restoring a receive ring's filter", "err", rerr)
				}
			}
			return fmt.Errorf("receive ring %d: %w", i, err)
		}
	}
	d.rxProg = prog
	return nil
}
