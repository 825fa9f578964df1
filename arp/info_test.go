package arp

import (
	"net/netip"
	"testing"
	"time"
)

// TestNeighborInfoLearnedFrom: a neighbour says how its MAC was learnt
// (the trace prints it): a reply to gvs's request, or a request the
// neighbour sent itself; a static one says so.
func TestNeighborInfoLearnedFrom(t *testing.T) {
	h := newHarness(t, Config{})
	n, err := h.r.Neighbor(2, realA)
	if err != nil {
		t.Fatal(err)
	}
	h.c1.take(t)
	if ni := n.Info(); ni.LearnedFrom != "" || ni.MAC != nil {
		t.Fatalf("unresolved: %+v", ni)
	}
	h.c1.deliver(t, replyFrom(realA, macA, mac1, ip1))
	ni := n.Info()
	if ni.LearnedFrom != "reply" || ni.State != Reachable || !ni.Updated.Equal(h.clk.Now()) {
		t.Fatalf("after a reply: %+v", ni)
	}
	h.clk.Advance(5 * time.Second)
	h.c1.deliver(t, requestFrom(realA, macA, netip.MustParseAddr("192.168.1.99")))
	if ni := n.Info(); ni.LearnedFrom != "request" || !ni.Updated.Equal(h.clk.Now()) {
		t.Fatalf("after its request: %+v", ni)
	}
	if ni := NewStatic(4, realA, macA).Info(); ni.LearnedFrom != "static" || ni.State != Reachable {
		t.Fatalf("static: %+v", ni)
	}
}
