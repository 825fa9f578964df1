package service

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var vipKey = KeyOf(6, netip.MustParseAddr("192.168.150.100"), 80)

func addSvc(k Key, sched string) Op {
	return Op{Kind: AddService, Service: k, Settings: Settings{Scheduler: sched}}
}

func addReal(k Key, addr string, w int32) Op {
	return Op{Kind: AddReal, Service: k, Real: RealSpec{Addr: netip.MustParseAddr(addr), Port: k.Port, Forward: Route, Weight: w}}
}

// dump describes the table for comparisons.
func dump(t *Table) string {
	var b strings.Builder
	for _, s := range t.Services() {
		fmt.Fprintf(&b, "%v %s:", s.Key, s.Settings().Scheduler)
		for _, r := range s.Reals() {
			u, l := r.Thresholds()
			fmt.Fprintf(&b, " %v/%v/w%d/%d-%d", r.AddrPort(), r.Forward(), r.Weight(), u, l)
		}
		b.WriteString("\n")
	}
	snap := t.Load()
	fmt.Fprintf(&b, "snapshot %d\n", snap.Len())
	return b.String()
}

func TestApplyAndSnapshot(t *testing.T) {
	tab := New()
	plan, err := tab.Apply([]Op{
		addSvc(vipKey, "rr"),
		addReal(vipKey, "192.168.150.12", 1),
		addReal(vipKey, "192.168.150.13", 1),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.NewReals) != 2 || plan.NewRealOps[0] != 1 || len(plan.Services) != 1 {
		t.Fatalf("plan %+v", plan)
	}
	s := tab.Load().Lookup(vipKey)
	if s == nil {
		t.Fatal("service not in the snapshot")
	}
	// The kernel's list order: the server added last comes first.
	if rs := s.Reals(); rs[0].Addr.String() != "192.168.150.13" || rs[1].Addr.String() != "192.168.150.12" {
		t.Fatalf("list order %v %v", rs[0].Addr, rs[1].Addr)
	}
	var picks []string
	for range 4 {
		picks = append(picks, s.Pick(nil).Addr.String())
	}
	if got := strings.Join(picks, " "); got != "192.168.150.13 192.168.150.12 192.168.150.13 192.168.150.12" {
		t.Fatalf("rr picks %s", got)
	}
	if tab.Load().Lookup(KeyOf(17, netip.MustParseAddr("192.168.150.100"), 80)) != nil {
		t.Fatal("UDP lookup found the TCP service")
	}
}

func TestErrorsChangeNothing(t *testing.T) {
	other := KeyOf(17, netip.MustParseAddr("192.168.150.100"), 53)
	tests := []struct {
		name    string
		ops     []Op
		wantErr error
		index   int
	}{
		{"service exists", []Op{addSvc(other, "rr"), addSvc(vipKey, "wrr")}, ErrServiceExists, 1},
		{"no such service (edit)", []Op{{Kind: EditService, Service: other, Settings: Settings{Scheduler: "rr"}}}, ErrNoService, 0},
		{"no such service (delete)", []Op{{Kind: DelService, Service: other}}, ErrNoService, 0},
		{"real server exists", []Op{addReal(vipKey, "192.168.150.20", 1), addReal(vipKey, "192.168.150.12", 1)}, ErrRealExists, 1},
		{"add to a missing service", []Op{addReal(other, "192.168.150.12", 1)}, ErrNoService, 0},
		{"delete a missing real server", []Op{{Kind: DelReal, Service: vipKey, Real: RealSpec{Addr: netip.MustParseAddr("192.168.150.99"), Port: 80}}}, ErrNoReal, 0},
		{"unknown scheduler", []Op{addSvc(other, "nosuch")}, ErrScheduler, 0},
		{"weight out of range", []Op{addReal(vipKey, "192.168.150.20", 70000)}, ErrInvalid, 0},
		{"lower threshold above upper", []Op{{Kind: AddReal, Service: vipKey, Real: RealSpec{Addr: netip.MustParseAddr("192.168.150.20"), Port: 80, Forward: Route, Weight: 1, UThreshold: 5, LThreshold: 10}}}, ErrRange, 0},
		{"tunnel with another port", []Op{{Kind: AddReal, Service: vipKey, Real: RealSpec{Addr: netip.MustParseAddr("192.168.150.20"), Port: 8080, Forward: Tunnel, Weight: 1}}}, ErrInvalid, 0},
		{"local address twice", []Op{{Kind: AddLocalAddr, Service: vipKey, Addr: netip.MustParseAddr("10.1.1.1")}, {Kind: AddLocalAddr, Service: vipKey, Addr: netip.MustParseAddr("10.1.1.1")}}, ErrLocalExists, 1},
		{"missing local address", []Op{{Kind: DelLocalAddr, Service: vipKey, Addr: netip.MustParseAddr("10.1.1.1")}}, ErrNoLocal, 0},
		{"local address of a missing service", []Op{{Kind: AddLocalAddr, Service: other, Addr: netip.MustParseAddr("10.1.1.1")}}, ErrNoService, 0},
		{"DR with another port", []Op{{Kind: AddReal, Service: vipKey, Real: RealSpec{Addr: netip.MustParseAddr("192.168.150.20"), Port: 8080, Forward: Route, Weight: 1}}}, ErrInvalid, 0},
		{"one-packet scheduling not yet", []Op{{Kind: AddService, Service: other, Settings: Settings{Scheduler: "rr", OnePacket: true}}}, ErrNotSupported, 0},
		{"netmask above 32", []Op{{Kind: AddService, Service: other, Settings: Settings{Scheduler: "rr", Persistent: true, Netmask: 33}}}, ErrInvalid, 0},
		{"port 0 without persistence", []Op{addSvc(KeyOf(6, netip.MustParseAddr("192.168.150.101"), 0), "rr")}, ErrInvalid, 0},
		{"multicast VIP", []Op{addSvc(KeyOf(6, netip.MustParseAddr("224.0.0.1"), 80), "rr")}, ErrInvalid, 0},
		{"real server 0.0.0.0", []Op{addReal(vipKey, "0.0.0.0", 1)}, ErrInvalid, 0},
		{"fails after a clear", []Op{{Kind: Clear}, addReal(vipKey, "192.168.150.12", 1)}, ErrNoService, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := New()
			if _, err := tab.Apply([]Op{addSvc(vipKey, "rr"), addReal(vipKey, "192.168.150.12", 1)}, nil); err != nil {
				t.Fatal(err)
			}
			before := dump(tab)
			prepared := false
			_, err := tab.Apply(tt.ops, func(*Plan) error { prepared = true; return nil })
			var oe *OpError
			if !errors.Is(err, tt.wantErr) || !errors.As(err, &oe) || oe.Index != tt.index {
				t.Fatalf("error %v (index %v), want %v at %d", err, oe, tt.wantErr, tt.index)
			}
			if prepared {
				t.Error("prepare ran for a list that fails its check")
			}
			if after := dump(tab); after != before {
				t.Errorf("table changed:\n%s\nwas:\n%s", after, before)
			}
		})
	}
}

func TestPrepareFailureChangesNothing(t *testing.T) {
	tab := New()
	tab.Apply([]Op{addSvc(vipKey, "rr")}, nil)
	before := dump(tab)
	_, err := tab.Apply([]Op{addReal(vipKey, "192.168.150.12", 1), {Kind: DelService, Service: vipKey}},
		func(*Plan) error { return errors.New("no next hop") })
	if err == nil || err.Error() != "no next hop" {
		t.Fatalf("error %v", err)
	}
	if after := dump(tab); after != before {
		t.Fatalf("table changed:\n%s", after)
	}
}

func TestEditDeleteClear(t *testing.T) {
	tab := New()
	_, err := tab.Apply([]Op{
		addSvc(vipKey, "rr"),
		addReal(vipKey, "192.168.150.12", 1),
		addReal(vipKey, "192.168.150.13", 1),
		{Kind: EditReal, Service: vipKey, Real: RealSpec{Addr: netip.MustParseAddr("192.168.150.12"), Port: 80, Forward: Route, Weight: 3, UThreshold: 10, LThreshold: 5}},
		{Kind: EditService, Service: vipKey, Settings: Settings{Scheduler: "wrr"}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "TCP 192.168.150.100:80 wrr: 192.168.150.13:80/Route/w1/0-0 192.168.150.12:80/Route/w3/10-5\nsnapshot 1\n"
	if got := dump(tab); got != want {
		t.Fatalf("after edits:\n%s\nwant:\n%s", got, want)
	}
	// wrr over [13(w1) 12(w3)], as ip_vs_wrr_init_svc starts: cw = mw = 3.
	s := tab.Load().Lookup(vipKey)
	var picks []string
	for range 4 {
		picks = append(picks, s.Pick(nil).Addr.String()[12:])
	}
	if got := strings.Join(picks, " "); got != "12 12 13 12" {
		t.Fatalf("wrr picks %s", got)
	}
	r13 := s.Reals()[0]
	plan, err := tab.Apply([]Op{{Kind: DelReal, Service: vipKey, Real: RealSpec{Addr: r13.Addr, Port: 80}}}, nil)
	if err != nil || len(plan.Removed) != 1 || plan.Removed[0] != r13 || !r13.Removed() {
		t.Fatalf("delete: err %v plan %+v removed %v", err, plan, r13.Removed())
	}
	// Edit with Keep flags changes only what is asked.
	_, err = tab.Apply([]Op{{Kind: EditReal, Service: vipKey, Real: RealSpec{Addr: netip.MustParseAddr("192.168.150.12"), Port: 80, Weight: 7, KeepForward: true, KeepThresholds: true}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := dump(tab); !strings.Contains(got, "w7/10-5") {
		t.Fatalf("partial edit: %s", got)
	}
	plan, err = tab.Apply([]Op{{Kind: Clear}}, nil)
	if err != nil || len(plan.Removed) != 1 || tab.Load().Len() != 0 || len(tab.Services()) != 0 {
		t.Fatalf("clear: err %v plan %+v", err, plan)
	}
}

func TestPersistenceAndPortZero(t *testing.T) {
	tab := New()
	any := KeyOf(6, netip.MustParseAddr("192.168.150.100"), 0)
	_, err := tab.Apply([]Op{
		{Kind: AddService, Service: any, Settings: Settings{Scheduler: "rr", Persistent: true, Netmask: 24}},
		addSvc(vipKey, "rr"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap := tab.Load()
	if s := snap.Lookup(vipKey); s == nil || s.Key != vipKey || s.Persistence() != nil {
		t.Fatalf("port 80 goes to %v", s)
	}
	s := snap.Lookup(KeyOf(6, netip.MustParseAddr("192.168.150.100"), 443))
	if s == nil || s.Key != any {
		t.Fatalf("port 443 goes to %v, want the port-0 service", s)
	}
	p := s.Persistence()
	if p == nil || p.Timeout != 360*time.Second || p.Mask != [4]byte{255, 255, 255, 0} {
		t.Fatalf("persistence %+v, want 360 s and /24", p)
	}
	if snap.Lookup(KeyOf(17, netip.MustParseAddr("192.168.150.100"), 443)) != nil {
		t.Fatal("UDP found the TCP port-0 service")
	}
	// -E without -p turns persistence off.
	tab.Apply([]Op{{Kind: EditService, Service: any, Settings: Settings{Scheduler: "rr", Persistent: true, Timeout: 60}}}, nil)
	if p := s.Persistence(); p == nil || p.Timeout != time.Minute || p.Mask != [4]byte{255, 255, 255, 255} {
		t.Fatalf("after -E -p 60: %+v", p)
	}
}

func TestZero(t *testing.T) {
	tab := New()
	tab.Apply([]Op{addSvc(vipKey, "rr"), addReal(vipKey, "192.168.150.12", 1)}, nil)
	s := tab.Load().Lookup(vipKey)
	s.InPkts.Add(5)
	s.Reals()[0].InBytes.Add(100)
	if _, err := tab.Apply([]Op{{Kind: Zero, All: true}}, nil); err != nil {
		t.Fatal(err)
	}
	if s.InPkts.Load() != 0 || s.Reals()[0].InBytes.Load() != 0 {
		t.Fatal("counters not zeroed")
	}
}

func TestReplyIndexesInSnapshot(t *testing.T) {
	tab := New()
	la := netip.MustParseAddr("192.168.150.200")
	_, err := tab.Apply([]Op{
		addSvc(vipKey, "rr"),
		{Kind: AddReal, Service: vipKey, Real: RealSpec{Addr: netip.MustParseAddr("10.0.0.12"), Port: 8080, Forward: Masq, Weight: 1}},
		{Kind: AddReal, Service: vipKey, Real: RealSpec{Addr: netip.MustParseAddr("10.0.0.13"), Port: 80, Forward: FullNAT, Weight: 1}},
		{Kind: AddLocalAddr, Service: vipKey, Addr: la},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap := tab.Load()
	client := [4]byte{192, 168, 150, 10}
	for _, tc := range []struct {
		src   [4]byte
		sport uint16
		dst   [4]byte
		want  bool
	}{
		{[4]byte{10, 0, 0, 12}, 8080, client, true},  // NAT reply
		{[4]byte{10, 0, 0, 12}, 80, client, false},   // not the NAT port
		{[4]byte{10, 0, 0, 13}, 80, client, false},   // FULLNAT server, not to a local address
		{[4]byte{10, 0, 0, 13}, 80, la.As4(), true},  // FULLNAT reply
		{[4]byte{10, 9, 9, 9}, 1234, la.As4(), true}, // anything to a local address
		{[4]byte{10, 0, 0, 12}, 8080, client, true},
	} {
		if got := snap.MayBeReply(6, tc.src, tc.sport, tc.dst); got != tc.want {
			t.Errorf("MayBeReply(%v:%d -> %v) = %v", tc.src, tc.sport, tc.dst, got)
		}
	}
	if snap.MayBeReply(17, [4]byte{10, 0, 0, 12}, 8080, client) {
		t.Error("a UDP frame matched a TCP NAT server")
	}
	s := snap.Lookup(vipKey)
	if got := s.LocalAddrs(); len(got) != 1 || got[0] != la {
		t.Fatalf("local addresses %v", got)
	}
	if _, err := tab.Apply([]Op{{Kind: DelLocalAddr, Service: vipKey, Addr: la}}, nil); err != nil {
		t.Fatal(err)
	}
	if len(s.LocalAddrs()) != 0 || tab.Load().MayBeReply(6, [4]byte{10, 9, 9, 9}, 1, la.As4()) {
		t.Fatal("local address still there after -Q")
	}
}

// TestEditChangesMethod: ipvsadm -e replaces the forwarding method; the
// server gets a new link from prepare and the old one is handed back.
func TestEditChangesMethod(t *testing.T) {
	tab := New()
	rip := netip.MustParseAddr("192.168.150.12")
	oldLink := &Link{Source: [4]byte{1}}
	newLink := &Link{Source: [4]byte{2}}
	_, err := tab.Apply([]Op{addSvc(vipKey, "rr"), addReal(vipKey, "192.168.150.12", 1)}, func(p *Plan) error {
		p.NewReals[0].SetLink(oldLink)
		if len(p.NATSources) != 0 {
			t.Errorf("NAT sources %v for a DR server", p.NATSources)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := tab.Apply([]Op{
		{Kind: EditReal, Service: vipKey, Real: RealSpec{Addr: rip, Port: 80, Forward: Masq, Weight: 2}},
		{Kind: AddLocalAddr, Service: vipKey, Addr: netip.MustParseAddr("192.168.150.200")},
	}, func(p *Plan) error {
		if len(p.Relinks) != 1 || p.Relinks[0].Forward != Masq || p.Relinks[0].Op != 0 {
			t.Fatalf("relinks %+v", p.Relinks)
		}
		if len(p.NATSources) != 1 || p.NATSources[0] != (Key{Addr: rip.As4(), Port: 80, Protocol: 6}) {
			t.Errorf("NAT sources %v", p.NATSources)
		}
		if len(p.LocalAddrs) != 1 || p.LocalAddrs[0] != netip.MustParseAddr("192.168.150.200") {
			t.Errorf("local addresses %v", p.LocalAddrs)
		}
		p.Relinks[0].Link = newLink
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := tab.Load().Lookup(vipKey).Reals()[0]
	if r.Forward() != Masq || r.Link() != newLink || r.Weight() != 2 {
		t.Fatalf("after -e -m: %v %v w%d", r.Forward(), r.Link(), r.Weight())
	}
	if len(plan.Unlinked) != 1 || plan.Unlinked[0] != oldLink {
		t.Fatalf("unlinked %v", plan.Unlinked)
	}
	if !tab.Load().MayBeReply(6, rip.As4(), 80, [4]byte{192, 168, 150, 10}) {
		t.Fatal("the snapshot does not know the server's replies are NAT's now")
	}
}
