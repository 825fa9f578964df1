package service

import (
	"net/netip"
	"testing"
)

// TestSnapshotAddresses: IsVirtual knows the services' addresses by
// protocol, IsLocalAddr FULLNAT's local addresses, and both follow
// deletions.
func TestSnapshotAddresses(t *testing.T) {
	tab := New()
	udp := KeyOf(17, netip.MustParseAddr("192.168.150.101"), 53)
	laddr := netip.MustParseAddr("192.168.30.200")
	if _, err := tab.Apply([]Op{addSvc(vipKey, "rr"), addSvc(udp, "rr"),
		{Kind: AddLocalAddr, Service: vipKey, Addr: laddr}}, nil); err != nil {
		t.Fatal(err)
	}
	v1, v2, other := vipKey.Addr, udp.Addr, [4]byte{192, 168, 150, 102}
	snap := tab.Load()
	for _, tc := range []struct {
		addr  [4]byte
		proto uint8
		want  bool
	}{{v1, 6, true}, {v1, 17, false}, {v1, 0, true}, {v2, 17, true}, {v2, 6, false}, {v2, 0, true}, {other, 0, false}, {v1, 1, false}} {
		if got := snap.IsVirtual(tc.addr, tc.proto); got != tc.want {
			t.Errorf("IsVirtual(%v, %d) = %v", tc.addr, tc.proto, got)
		}
	}
	if !snap.IsLocalAddr(laddr.As4()) || snap.IsLocalAddr(v1) {
		t.Error("IsLocalAddr")
	}
	if _, err := tab.Apply([]Op{{Kind: DelService, Service: udp}}, nil); err != nil {
		t.Fatal(err)
	}
	if snap := tab.Load(); snap.IsVirtual(v2, 0) || !snap.IsVirtual(v1, 6) {
		t.Error("after deleting the UDP service")
	}
}
