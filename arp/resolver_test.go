package arp

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestResolve(t *testing.T) {
	h := newHarness(t, Config{})
	n, err := h.r.Neighbor(2, realA)
	if err != nil {
		t.Fatal(err)
	}
	// The first request goes out before Neighbor returns.
	wantRequests(t, h.c1.take(t), 1, mac1, ip1, realA)
	if len(h.c2.take(t)) != 0 {
		t.Fatal("request sent on the wrong interface")
	}
	if _, ok := n.MAC(); ok || n.State() != Incomplete {
		t.Fatalf("before reply: state %v, MAC ok %v", n.State(), ok)
	}
	if n.Addr() != realA || n.Ifindex() != 2 {
		t.Fatalf("Addr/Ifindex = %v/%d", n.Addr(), n.Ifindex())
	}

	h.c1.deliver(t, replyFrom(realA, macA, mac1, ip1))
	mac, ok := n.MAC()
	if !ok || mac != macA || n.State() != Reachable {
		t.Fatalf("after reply: MAC %v ok %v state %v", mac, ok, n.State())
	}
	s := h.r.Stats()
	if s.RequestsSent != 1 || s.Learned != 1 || s.Received != 1 || s.Ignored != 0 {
		t.Fatalf("stats %+v", s)
	}
	if h.logs.count("resolved", "192.168.1.10") != 1 {
		t.Fatalf("logs:\n%s", h.logs)
	}
	infos := h.r.Neighbors()
	if len(infos) != 1 || infos[0].Addr != realA || infos[0].State != Reachable ||
		infos[0].MAC.String() != net.HardwareAddr(macA[:]).String() || infos[0].Refs != 1 || !infos[0].Updated.Equal(h.clk.Now()) {
		t.Fatalf("Neighbors() = %+v", infos)
	}
}

func TestSenderIP(t *testing.T) {
	tests := []struct {
		name   string
		addrs  []ifAddr
		target string
		want   string
	}{
		{"subnet match", []ifAddr{{2, netip.MustParsePrefix("10.0.0.1/8")}, {2, netip.MustParsePrefix("192.168.1.1/24")}}, "192.168.1.10", "192.168.1.1"},
		{"first address", []ifAddr{{2, netip.MustParsePrefix("10.0.0.1/8")}, {2, netip.MustParsePrefix("172.16.0.1/12")}}, "192.168.1.10", "10.0.0.1"},
		{"other interface only", []ifAddr{{3, netip.MustParsePrefix("192.168.1.1/24")}}, "192.168.1.10", "0.0.0.0"},
		{"no address: ARP probe", nil, "192.168.1.10", "0.0.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.addrs.set(tt.addrs...)
			h.clk.Advance(addrTTL) // let the cached list expire
			if _, err := h.r.Neighbor(2, netip.MustParseAddr(tt.target)); err != nil {
				t.Fatal(err)
			}
			wantRequests(t, h.c1.take(t), 1, mac1, netip.MustParseAddr(tt.want), netip.MustParseAddr(tt.target))
		})
	}
}

func TestRetryFailRecover(t *testing.T) {
	h := newHarness(t, Config{Retry: time.Second, MaxProbes: 3, MaxRetry: 10 * time.Second})
	n, err := h.r.Neighbor(2, realA)
	if err != nil {
		t.Fatal(err)
	}
	h.c1.take(t)
	// Two more requests, one per Retry.
	for i := range 2 {
		h.clk.Advance(time.Second)
		wantRequests(t, h.c1.take(t), 1, mac1, ip1, realA)
		if n.State() != Incomplete {
			t.Fatalf("after %d retries: %v", i+1, n.State())
		}
	}
	if h.r.Stats().Failures != 0 || h.errs.count("failed") != 0 {
		t.Fatal("failed too early")
	}
	// The third request is unanswered too: Failed, with one more probe.
	h.clk.Advance(time.Second)
	if n.State() != Failed {
		t.Fatalf("state %v, want Failed", n.State())
	}
	wantRequests(t, h.c1.take(t), 1, mac1, ip1, realA)
	if s := h.r.Stats(); s.Failures != 1 || s.RequestsSent != 4 {
		t.Fatalf("stats %+v", s)
	}
	if h.errs.count("failed", "192.168.1.10", "eth1") != 1 {
		t.Fatalf("errors:\n%s", h.errs)
	}
	// Backoff: 2, 4, 8, then 10 s (the cap), 10 s.
	for _, gap := range []time.Duration{2, 4, 8, 10, 10} {
		h.clk.Advance(gap*time.Second - time.Millisecond)
		if got := h.c1.take(t); len(got) != 0 {
			t.Fatalf("probe %v early", gap)
		}
		h.clk.Advance(time.Millisecond)
		wantRequests(t, h.c1.take(t), 1, mac1, ip1, realA)
	}
	// Logged once, counted once.
	if h.r.Stats().Failures != 1 || h.errs.count("failed") != 1 {
		t.Fatalf("failure logged/counted more than once:\n%s", h.errs)
	}
	if _, ok := n.MAC(); ok {
		t.Fatal("MAC ok while Failed")
	}
	// A late reply brings it back, logged once.
	h.c1.deliver(t, replyFrom(realA, macA, mac1, ip1))
	if mac, ok := n.MAC(); !ok || mac != macA {
		t.Fatalf("after recovery: %v %v", mac, ok)
	}
	if h.logs.count("reachable again", "192.168.1.10", "eth1") != 1 {
		t.Fatalf("logs:\n%s", h.logs)
	}
	// Back on the refresh schedule: nothing for Refresh.
	h.clk.Advance(DefaultRefresh - time.Millisecond)
	if got := h.c1.take(t); len(got) != 0 {
		t.Fatalf("requests before refresh: %d", len(got))
	}
}

func TestRefresh(t *testing.T) {
	const refresh = 30 * time.Second
	h := newHarness(t, Config{Refresh: refresh, Retry: time.Second, StaleAfter: 3})
	n, _ := h.r.Neighbor(2, realA)
	h.c1.take(t)
	h.c1.deliver(t, replyFrom(realA, macA, mac1, ip1))

	// Answered refreshes keep it Reachable, one request per Refresh.
	for range 3 {
		h.clk.Advance(refresh - time.Millisecond)
		if got := h.c1.take(t); len(got) != 0 {
			t.Fatalf("refresh early: %+v", got)
		}
		h.clk.Advance(time.Millisecond)
		wantRequests(t, h.c1.take(t), 1, mac1, ip1, realA)
		h.c1.deliver(t, replyFrom(realA, macA, mac1, ip1))
	}
	// A refresh answered only at its second re-send stays Reachable.
	h.clk.Advance(refresh)
	h.clk.Advance(2 * time.Second)
	if got := h.c1.take(t); len(got) != 3 {
		t.Fatalf("refresh plus two re-sends: got %d frames", len(got))
	}
	if n.State() != Reachable {
		t.Fatalf("state %v while refresh pending", n.State())
	}
	h.c1.deliver(t, replyFrom(realA, macA, mac1, ip1))
	// Unanswered refreshes: the refresh, two re-sends, then Failed.
	h.clk.Advance(refresh)
	h.clk.Advance(2 * time.Second)
	if _, ok := n.MAC(); !ok {
		t.Fatal("MAC lost before StaleAfter unanswered refreshes")
	}
	h.clk.Advance(time.Second)
	if n.State() != Failed {
		t.Fatalf("state %v, want Failed after 3 unanswered refreshes", n.State())
	}
	if _, ok := n.MAC(); ok {
		t.Fatal("MAC ok while Failed")
	}
	if s := h.r.Stats(); s.Failures != 1 {
		t.Fatalf("failures %d", s.Failures)
	}
	if h.errs.count("failed", "refresh") != 1 {
		t.Fatalf("errors:\n%s", h.errs)
	}
	// The last known MAC stays in the listing.
	if infos := h.r.Neighbors(); len(infos) != 1 || infos[0].MAC.String() != net.HardwareAddr(macA[:]).String() {
		t.Fatalf("Neighbors() = %+v", infos)
	}
}

func TestRefcount(t *testing.T) {
	h := newHarness(t, Config{Refresh: 10 * time.Second})
	n1, _ := h.r.Neighbor(2, realA)
	n2, _ := h.r.Neighbor(2, netip.AddrFrom16(realA.As16())) // 4in6 form: same neighbour
	if n1 != n2 {
		t.Fatal("Neighbor returned two objects for one address")
	}
	if got := h.c1.take(t); len(got) != 1 {
		t.Fatalf("second reference sent %d requests", len(got)-1)
	}
	_, _ = h.r.Neighbor(3, realB) // another interface, unaffected
	h.c2.take(t)
	h.c1.deliver(t, replyFrom(realA, macA, mac1, ip1))
	h.c2.deliver(t, replyFrom(realB, macB, mac2, ip2))

	h.r.Release(n1)
	h.clk.Advance(10 * time.Second)
	if got := h.c1.take(t); len(got) != 1 {
		t.Fatalf("one reference left: want a refresh, got %d frames", len(got))
	}
	h.c1.deliver(t, replyFrom(realA, macA, mac1, ip1))
	n1.Drop()
	h.r.Release(n2)
	if got := h.r.Neighbors(); len(got) != 1 || got[0].Addr != realB {
		t.Fatalf("after last release: %+v", got)
	}
	h.clk.Advance(time.Minute)
	if got := h.c1.take(t); len(got) != 0 {
		t.Fatalf("released neighbour still refreshed: %d frames", len(got))
	}
	if got := h.c2.take(t); len(got) == 0 {
		t.Fatal("other neighbour stopped refreshing")
	}
	// A reply for a released neighbour is not learnt.
	h.c1.deliver(t, replyFrom(realA, macB, mac1, ip1))
	if s := h.r.Stats(); s.Drops != 1 {
		t.Fatalf("drops of a released neighbour lost: %+v", s)
	}
	// Asking again starts afresh.
	n3, _ := h.r.Neighbor(2, realA)
	if n3 == n1 || n3.State() != Incomplete {
		t.Fatalf("re-created neighbour: same %v state %v", n3 == n1, n3.State())
	}
	wantRequests(t, h.c1.take(t), 1, mac1, ip1, realA)

	// Static neighbours and foreign ones are not the Resolver's.
	h.r.Release(NewStatic(2, realA, macA))
	defer func() {
		if recover() == nil {
			t.Fatal("over-release did not panic")
		}
	}()
	h.r.Release(n1)
}

func TestOwnedAnswers(t *testing.T) {
	h := newHarness(t, Config{})
	h.r.SetOwned([]netip.Addr{vip})

	// Gratuitous ARP on both interfaces: request and reply, twice.
	for round := range 2 {
		for _, c := range []struct {
			conn *fakeConn
			mac  [6]byte
		}{{h.c1, mac1}, {h.c2, mac2}} {
			got := c.conn.take(t)
			want := []Frame{
				{Dst: Broadcast, Src: c.mac, Op: OpRequest, SenderMAC: c.mac, SenderIP: vip, TargetIP: vip},
				{Dst: Broadcast, Src: c.mac, Op: OpReply, SenderMAC: c.mac, SenderIP: vip, TargetMAC: c.mac, TargetIP: vip},
			}
			if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
				t.Fatalf("round %d: gratuitous ARP = %+v, want %+v", round, got, want)
			}
		}
		h.clk.Advance(garpInterval)
	}
	h.clk.Advance(time.Minute)
	if got := h.c1.take(t); len(got) != 0 {
		t.Fatalf("more gratuitous ARP than promised: %+v", got)
	}
	if s := h.r.Stats(); s.GratuitousSent != 8 {
		t.Fatalf("GratuitousSent %d, want 8", s.GratuitousSent)
	}
	// Setting the same set again announces nothing.
	h.r.SetOwned([]netip.Addr{vip})
	if got := h.c1.take(t); len(got) != 0 {
		t.Fatalf("re-announced: %+v", got)
	}

	// A request for the VIP gets one reply, unicast to the requester.
	h.c1.deliver(t, requestFrom(cliC, macC, vip))
	want := Frame{Dst: macC, Src: mac1, Op: OpReply, SenderMAC: mac1, SenderIP: vip, TargetMAC: macC, TargetIP: cliC}
	if got := h.c1.take(t); len(got) != 1 || got[0] != want {
		t.Fatalf("answer = %+v, want %+v", got, want)
	}
	// On the other interface, from that interface's MAC.
	h.c2.deliver(t, requestFrom(netip.MustParseAddr("192.168.2.50"), macC, vip))
	if got := h.c2.take(t); len(got) != 1 || got[0].SenderMAC != mac2 || got[0].Src != mac2 || got[0].Dst != macC {
		t.Fatalf("answer on eth2 = %+v", got)
	}
	// An ARP probe (sender 0.0.0.0, RFC 5227) for the VIP is defended.
	h.c1.deliver(t, requestFrom(netip.IPv4Unspecified(), macC, vip))
	if got := h.c1.take(t); len(got) != 1 || got[0].TargetIP != netip.IPv4Unspecified() || got[0].Dst != macC {
		t.Fatalf("probe answer = %+v", got)
	}
	// Nothing else is answered: other addresses, our own address (the
	// kernel's job), the client's own gratuitous ARP.
	for _, target := range []netip.Addr{netip.MustParseAddr("192.168.1.99"), ip1, cliC} {
		h.c1.deliver(t, requestFrom(cliC, macC, target))
	}
	if got := h.c1.take(t); len(got) != 0 {
		t.Fatalf("answered for a non-owned address: %+v", got)
	}
	if s := h.r.Stats(); s.AnswersSent != 3 || s.Ignored != 3 {
		t.Fatalf("stats %+v", s)
	}
	// No longer owned: no answer.
	h.r.SetOwned(nil)
	h.c1.deliver(t, requestFrom(cliC, macC, vip))
	if got := h.c1.take(t); len(got) != 0 {
		t.Fatalf("answered after SetOwned(nil): %+v", got)
	}
}

func TestOwnedHeldByKernel(t *testing.T) {
	h := newHarness(t, Config{})
	withVIP := []ifAddr{
		{2, netip.PrefixFrom(ip1, 24)},
		{3, netip.PrefixFrom(ip2, 24)},
		{1, netip.PrefixFrom(vip, 32)}, // on lo
	}
	without := withVIP[:2]
	h.addrs.set(withVIP...)
	h.r.SetOwned([]netip.Addr{vip})
	h.clk.Advance(garpInterval)
	if got := h.c1.take(t); len(got) != 0 {
		t.Fatalf("announced a kernel-held VIP: %+v", got)
	}
	h.c1.deliver(t, requestFrom(cliC, macC, vip))
	if got := h.c1.take(t); len(got) != 0 {
		t.Fatalf("answered for a kernel-held VIP: %+v", got)
	}
	if got := h.r.Owned(); len(got) != 1 || got[vip] {
		t.Fatalf("Owned() = %v", got)
	}

	// The kernel drops it: at the next check (addrTTL after SetOwned) gvs
	// announces and answers.
	h.addrs.set(without...)
	h.clk.Advance(addrTTL - garpInterval)
	if got := h.c1.take(t); len(got) != 2 || got[0].SenderIP != vip {
		t.Fatalf("no gratuitous ARP on take-over: %+v", got)
	}
	h.c1.deliver(t, requestFrom(cliC, macC, vip))
	if got := h.c1.take(t); len(got) != 1 || got[0].Op != OpReply {
		t.Fatalf("no answer after take-over: %+v", got)
	}
	if h.logs.count("no longer holds", "192.168.1.100") != 1 {
		t.Fatalf("logs:\n%s", h.logs)
	}

	// The kernel takes it back: gvs falls silent within addrTTL.
	h.addrs.set(withVIP...)
	h.clk.Advance(addrTTL)
	h.c1.take(t)
	h.c1.deliver(t, requestFrom(cliC, macC, vip))
	if got := h.c1.take(t); len(got) != 0 {
		t.Fatalf("answered after the kernel took the VIP back: %+v", got)
	}
}

func TestOwnedCheckStops(t *testing.T) {
	h := newHarness(t, Config{})
	h.r.SetOwned([]netip.Addr{vip})
	h.clk.Advance(time.Second)
	h.r.SetOwned(nil)
	calls := func() int { h.addrs.mu.Lock(); defer h.addrs.mu.Unlock(); return h.addrs.calls }
	h.clk.Advance(addrTTL) // the pending check runs once, finds nothing owned
	before := calls()
	h.clk.Advance(10 * addrTTL)
	if after := calls(); after != before {
		t.Fatalf("address list read %d times with nothing owned", after-before)
	}
	if p := h.clk.pending(); p != 0 {
		t.Fatalf("%d timers pending with no neighbours and nothing owned", p)
	}
}

func TestPoisoning(t *testing.T) {
	h := newHarness(t, Config{})
	n, _ := h.r.Neighbor(2, realA)
	nv, _ := h.r.Neighbor(2, vip) // even a neighbour entry for a VIP...
	h.c1.take(t)
	h.r.SetOwned([]netip.Addr{vip}) // ...is never learnt once owned
	h.c1.take(t)
	h.c2.take(t)

	multicast := [6]byte{0x01, 0x00, 0x5e, 0, 0, 1}
	frames := []struct {
		name string
		c    *fakeConn
		f    Frame
	}{
		{"reply for an address nobody asked for", h.c1, replyFrom(netip.MustParseAddr("192.168.1.77"), macB, mac1, ip1)},
		{"reply claiming the VIP", h.c1, replyFrom(vip, macB, mac1, ip1)},
		{"gratuitous request claiming the VIP", h.c1, requestFrom(vip, macB, vip)},
		{"broadcast sender MAC", h.c1, replyFrom(realA, Broadcast, mac1, ip1)},
		{"multicast sender MAC", h.c1, replyFrom(realA, multicast, mac1, ip1)},
		{"zero sender MAC", h.c1, replyFrom(realA, [6]byte{}, mac1, ip1)},
		{"right address, wrong interface", h.c2, replyFrom(realA, macB, mac2, ip2)},
		{"unicast to another host (promiscuous)", h.c1, replyFrom(realA, macB, macC, cliC)},
		{"our own frame looped back", h.c1, Frame{Dst: Broadcast, Src: mac1, Op: OpReply, SenderMAC: macB, SenderIP: realA, TargetIP: ip1}},
		{"unknown operation", h.c1, Frame{Dst: Broadcast, Src: macB, Op: 9, SenderMAC: macB, SenderIP: realA, TargetIP: ip1}},
	}
	for _, tt := range frames {
		tt.c.deliver(t, tt.f)
		if n.State() != Incomplete || nv.State() != Incomplete {
			t.Fatalf("%s: learnt (neighbour %v, VIP neighbour %v)", tt.name, n.State(), nv.State())
		}
		if got := append(h.c1.take(t), h.c2.take(t)...); len(got) != 0 {
			t.Fatalf("%s: answered with %+v", tt.name, got)
		}
	}
	s := h.r.Stats()
	if s.Learned != 0 || s.Conflicts != 2 || s.Ignored != uint64(len(frames)) {
		t.Fatalf("stats %+v", s)
	}
	if h.errs.count("claimed", "192.168.1.100") != 1 { // rate limited
		t.Fatalf("conflict logs:\n%s", h.errs)
	}
}

// TestMACChange: a reachable neighbour announcing a new MAC (a new NIC, or
// its address moved to another host) is taken at its new MAC once its old
// MAC has not answered a unicast request within Retry; until then frames
// still go to the old MAC.
func TestMACChange(t *testing.T) {
	h := newHarness(t, Config{})
	n, _ := h.r.Neighbor(2, realA)
	h.c1.deliver(t, replyFrom(realA, macA, mac1, ip1))
	h.c1.take(t)
	// The neighbour announces a new MAC (gratuitous request).
	h.c1.deliver(t, requestFrom(realA, macB, realA))
	check := h.c1.take(t)
	want := Frame{Dst: macA, Src: mac1, Op: OpRequest, SenderMAC: mac1, SenderIP: ip1, TargetMAC: macA, TargetIP: realA}
	if len(check) != 1 || check[0] != want {
		t.Fatalf("sent %+v, want one unicast request to the old MAC %+v", check, want)
	}
	if mac, ok := n.MAC(); !ok || mac != macA {
		t.Fatalf("while checking: MAC %v ok %v, want the old %v", mac, ok, macA)
	}
	h.clk.Advance(DefaultRetry)
	if mac, ok := n.MAC(); !ok || mac != macB {
		t.Fatalf("MAC %v ok %v, want %v", mac, ok, macB)
	}
	if h.logs.count("changed MAC", "02:aa:00:00:00:0a", "02:bb:00:00:00:0b") != 1 || h.logs.count("did not answer") != 1 {
		t.Fatalf("logs:\n%s", h.logs)
	}
	// A request from the neighbour for someone else also confirms it.
	h.c1.deliver(t, requestFrom(realA, macB, ip1))
	if s := h.r.Stats(); s.Learned != 3 || s.Disputes != 1 || s.Refuted != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestMACClaimRefuted: ARP replies from another host claiming a reachable
// real server's address are refused while the real server answers: the
// data path never sends to the spoofer, the refusal is counted and
// logged, and a flood of claims costs at most one check per Retry.
func TestMACClaimRefuted(t *testing.T) {
	h := newHarness(t, Config{})
	n, _ := h.r.Neighbor(2, realA)
	h.c1.deliver(t, replyFrom(realA, macA, mac1, ip1))
	h.c1.take(t)
	for round := range 3 {
		// The spoofer's reply (unsolicited, to gvs) and gratuitous ARP.
		h.c1.deliver(t, replyFrom(realA, macB, mac1, ip1))
		h.c1.deliver(t, Frame{Dst: Broadcast, Src: macB, Op: OpReply, SenderMAC: macB, SenderIP: realA, TargetMAC: macB, TargetIP: realA})
		if sent := h.c1.take(t); len(sent) != 1 || sent[0].Dst != macA {
			t.Fatalf("round %d: sent %+v, want one check to the real MAC", round, sent)
		}
		// The real server answers the check.
		h.c1.deliver(t, replyFrom(realA, macA, mac1, ip1))
		// More claims within Retry are ignored.
		h.c1.deliver(t, replyFrom(realA, macB, mac1, ip1))
		if sent := h.c1.take(t); len(sent) != 0 {
			t.Fatalf("round %d: a claim right after a refusal sent %+v", round, sent)
		}
		h.clk.Advance(DefaultRetry)
		if mac, ok := n.MAC(); !ok || mac != macA {
			t.Fatalf("round %d: MAC %v ok %v, want the real %v", round, mac, ok, macA)
		}
		h.c1.take(t)
	}
	if s := h.r.Stats(); s.Disputes != 3 || s.Refuted != 3 {
		t.Fatalf("stats %+v", s)
	}
	if h.errs.count("claimed by 02:bb:00:00:00:0b", "02:aa:00:00:00:0a still answers") != 1 { // rate limited
		t.Fatalf("error logs:\n%s", h.errs)
	}
	// Released while a claim is checked: nothing fires later.
	h.c1.deliver(t, replyFrom(realA, macB, mac1, ip1))
	h.r.Release(n)
	h.clk.Advance(10 * DefaultRetry)
	if p := h.clk.pending(); p != 0 {
		t.Fatalf("%d timers pending after release", p)
	}
}

func TestMalformedCounted(t *testing.T) {
	h := newHarness(t, Config{})
	good, _ := (&Frame{Dst: Broadcast, Src: macC, Op: OpRequest, SenderMAC: macC, SenderIP: cliC, TargetIP: vip}).MarshalBinary()
	for _, tt := range []struct {
		name string
		edit func([]byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:FrameLen-1] }},
		{"empty", func(b []byte) []byte { return nil }},
		{"IPv4 EtherType", func(b []byte) []byte { b[ethType+1] = 0x00; return b }},
		{"hardware type 6", func(b []byte) []byte { b[arpHType+1] = 6; return b }},
		{"protocol IPv6", func(b []byte) []byte { b[arpPType] = 0x86; b[arpPType+1] = 0xdd; return b }},
		{"hlen 8", func(b []byte) []byte { b[arpHLen] = 8; return b }},
		{"plen 16", func(b []byte) []byte { b[arpPLen] = 16; return b }},
	} {
		h.c1.deliverRaw(t, tt.edit(append([]byte(nil), good...)))
	}
	if s := h.r.Stats(); s.Malformed != 7 || s.Received != 7 || s.Ignored != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestDrops(t *testing.T) {
	h := newHarness(t, Config{})
	n, _ := h.r.Neighbor(2, realA)
	m, _ := h.r.Neighbor(3, realB)
	for range 3 {
		n.Drop()
	}
	m.Drop()
	if n.Drops() != 3 || h.r.Stats().Drops != 4 {
		t.Fatalf("drops %d, total %d", n.Drops(), h.r.Stats().Drops)
	}
	for _, ni := range h.r.Neighbors() {
		if ni.Addr == realA && ni.Drops != 3 {
			t.Fatalf("listing drops %+v", ni)
		}
	}
	h.r.Release(n)
	if h.r.Stats().Drops != 4 {
		t.Fatal("drops lost on release")
	}
}

func TestSendErrors(t *testing.T) {
	h := newHarness(t, Config{})
	h.c1.mu.Lock()
	h.c1.writeErr = errors.New("network is down")
	h.c1.mu.Unlock()
	h.r.Neighbor(2, realA)
	h.clk.Advance(time.Second)
	s := h.r.Stats()
	if s.SendErrors != 2 || s.RequestsSent != 0 {
		t.Fatalf("stats %+v", s)
	}
	if h.errs.count("sending on eth1", "network is down") != 1 {
		t.Fatalf("send errors not rate limited:\n%s", h.errs)
	}
}

func TestErrorsAndClose(t *testing.T) {
	h := newHarness(t, Config{})
	if _, err := h.r.Neighbor(9, realA); !errors.Is(err, ErrUnknownInterface) {
		t.Fatalf("unknown ifindex: %v", err)
	}
	for _, a := range []netip.Addr{{}, netip.MustParseAddr("2001:db8::1"), netip.IPv4Unspecified(),
		netip.MustParseAddr("224.0.0.1"), netip.MustParseAddr("255.255.255.255")} {
		if _, err := h.r.Neighbor(2, a); !errors.Is(err, ErrInvalidAddr) {
			t.Fatalf("Neighbor(%v): %v", a, err)
		}
	}
	n, _ := h.r.Neighbor(2, realA)
	h.c1.deliver(t, replyFrom(realA, macA, mac1, ip1))
	if err := h.r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := h.r.Neighbor(2, realB); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Neighbor after Close: %v", err)
	}
	h.c1.take(t)
	h.clk.Advance(time.Hour)
	if got := h.c1.take(t); len(got) != 0 {
		t.Fatalf("sent after Close: %+v", got)
	}
	h.r.SetOwned([]netip.Addr{vip}) // no-op, no panic
	if _, ok := n.MAC(); !ok {
		t.Fatal("Close changed the data path's view")
	}
}

func TestStatic(t *testing.T) {
	n := NewStatic(4, realA, macA)
	if mac, ok := n.MAC(); !ok || mac != macA || n.State() != Reachable || n.Ifindex() != 4 || n.Addr() != realA {
		t.Fatalf("static neighbour: %v %v %v", mac, ok, n.State())
	}
	n.Drop()
	if n.Drops() != 1 {
		t.Fatal("Drop")
	}
}

func TestMACAllocs(t *testing.T) {
	n := NewStatic(2, realA, macA)
	var sink byte
	if a := testing.AllocsPerRun(1000, func() {
		mac, ok := n.MAC()
		if ok {
			sink ^= mac[5]
		}
		n.Drop()
		_ = n.State()
	}); a != 0 {
		t.Fatalf("MAC/Drop/State allocate %v times per call", a)
	}
	_ = sink
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{Incomplete: "incomplete", Reachable: "reachable", Failed: "failed", 0: "State(0)"} {
		if s.String() != want {
			t.Errorf("%d: %q", s, s.String())
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c := (*Config)(nil).normalize()
	if c.Refresh != 30*time.Second || c.Retry != time.Second || c.MaxProbes != 3 || c.StaleAfter != 3 || c.MaxRetry != 10*time.Second {
		t.Fatalf("defaults %+v", c)
	}
	// The refresh must beat the 300 s a Linux bridge keeps a MAC
	// (BR_DEFAULT_AGEING_TIME), or switches flood gvs's frames.
	if worst := c.Refresh + time.Duration(c.StaleAfter)*c.Retry; worst >= 300*time.Second {
		t.Fatalf("refresh cycle %v is not under the bridge ageing time", worst)
	}
	if c := (&Config{Retry: 20 * time.Second, MaxRetry: time.Second}).normalize(); c.MaxRetry != 20*time.Second {
		t.Fatalf("MaxRetry below Retry: %v", c.MaxRetry)
	}
}

func BenchmarkMAC(b *testing.B) {
	n := NewStatic(2, realA, macA)
	b.ReportAllocs()
	var sink byte
	for b.Loop() {
		mac, _ := n.MAC()
		sink ^= mac[0]
	}
	_ = sink
}

func BenchmarkMACParallel(b *testing.B) {
	n := NewStatic(2, realA, macA)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var sink byte
		for pb.Next() {
			mac, _ := n.MAC()
			sink ^= mac[0]
		}
		_ = sink
	})
}
