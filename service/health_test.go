package service

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/gvs-project/gvs/health"
)

// checkedTable is a service (rr, on-failure o) with three real servers,
// .11 .12 .13 of weight 1, 2, 3, each with a TCP check.
func checkedTable(t *testing.T, o OnFailure) (*Table, *Service, map[string]*Real) {
	t.Helper()
	tab := New()
	ops := []Op{{Kind: AddService, Service: vipKey, Settings: Settings{Scheduler: "wrr", OnFailure: o}}}
	for i, a := range []string{"192.168.150.11", "192.168.150.12", "192.168.150.13"} {
		op := addReal(vipKey, a, int32(i+1))
		op.Real.Check = &health.Spec{Kind: health.TCP}
		ops = append(ops, op)
	}
	if _, err := tab.Apply(ops, nil); err != nil {
		t.Fatal(err)
	}
	s := tab.Load().Lookup(vipKey)
	reals := map[string]*Real{}
	for _, r := range s.Reals() {
		reals[r.Addr.String()] = r
	}
	return tab, s, reals
}

// picks returns how many of n new connections each server gets.
func picks(s *Service, n int) map[string]int {
	out := map[string]int{}
	for range n {
		if r := s.Pick(nil); r != nil {
			out[r.Addr.String()]++
		} else {
			out["none"]++
		}
	}
	return out
}

func TestQuiesceOnFailure(t *testing.T) {
	tab, s, reals := checkedTable(t, KeepOnFailure)
	if s.Settings().OnFailure != FailQuiesce {
		t.Fatalf("default on-failure %v", s.Settings().OnFailure)
	}
	r := reals["192.168.150.13"]
	if r.Check() == nil || r.Check().Interval != health.DefaultInterval {
		t.Fatalf("check not normalized: %+v", r.Check())
	}
	if !s.SetHealth(r, false) || s.SetHealth(r, false) {
		t.Fatal("SetHealth down did not report exactly one change")
	}
	if r.Weight() != 0 || r.ConfigWeight() != 3 || !r.Failed() || !r.Unavailable() || r.Removed() || !r.InService() {
		t.Fatalf("quiesced: weight %d config %d failed %v unavailable %v removed %v in service %v",
			r.Weight(), r.ConfigWeight(), r.Failed(), r.Unavailable(), r.Removed(), r.InService())
	}
	if p := picks(s, 60); p["192.168.150.13"] != 0 || p["192.168.150.11"] != 20 || p["192.168.150.12"] != 40 {
		t.Fatalf("picks while .13 is quiesced: %v", p)
	}
	// -e changes the configured weight; the server stays quiesced.
	if _, err := tab.Apply([]Op{{Kind: EditReal, Service: vipKey, Real: RealSpec{Addr: r.Addr, Port: 80,
		Weight: 6, KeepForward: true, KeepThresholds: true, KeepCheck: true}}}, nil); err != nil {
		t.Fatal(err)
	}
	if r.Weight() != 0 || r.ConfigWeight() != 6 || r.Check() == nil {
		t.Fatalf("after -e: weight %d config %d check %v", r.Weight(), r.ConfigWeight(), r.Check())
	}
	if !s.SetHealth(r, true) || r.Weight() != 6 || r.Failed() || r.Unavailable() {
		t.Fatalf("restored: weight %d failed %v", r.Weight(), r.Failed())
	}
	if p := picks(s, 90); p["192.168.150.13"] != 60 {
		t.Fatalf("picks after .13 came back with weight 6: %v", p)
	}
	if names := order(s); names != "192.168.150.13 192.168.150.12 192.168.150.11" {
		t.Fatalf("scheduler order %s", names)
	}
}

// order is the scheduler's list.
func order(s *Service) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.active {
		out = append(out, r.Addr.String())
	}
	return strings.Join(out, " ")
}

func TestRemoveOnFailure(t *testing.T) {
	tab, s, reals := checkedTable(t, FailRemove)
	r := reals["192.168.150.12"]
	if !s.SetHealth(r, false) {
		t.Fatal("no change")
	}
	if !r.Removed() || r.InService() || !r.Unavailable() || r.ConfigWeight() != 2 {
		t.Fatalf("out: removed %v in service %v", r.Removed(), r.InService())
	}
	if names := order(s); names != "192.168.150.13 192.168.150.11" {
		t.Fatalf("scheduler order while .12 is out: %s", names)
	}
	if p := picks(s, 40); p["192.168.150.12"] != 0 || p["192.168.150.13"] != 30 {
		t.Fatalf("picks while .12 is out: %v", p)
	}
	// Explain (gvs --trace) names the server Pick would choose, from the
	// scheduler's list: never the one that is out.
	for range 10 {
		want, _ := s.Explain(nil)
		if got := s.Pick(nil); want != got || got == r {
			t.Fatalf("Explain says %v, Pick picks %v", want.Addr, got.Addr)
		}
	}
	// The configuration still has it: listed, editable, and it keeps
	// the table's snapshot and list order.
	if len(s.Reals()) != 3 {
		t.Fatal("the configuration lost the server")
	}
	if _, err := tab.Apply([]Op{{Kind: AddReal, Service: vipKey, Real: RealSpec{Addr: r.Addr, Port: 80, Forward: Route, Weight: 1}}}, nil); !errors.Is(err, ErrRealExists) {
		t.Fatalf("adding the server again: %v", err)
	}
	// Switching the service to quiesce puts it back with weight 0 ...
	if _, err := tab.Apply([]Op{{Kind: EditService, Service: vipKey, Settings: Settings{Scheduler: "wrr", OnFailure: FailQuiesce}}}, nil); err != nil {
		t.Fatal(err)
	}
	if r.Removed() || !r.InService() || r.Weight() != 0 || order(s) != "192.168.150.12 192.168.150.13 192.168.150.11" {
		t.Fatalf("after -E --on-failure quiesce: removed %v weight %d order %s", r.Removed(), r.Weight(), order(s))
	}
	// ... an -E without it keeps the setting, and back to remove
	// takes it out again.
	if _, err := tab.Apply([]Op{{Kind: EditService, Service: vipKey, Settings: Settings{Scheduler: "rr"}}}, nil); err != nil || s.Settings().OnFailure != FailQuiesce {
		t.Fatalf("-E without --on-failure: %v %v", err, s.Settings().OnFailure)
	}
	if _, err := tab.Apply([]Op{{Kind: EditService, Service: vipKey, Settings: Settings{Scheduler: "rr", OnFailure: FailRemove}}}, nil); err != nil {
		t.Fatal(err)
	}
	if !r.Removed() || order(s) != "192.168.150.13 192.168.150.11" {
		t.Fatalf("after -E --on-failure remove: order %s", order(s))
	}
	// Up: back at the head of the list, with its weight.
	if !s.SetHealth(r, true) || r.Removed() || r.Weight() != 2 || order(s) != "192.168.150.12 192.168.150.13 192.168.150.11" {
		t.Fatalf("restored: removed %v weight %d order %s", r.Removed(), r.Weight(), order(s))
	}
	// Deleting a server that is out leaves the list as it is.
	s.SetHealth(r, false)
	if _, err := tab.Apply([]Op{{Kind: DelReal, Service: vipKey, Real: RealSpec{Addr: r.Addr, Port: 80}}}, nil); err != nil {
		t.Fatal(err)
	}
	if order(s) != "192.168.150.13 192.168.150.11" || len(s.Reals()) != 2 || s.SetHealth(r, true) {
		t.Fatalf("after -d: %s", order(s))
	}
}

// TestSetHealthGuards: verdicts about servers without a check, removed
// servers or other services' servers change nothing; removing the check
// of a failed server brings it back.
func TestSetHealthGuards(t *testing.T) {
	tab, s, reals := checkedTable(t, FailQuiesce)
	if _, err := tab.Apply([]Op{addReal(vipKey, "192.168.150.14", 1)}, nil); err != nil {
		t.Fatal(err)
	}
	var unchecked *Real
	for _, r := range s.Reals() {
		if r.Addr.String() == "192.168.150.14" {
			unchecked = r
		}
	}
	if s.SetHealth(unchecked, false) {
		t.Fatal("a server without a check went down")
	}
	other := NewReal(netip.MustParseAddr("192.168.150.11"), 80, Route, nil)
	if s.SetHealth(other, false) {
		t.Fatal("a server of no service went down")
	}
	r := reals["192.168.150.11"]
	s.SetHealth(r, false)
	if _, err := tab.Apply([]Op{{Kind: EditReal, Service: vipKey, Real: RealSpec{Addr: r.Addr, Port: 80, Forward: Route, Weight: 4}}}, nil); err != nil {
		t.Fatal(err)
	}
	if r.Failed() || r.Weight() != 4 || r.Check() != nil {
		t.Fatalf("after -e without a check: failed %v weight %d check %v", r.Failed(), r.Weight(), r.Check())
	}
	if _, err := tab.Apply([]Op{{Kind: DelService, Service: vipKey}}, nil); err != nil {
		t.Fatal(err)
	}
	if s.SetHealth(reals["192.168.150.12"], false) {
		t.Fatal("a removed server went down")
	}
}

func TestBadChecksChangeNothing(t *testing.T) {
	zeroPort := KeyOf(6, netip.MustParseAddr("192.168.150.101"), 0)
	for _, tc := range []struct {
		name string
		ops  []Op
		want string
	}{
		{"bad interval", []Op{{Kind: AddReal, Service: vipKey, Real: RealSpec{Addr: netip.MustParseAddr("192.168.150.20"), Port: 80,
			Forward: Route, Weight: 1, Check: &health.Spec{Kind: health.TCP, Interval: 1}}}}, "--check-interval 1ns is outside"},
		{"bad edit", []Op{{Kind: EditReal, Service: vipKey, Real: RealSpec{Addr: netip.MustParseAddr("192.168.150.12"), Port: 80,
			Forward: Route, Weight: 1, Check: &health.Spec{Kind: health.Cmd}}}}, "a cmd check needs --check-cmd"},
		{"port 0 without a check port", []Op{
			{Kind: AddService, Service: zeroPort, Settings: Settings{Scheduler: "rr", Persistent: true}},
			{Kind: AddReal, Service: zeroPort, Real: RealSpec{Addr: netip.MustParseAddr("192.168.150.20"), Forward: Route, Weight: 1,
				Check: &health.Spec{Kind: health.HTTP}}}}, "needs --check-port"},
		{"bad on-failure", []Op{{Kind: EditService, Service: vipKey, Settings: Settings{Scheduler: "rr", OnFailure: 7}}}, "on-failure 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab := New()
			if _, err := tab.Apply([]Op{addSvc(vipKey, "rr"), addReal(vipKey, "192.168.150.12", 1)}, nil); err != nil {
				t.Fatal(err)
			}
			before := dump(tab)
			_, err := tab.Apply(append([]Op{addReal(vipKey, "192.168.150.30", 1)}, tc.ops...), nil)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if after := dump(tab); after != before {
				t.Fatalf("table changed:\n%s", after)
			}
		})
	}
	// A port-0 service's server may have a check with its own port.
	tab := New()
	if _, err := tab.Apply([]Op{
		{Kind: AddService, Service: zeroPort, Settings: Settings{Scheduler: "rr", Persistent: true}},
		{Kind: AddReal, Service: zeroPort, Real: RealSpec{Addr: netip.MustParseAddr("192.168.150.20"), Forward: Route, Weight: 1,
			Check: &health.Spec{Kind: health.HTTP, Port: 8080}}}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseOnFailure("drain"); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
	if o, err := ParseOnFailure("remove"); err != nil || o != FailRemove || o.String() != "remove" {
		t.Fatal(o, err)
	}
}
