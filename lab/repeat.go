package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gvs-project/gvs/internal/netns"
)

// This file holds what makes a lab's runs repeat frame for frame: client
// connections from fixed local ports, and a first request that waits
// until gvs knows its next hops' MACs.

// DialFrom opens a TCP connection from the client's local port port to
// addr (in the client's namespace).
func (l *Lab) DialFrom(ctx context.Context, port uint16, addr netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	err := netns.Do(l.Client.NS, func() error {
		var err error
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: ClientIP.AsSlice(), Port: int(port)}}
		c, err = d.DialContext(ctx, "tcp4", addr.String())
		return err
	})
	return c, err
}

// GetFrom fetches http://VIP/ from the client's local port port and
// returns the answer's body.
func (l *Lab) GetFrom(ctx context.Context, port uint16) (string, error) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return nil, err
			}
			return l.DialFrom(ctx, port, ap)
		},
		DisableKeepAlives: true,
	}
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+VIP.String()+"/", nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

// NextHops are the neighbours gvs sends the real servers' frames to, by
// the interface it reaches them on: the real servers themselves (DR,
// NAT, FULLNAT) or the router (TUN).
func (l *Lab) NextHops() map[netip.Addr]string {
	hops := map[netip.Addr]string{}
	switch l.cfg.Mode {
	case DR:
		for _, h := range l.Reals {
			hops[h.Addr] = "eth0"
		}
	case NAT, FullNAT:
		for _, h := range l.Reals {
			hops[h.Addr] = "eth1"
		}
	case TUN:
		hops[tunnelLinkRouter] = "eth1"
	}
	return hops
}

// WaitResolved waits until gvs has logged that it resolved every next
// hop's MAC (arp: neighbour ADDR on IFACE (ifindex N) resolved to MAC),
// which it starts doing when a real server is added. A client's first
// SYN sent earlier would be dropped (arp_unresolved) and retransmitted a
// second later.
func (l *Lab) WaitResolved(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		log := l.GvsLog()
		var missing []string
		for addr, dev := range l.NextHops() {
			if !resolvedIn(log, addr, dev) {
				missing = append(missing, addr.String()+" on "+dev)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gvs did not resolve the MAC of %s within 10 s\ngvs log:\n%s", strings.Join(missing, ", "), log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// resolvedIn reports whether gvs's log says it resolved addr on dev.
func resolvedIn(log string, addr netip.Addr, dev string) bool {
	want := fmt.Sprintf("arp: neighbour %s on %s ", addr, dev)
	for _, line := range strings.Split(log, "\n") {
		if i := strings.Index(line, want); i >= 0 && strings.Contains(line[i:], " resolved to ") {
			return true
		}
	}
	return false
}
