package realserver

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/gvs-project/gvs/internal/hdr"
)

// DefaultTunName is the TUN device a Tunnel creates when TunnelConfig.Name
// is empty.
const DefaultTunName = "gvstun0"

// ErrNotSupported is returned where the TUN decapsulator does not exist
// (anything but Linux).
var ErrNotSupported = errors.New("realserver: user-space IPIP decapsulation is only supported on Linux")

// ErrTunnelRunning is returned by NewTunnel and UndoTunnel when the TUN
// device they would create or clean up after is already there: another
// `gvs realserver --tun` is running in this network namespace (or someone
// else owns a device of that name).
var ErrTunnelRunning = errors.New("realserver: the tunnel device exists already")

// ErrKernelTunnel is returned by NewTunnel when the kernel's own IPIP
// device, tunl0, is up: the kernel decapsulates already, and both would
// deliver every packet.
var ErrKernelTunnel = errors.New("realserver: tunl0 is up: the kernel decapsulates IPIP itself")

// TunnelConfig configures NewTunnel and Serve. The zero value is invalid:
// VIPs is required.
type TunnelConfig struct {
	// VIPs are the virtual IPs this real server serves (IPv4 only). An
	// inner packet is delivered only if its destination is one of them.
	VIPs []netip.Addr
	// Dev is the interface facing the director. If set, only tunnelled
	// packets arriving on it are taken (SO_BINDTODEVICE), and Serve sets
	// the ARP sysctls on it alone; empty means any interface.
	Dev string
	// Name is the TUN device's name; empty means DefaultTunName.
	Name string
	// Directors, if not empty, are the only outer source addresses
	// accepted: a tunnelled packet from anywhere else is dropped
	// (DropDirector). Empty accepts any source, like a kernel ipip tunnel
	// with "remote any".
	Directors []netip.Addr
}

func (c *TunnelConfig) name() string {
	if c.Name == "" {
		return DefaultTunName
	}
	return c.Name
}

// check validates c and builds its decapsulator.
func (c *TunnelConfig) check() (decapsulator, error) {
	var d decapsulator
	if len(c.VIPs) == 0 {
		return d, errors.New("realserver: no VIP given")
	}
	for _, v := range c.VIPs {
		if !v.Is4() {
			return d, fmt.Errorf("realserver: VIP %v: only IPv4 VIPs are supported", v)
		}
		d.vips = append(d.vips, v.As4())
	}
	for _, a := range c.Directors {
		if !a.Is4() {
			return d, fmt.Errorf("realserver: director %v: only IPv4 directors are supported", a)
		}
		d.directors = append(d.directors, a.As4())
	}
	// IFNAMSIZ is 16 including the terminating NUL.
	if n := c.name(); len(n) > 15 {
		return d, fmt.Errorf("realserver: tunnel device name %q is longer than 15 bytes", n)
	}
	return d, nil
}

// DropReason says why the decapsulator dropped a packet.
type DropReason uint8

const (
	// DropOuter: the outer packet is not a whole IPv4 datagram carrying
	// IPIP (too short, bad version, IHL or total length, a fragment,
	// truncated, or protocol other than 4).
	DropOuter DropReason = iota
	// DropDirector: the outer source is not one of TunnelConfig.Directors.
	DropDirector
	// DropInner: the inner packet is not a valid IPv4 packet (too short,
	// bad version, IHL, total length or header checksum).
	DropInner
	// DropNotVIP: the inner destination is not one of the VIPs (for
	// example a spoofed packet aimed at the real server's own address).
	DropNotVIP
	// DropECN: the outer header is marked CE but the inner packet is not
	// ECN-capable, which RFC 6040 section 4.2 says to drop (as Linux's
	// ip_tunnel does).
	DropECN
	// DropWrite: writing the inner packet to the TUN device failed.
	DropWrite

	// NumDropReasons is the number of drop reasons, the length of
	// TunnelStats.Dropped.
	NumDropReasons
)

var dropNames = [NumDropReasons]string{"outer", "director", "inner", "not_vip", "ecn", "write"}

func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return fmt.Sprintf("DropReason(%d)", uint8(r))
}

// TunnelStats are a Tunnel's counters since NewTunnel.
type TunnelStats struct {
	Packets    uint64                 // inner packets written to the TUN device
	Bytes      uint64                 // their bytes (inner IP header included)
	Dropped    [NumDropReasons]uint64 // packets dropped, by reason
	ReadErrors uint64                 // failed receives on the raw socket
}

// counters are the atomically updated form of TunnelStats. Only the
// receiving goroutine writes them; Stats may read them at any time.
type counters struct {
	packets, bytes atomic.Uint64
	dropped        [NumDropReasons]atomic.Uint64
	readErrors     atomic.Uint64
}

func (c *counters) snapshot() TunnelStats {
	s := TunnelStats{
		Packets:    c.packets.Load(),
		Bytes:      c.bytes.Load(),
		ReadErrors: c.readErrors.Load(),
	}
	for i := range c.dropped {
		s.Dropped[i] = c.dropped[i].Load()
	}
	return s
}

// ECN codepoints (RFC 3168 section 5): the low two bits of the TOS byte.
const (
	ecnMask   = 0x03
	ecnNotECT = 0x00
	ecnCE     = 0x03
)

// decapsulator is the per-packet logic of a Tunnel, free of I/O so that it
// can be tested without privileges. VIPs and directors are few (a real
// server serves a handful of VIPs), so a linear scan beats a map.
type decapsulator struct {
	vips      [][4]byte
	directors [][4]byte
}

func contains(set [][4]byte, a [4]byte) bool {
	for _, x := range set {
		if x == a {
			return true
		}
	}
	return false
}

// decap checks pkt, an outer IPv4 datagram as a raw IPPROTO_IPIP socket
// delivers it (IP header included, reassembled), and returns the inner
// packet to hand to the kernel, a sub-slice of pkt trimmed to the inner
// total length. It may modify the inner header in place (ECN, RFC 6040).
// If ok is false, why says why the packet must be dropped. decap
// allocates nothing.
func (d *decapsulator) decap(pkt []byte) (inner []byte, why DropReason, ok bool) {
	// Outer header.
	if len(pkt) < hdr.IPv4MinLen {
		return nil, DropOuter, false
	}
	outer := hdr.IPv4(pkt)
	ohl := outer.HeaderLen()
	if outer.Version() != 4 || ohl < hdr.IPv4MinLen || ohl > len(pkt) ||
		outer.TotalLen() < ohl || outer.TotalLen() > len(pkt) ||
		outer.IsFragment() || outer.Protocol() != hdr.ProtoIPIP {
		return nil, DropOuter, false
	}
	if len(d.directors) > 0 && !contains(d.directors, outer.Source()) {
		return nil, DropDirector, false
	}

	// Inner header. Its checksum is checked here although the kernel
	// checks it again, so that a corrupt packet is counted where it can be
	// seen. The transport checksum is left to the kernel.
	in := pkt[ohl:outer.TotalLen()]
	if len(in) < hdr.IPv4MinLen {
		return nil, DropInner, false
	}
	ih := hdr.IPv4(in)
	ihl := ih.HeaderLen()
	if ih.Version() != 4 || ihl < hdr.IPv4MinLen || ihl > len(in) ||
		ih.TotalLen() < ihl || ih.TotalLen() > len(in) ||
		ih.ComputeChecksum() != ih.Checksum() {
		return nil, DropInner, false
	}
	if !contains(d.vips, ih.Destination()) {
		return nil, DropNotVIP, false
	}
	in = in[:ih.TotalLen()]
	ih = hdr.IPv4(in)

	// ECN decapsulation (RFC 6040 section 4.2): congestion experienced on
	// the outer header is copied to an ECN-capable inner packet, and a
	// packet that cannot carry it is dropped.
	if outer.TOS()&ecnMask == ecnCE {
		tos := ih.TOS()
		switch tos & ecnMask {
		case ecnNotECT:
			return nil, DropECN, false
		case ecnCE:
		default:
			old := uint16(ih[0])<<8 | uint16(tos)
			ih[1] = tos | ecnCE
			ih.SetChecksum(hdr.Update16(ih.Checksum(), old, uint16(ih[0])<<8|uint16(ih[1])))
		}
	}
	return in, 0, true
}
