//go:build linux

package arp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// netlinkTimeout bounds one address dump, so a wedged netlink socket
// cannot hold the Resolver's lock for long.
const netlinkTimeout = 2 * time.Second

// New opens an ETH_P_ARP packet socket (SOCK_RAW, PACKET_IGNORE_OUTGOING)
// on each interface and a netlink socket to read the namespace's
// addresses, all in the calling thread's network namespace, and starts a
// reader per interface. Every interface must be Ethernet (a 6-octet
// hardware address). A nil cfg means the defaults.
func New(ifaces []*net.Interface, cfg *Config) (*Resolver, error) {
	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("arp: opening netlink: %w", err)
	}
	if err := nl.SetSocketTimeout(netlinkTimeout); err != nil {
		nl.Close()
		return nil, fmt.Errorf("arp: netlink timeout: %w", err)
	}
	var links []*link
	cleanup := func() {
		for _, l := range links {
			_ = l.conn.Close()
		}
		nl.Close()
	}
	for _, ifi := range ifaces {
		l, err := openLink(ifi)
		if err != nil {
			cleanup()
			return nil, err
		}
		links = append(links, l)
	}
	sys := sysDeps{
		clock: systemClock{},
		addrs: func() ([]ifAddr, error) { return listAddrs(nl) },
		close: func() error { nl.Close(); return nil },
	}
	r, err := newResolver(links, cfg, sys)
	if err != nil {
		cleanup()
		return nil, err
	}
	return r, nil
}

func openLink(ifi *net.Interface) (*link, error) {
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("arp: %s has hardware address %q: %w", ifi.Name, ifi.HardwareAddr, ErrNotEthernet)
	}
	c, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ARP, nil)
	if err != nil {
		return nil, fmt.Errorf("arp: opening a packet socket on %s: %w", ifi.Name, err)
	}
	// Do not read back frames this host sends (the kernel's own ARP, and
	// gvs's); Linux 4.20 and later. Older kernels fall back to the
	// source-MAC check in handle, so a failure here is not fatal.
	if rc, err := c.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
		})
	}
	return &link{
		index: ifi.Index,
		name:  ifi.Name,
		mac:   [6]byte(ifi.HardwareAddr),
		conn:  &packetConn{c: c},
	}, nil
}

// packetConn adapts a packet.Conn to frameConn.
type packetConn struct {
	c *packet.Conn
}

func (p *packetConn) ReadFrame(b []byte) (int, error) {
	n, _, err := p.c.ReadFrom(b)
	return n, err
}

func (p *packetConn) WriteFrame(b []byte) error {
	if len(b) < 6 {
		return fmt.Errorf("arp: frame of %d octets: %w", len(b), unix.EINVAL)
	}
	_, err := p.c.WriteTo(b, &packet.Addr{HardwareAddr: net.HardwareAddr(b[:6])})
	return err
}

func (p *packetConn) Close() error { return p.c.Close() }

// listAddrs dumps the namespace's IPv4 addresses. A dump interrupted by a
// concurrent change is retried once, then used as it is.
func listAddrs(h *netlink.Handle) ([]ifAddr, error) {
	var list []netlink.Addr
	var err error
	for range 2 {
		list, err = h.AddrList(nil, netlink.FAMILY_V4)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, err
	}
	out := make([]ifAddr, 0, len(list))
	for _, a := range list {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if !ip.Is4() {
			continue
		}
		bits, _ := a.Mask.Size()
		out = append(out, ifAddr{ifindex: a.LinkIndex, prefix: netip.PrefixFrom(ip, bits)})
	}
	return out, nil
}
