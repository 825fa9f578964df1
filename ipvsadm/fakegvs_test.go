package ipvsadm

import (
	"encoding/json"
	"net/netip"
	"slices"

	"github.com/gvs-project/gvs/control"
)

// fakeGVS is an in-memory stand-in for the gvs daemon: it keeps a table
// of services, applies configuration requests (a batch all or nothing)
// with the kernel's errno for each mistake, answers listings, and records
// every request it is sent.
type fakeGVS struct {
	services []control.Service
	conns    []control.Conn
	timeouts control.Timeouts
	info     control.Info
	requests []*control.Request
	// schedulers the fake knows; an unknown one is ENOENT.
	schedulers map[string]bool
}

func newFakeGVS() *fakeGVS {
	return &fakeGVS{
		info:     control.Info{Version: "test", IPVSVersion: "1.2.1", ConnTableSize: 4096},
		timeouts: control.Timeouts{TCP: 900, TCPFin: 120, UDP: 300},
		schedulers: map[string]bool{"rr": true, "wrr": true, "lc": true, "wlc": true, "lblc": true,
			"lblcr": true, "dh": true, "sh": true, "sed": true, "nq": true, "mh": true},
	}
}

// Do implements Doer. The request is copied through JSON, as the socket
// would, so that tests see what would go on the wire.
func (g *fakeGVS) Do(req *control.Request) (*control.Reply, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var r control.Request
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	g.requests = append(g.requests, &r)
	rep := &control.Reply{Version: control.Version}
	switch r.Op {
	case control.OpInfo:
		info := g.info
		rep.Info = &info
	case control.OpList:
		if r.Service != nil {
			i := g.find(r.Service)
			if i < 0 {
				rep.Error = &control.Error{Code: control.CodeNoService, Message: "no such service", Index: -1}
				break
			}
			rep.Services = []control.Service{g.services[i]}
			break
		}
		rep.Services = slices.Clone(g.services)
	case control.OpConns:
		rep.Conns = g.conns
	case control.OpTimeouts:
		t := g.timeouts
		rep.Timeouts = &t
	case control.OpBatch:
		saved := g.clone()
		for i := range r.Commands {
			if e := g.apply(&r.Commands[i]); e != nil {
				e.Index = i
				g.services = saved.services
				g.timeouts = saved.timeouts
				rep.Error = e
				break
			}
		}
	default:
		rep.Error = g.apply(&r)
	}
	return rep, nil
}

func (g *fakeGVS) clone() *fakeGVS {
	c := *g
	c.services = nil
	for _, s := range g.services {
		s.Dests = slices.Clone(s.Dests)
		c.services = append(c.services, s)
	}
	return &c
}

func sameKey(a, b *control.Service) bool {
	return a.Protocol == b.Protocol && a.Addr == b.Addr && a.Port == b.Port
}

func (g *fakeGVS) find(key *control.Service) int {
	for i := range g.services {
		if sameKey(&g.services[i], key) {
			return i
		}
	}
	return -1
}

func findDest(s *control.Service, d *control.Dest) int {
	for i := range s.Dests {
		if s.Dests[i].Addr == d.Addr && s.Dests[i].Port == d.Port {
			return i
		}
	}
	return -1
}

func errCode(code string) *control.Error { return &control.Error{Code: code, Message: code, Index: -1} }

// apply changes the table as IPVS would, returning its errno on refusal.
func (g *fakeGVS) apply(r *control.Request) *control.Error {
	switch r.Op {
	case control.OpAddService, control.OpEditService:
		if r.Service == nil || !r.Service.Addr.IsValid() {
			return errCode(control.CodeInvalid)
		}
		if !g.schedulers[r.Service.Scheduler] || r.Service.PE != "" {
			return errCode(control.CodeNoDest)
		}
		i := g.find(r.Service)
		s := *r.Service
		if r.Op == control.OpAddService {
			if i >= 0 {
				return errCode(control.CodeExists)
			}
			s.Dests = nil
			g.services = append(g.services, s)
			return nil
		}
		if i < 0 {
			return errCode(control.CodeNoService)
		}
		s.Dests, s.Stats, s.Rates = g.services[i].Dests, g.services[i].Stats, g.services[i].Rates
		g.services[i] = s
	case control.OpDelService:
		i := g.find(r.Service)
		if i < 0 {
			return errCode(control.CodeNoService)
		}
		g.services = slices.Delete(g.services, i, i+1)
	case control.OpClear:
		g.services = nil
	case control.OpZero:
		if r.Service != nil {
			i := g.find(r.Service)
			if i < 0 {
				return errCode(control.CodeNoService)
			}
			g.services[i].Stats = control.Stats{}
			return nil
		}
		for i := range g.services {
			g.services[i].Stats = control.Stats{}
		}
	case control.OpAddDest, control.OpEditDest, control.OpDelDest:
		if r.Service == nil || r.Dest == nil {
			return errCode(control.CodeInvalid)
		}
		i := g.find(r.Service)
		if i < 0 {
			return errCode(control.CodeNoService)
		}
		s := &g.services[i]
		j := findDest(s, r.Dest)
		switch r.Op {
		case control.OpAddDest:
			if j >= 0 {
				return errCode(control.CodeExists)
			}
			s.Dests = append(s.Dests, *r.Dest)
		case control.OpEditDest:
			if j < 0 {
				return errCode(control.CodeNoDest)
			}
			d := *r.Dest
			d.ActiveConns, d.InactiveConns = s.Dests[j].ActiveConns, s.Dests[j].InactiveConns
			s.Dests[j] = d
		default:
			if j < 0 {
				return errCode(control.CodeNoDest)
			}
			s.Dests = slices.Delete(s.Dests, j, j+1)
		}
	case control.OpAddLaddr, control.OpDelLaddr:
		if r.Service == nil || !r.Laddr.IsValid() {
			return errCode(control.CodeInvalid)
		}
		i := g.find(r.Service)
		if i < 0 {
			return errCode(control.CodeNoService)
		}
		s := &g.services[i]
		j := slices.Index(s.LocalAddrs, r.Laddr)
		if r.Op == control.OpAddLaddr {
			if j >= 0 {
				return errCode(control.CodeExists)
			}
			s.LocalAddrs = append(s.LocalAddrs, r.Laddr)
		} else {
			if j < 0 {
				return errCode(control.CodeNoDest)
			}
			s.LocalAddrs = slices.Delete(s.LocalAddrs, j, j+1)
		}
	case control.OpTrace:
		if r.Service != nil && g.find(r.Service) < 0 {
			return errCode(control.CodeNoService)
		}
	case control.OpSetTimeouts:
		if r.Timeouts == nil {
			return errCode(control.CodeInvalid)
		}
		if r.Timeouts.TCP != 0 {
			g.timeouts.TCP = r.Timeouts.TCP
		}
		if r.Timeouts.TCPFin != 0 {
			g.timeouts.TCPFin = r.Timeouts.TCPFin
		}
		if r.Timeouts.UDP != 0 {
			g.timeouts.UDP = r.Timeouts.UDP
		}
	default:
		return errCode(control.CodeInvalid)
	}
	return nil
}

// labNames is the resolver of the tests: a few hosts and services, and
// nothing else, so no lookup leaves the process.
func labNames() StaticNames {
	m := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	return StaticNames{
		Hosts: map[string]netip.Addr{
			"vip.lab.example":  m("192.168.150.100"),
			"rs12.lab.example": m("192.168.150.12"),
			"a-very-long-real-server-hostname.lab.example": m("192.168.150.11"),
			"secure-frontend.example.org":                  m("10.0.0.1"),
			"mask.lab.example":                             m("255.255.255.0"),
		},
		Addrs: map[netip.Addr]string{
			m("192.168.150.100"): "vip.lab.example",
			m("192.168.150.12"):  "rs12.lab.example",
			m("192.168.150.11"):  "a-very-long-real-server-hostname.lab.example",
			m("10.0.0.1"):        "secure-frontend.example.org",
			m("192.168.150.200"): "client.lab.example",
		},
		Services: map[string]uint16{
			"http/tcp": 80, "www/tcp": 80, "https/tcp": 443, "domain/udp": 53,
			"http-alt/tcp": 8080, "domain/tcp": 53,
		},
		Ports: map[string]string{
			"80/tcp": "http", "443/tcp": "https", "53/udp": "domain", "53/tcp": "domain",
			"8080/tcp": "http-alt",
		},
	}
}

func netipAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
