package director

import (
	"net/netip"
	"testing"

	"github.com/gvs-project/gvs/service"
)

// TestEstimator checks the kernel's estimator arithmetic (ip_vs_est.c):
// a steady 100 conn/s and 1000 pkt/s of 1500 bytes converge to those
// rates, and a stop decays by 3/4 per tick.
func TestEstimator(t *testing.T) {
	tab := service.New()
	k := service.KeyOf(6, netip.MustParseAddr("192.168.150.100"), 80)
	tab.Apply([]service.Op{{Kind: service.AddService, Service: k, Settings: service.Settings{Scheduler: "rr"}}}, nil)
	s := tab.Load().Lookup(k)
	e := newEstimator()
	e.update(tab.Services()) // starting point
	for range 100 {          // (3/4)^100 of the start is left: converged
		s.Conns.Add(200) // per 2 s tick
		s.InPkts.Add(2000)
		s.InBytes.Add(2000 * 1500)
		e.update(tab.Services())
	}
	r := e.rates(&s.Counters)
	if r.Conns != 100 || r.InPkts != 1000 || r.InBytes != 1500000 || r.OutPkts != 0 {
		t.Fatalf("steady rates %+v, want 100 cps, 1000 pps, 1500000 Bps", r)
	}
	e.update(tab.Services()) // nothing happened for one tick
	r = e.rates(&s.Counters)
	// cps: 100<<10 scaled, then += (0 - x) >> 2: 76800 -> (76800+511)>>10 = 75.
	if r.Conns != 75 || r.InPkts != 750 {
		t.Fatalf("after an idle tick %+v, want 75 cps and 750 pps", r)
	}
}
