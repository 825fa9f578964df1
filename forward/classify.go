package forward

import (
	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/internal/hdr"
	"github.com/gvs-project/gvs/service"
)

// packet is what classify learns of a frame: where its headers are and
// the fields the rest of the path needs. It lives on the stack.
type packet struct {
	ip       hdr.IPv4
	l4off    int // offset of the TCP/UDP header in the frame
	ipLen    int // IPv4 total length
	proto    uint8
	src, dst [4]byte
	sport    uint16
	dport    uint16
	tcpFlags uint8
}

// classify checks a frame's Ethernet, IPv4 and TCP/UDP headers and fills
// p. It returns Forwarded when the frame is a well-formed, unfragmented
// IPv4 TCP or UDP packet addressed to this host's MAC, and otherwise the
// verdict that leaves it alone.
func classify(f *afpacket.Frame, p *packet) Reason {
	if f.PktType != afpacket.PacketHost {
		return NotHost
	}
	if f.Status&afpacket.StatusVLANValid != 0 {
		return VLAN
	}
	b := f.Data
	if len(b) < hdr.EthernetLen {
		return Malformed
	}
	switch hdr.Ethernet(b).Type() {
	case hdr.EtherTypeIPv4:
	case hdr.EtherTypeVLAN, hdr.EtherTypeQinQ:
		return VLAN
	default:
		return NotIPv4
	}
	ip := hdr.IPv4(b[hdr.EthernetLen:])
	if len(ip) < hdr.IPv4MinLen || ip.Version() != 4 {
		return Malformed
	}
	hl := ip.HeaderLen()
	total := ip.TotalLen()
	// A truncated frame (f.Len > len(b)) still has all its headers in b;
	// its IP length is checked against the frame's full length.
	avail := len(ip)
	if f.Len > len(b) {
		avail = f.Len - hdr.EthernetLen
	}
	if hl < hdr.IPv4MinLen || total < hl || total > avail || len(ip) < hl {
		return Malformed
	}
	proto := ip.Protocol()
	if proto != hdr.ProtoTCP && proto != hdr.ProtoUDP {
		return NotOurs
	}
	if ip.IsFragment() {
		return Fragment
	}
	l4 := ip[hl:]
	p.ip = ip
	p.l4off = hdr.EthernetLen + hl
	p.ipLen = total
	p.proto = proto
	p.src = ip.Source()
	p.dst = ip.Destination()
	if proto == hdr.ProtoTCP {
		if len(l4) < hdr.TCPMinLen {
			return Malformed
		}
		t := hdr.TCP(l4)
		if off := t.DataOffset(); off < hdr.TCPMinLen || off > total-hl {
			return Malformed
		}
		p.sport, p.dport, p.tcpFlags = t.SourcePort(), t.DestinationPort(), t.Flags()
		return Forwarded
	}
	if len(l4) < hdr.UDPLen || total-hl < hdr.UDPLen {
		return Malformed
	}
	u := hdr.UDP(l4)
	p.sport, p.dport = u.SourcePort(), u.DestinationPort()
	return Forwarded
}

// schedule picks the real server of a new connection. For a persistent
// service it follows ip_vs_sched_persist: the client's template (its
// address under the service's netmask, client port 0, the virtual port, or
// 0 for a port-0 service) names the real server while it lives; a new or
// invalid template (its server removed, or quiesced with
// ExpireQuiescentTemplate, as ip_vs_check_template says) is scheduled and
// created. The template's timer restarts with each connection it places.
func (w *Worker) schedule(svc *service.Service, k *conntrack.Key, now int64) (*service.Real, conntrack.TemplateRef[*service.Real]) {
	var none conntrack.TemplateRef[*service.Real]
	p := svc.Persistence()
	if p == nil {
		return svc.Pick(k), none
	}
	tk := &w.tkey
	*tk = *k
	tk.ClientPort = 0
	for i := range 4 {
		tk.Client[12+i] &= p.Mask[i]
	}
	if svc.Key.Port == 0 || svc.Key.Port == ftpPort {
		tk.VirtualPort = 0
	}
	conns := w.e.cfg.Conns
	if r, ref, ok := conns.Template(tk, p.Timeout, now); ok {
		if !r.Removed() && (!w.e.cfg.ExpireQuiescentTemplate || r.Weight() > 0) {
			return r, ref
		}
	}
	r := svc.Pick(k)
	if r == nil {
		return nil, none
	}
	ref, err := conns.InsertTemplate(tk, r, p.Timeout, now)
	if err != nil {
		// No room for the template: the connection still goes to the
		// picked server, without persistence.
		return r, none
	}
	return r, ref
}

// ftpPort is FTP's control port: IPVS gives persistent FTP services
// templates with virtual port 0, so that the data connections on other
// ports follow the control connection.
const ftpPort = 21

// handle is the whole path of one frame: classify, find the service,
// find or create the connection (scheduling a real server for a new one),
// count, and hand the frame to the real server's forwarding method.
func (w *Worker) handle(f *afpacket.Frame, now int64, snap *service.Snapshot) Reason {
	var p packet
	if r := classify(f, &p); r != Forwarded {
		return r
	}
	svc := snap.Lookup(service.Key{Addr: p.dst, Port: p.dport, Protocol: p.proto})
	if svc == nil {
		return NotOurs
	}
	if f.Len > len(f.Data) {
		return Truncated
	}
	// The key lives in the worker: passed on to the scheduler through an
	// interface, a key on the stack would escape and cost an allocation.
	k := &w.key
	*k = conntrack.KeyV4(p.proto, p.src, p.sport, p.dst, p.dport)
	conns := w.e.cfg.Conns
	real, _, ok := conns.Lookup(k, conntrack.Input, p.tcpFlags, now)
	if ok && w.e.cfg.ExpireNodestConn && real.Removed() {
		conns.Remove(k)
		return DestGone
	}
	if !ok {
		// Only a SYN starts a TCP connection (tcp_conn_schedule: th->syn
		// and not th->rst); anything else without an entry is dropped.
		if p.proto == hdr.ProtoTCP && p.tcpFlags&(hdr.TCPFlagSYN|hdr.TCPFlagRST) != hdr.TCPFlagSYN {
			return NoConn
		}
		picked, tmpl := w.schedule(svc, k, now)
		if picked == nil {
			return NoDest
		}
		var res conntrack.Result
		var err error
		real, res, err = conns.InsertControlled(k, picked, picked.Forward != service.Masq, tmpl, p.tcpFlags, now)
		if err != nil {
			return TableFull
		}
		if res.Created {
			real.Conns.Add(1)
			svc.Conns.Add(1)
		}
	}
	n := uint64(p.ipLen)
	real.InPkts.Add(1)
	real.InBytes.Add(n)
	svc.InPkts.Add(1)
	svc.InBytes.Add(n)
	switch real.Forward {
	case service.Route:
		return w.forwardDR(f, &p, real)
	}
	return NoEgress
}
