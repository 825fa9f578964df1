package director

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// nextHop is where the routing table sends packets for an address.
type nextHop struct {
	ifi *net.Interface
	hop netip.Addr // the gateway, or the address itself when on-link
	src [4]byte    // the source address the kernel would use
}

// route asks the kernel's routing table how to reach addr (as IPVS's
// __ip_vs_get_out_rt does): the interface, which must be one gvs serves,
// the next hop, and the preferred source address.
func (d *Director) route(addr netip.Addr) (nextHop, error) {
	routes, err := netlink.RouteGet(addr.AsSlice())
	if err != nil || len(routes) == 0 {
		return nextHop{}, fmt.Errorf("no route to real server %v: %v", addr, err)
	}
	rt := routes[0]
	var ifi *net.Interface
	for _, i := range d.ifaces {
		if i.Index == rt.LinkIndex {
			ifi = i
		}
	}
	if ifi == nil {
		name := fmt.Sprint(rt.LinkIndex)
		if l, err := net.InterfaceByIndex(rt.LinkIndex); err == nil {
			name = l.Name
		}
		return nextHop{}, fmt.Errorf("real server %v is reached through %s, which gvs does not serve (add it with -i)", addr, name)
	}
	h := nextHop{ifi: ifi, hop: addr}
	if gw, ok := netip.AddrFromSlice(rt.Gw); ok && gw.Unmap().IsValid() && !gw.Unmap().IsUnspecified() {
		h.hop = gw.Unmap()
	}
	if src, ok := netip.AddrFromSlice(rt.Src); ok && src.Unmap().Is4() {
		h.src = src.Unmap().As4()
	} else {
		h.src = firstIPv4(ifi)
	}
	if h.src == ([4]byte{}) {
		return nextHop{}, errors.New("interface " + ifi.Name + " has no IPv4 address to send from")
	}
	return h, nil
}

// kernelHolds reports whether addr is an address of this host's kernel.
func (d *Director) kernelHolds(addr netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if x, ok := netip.AddrFromSlice(ipn.IP); ok && x.Unmap() == addr {
				return true
			}
		}
	}
	return false
}
