package forward

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/internal/nstest"
)

// TestReceiveFilterInKernel attaches ReceiveFilter's program to a real
// receive ring and sends filterCases' frames through a veth pair, with the
// destination MAC, VLAN tag and broadcast each case asks for: the kernel
// must take the program and let exactly the wanted frames into the ring.
// Then SetFilter(nil) lets every frame in again.
func TestReceiveFilterInKernel(t *testing.T) {
	nstest.Require(t)
	ns := nstest.NewNS(t, "rxf")
	ns.Sysctl(t, "net.ipv6.conf.all.disable_ipv6", "1")
	ns.Sysctl(t, "net.ipv6.conf.default.disable_ipv6", "1")
	nstest.Veth(t, ns, "fa", ns, "fb")
	var a, b *net.Interface
	var tx *afpacket.TX
	var rx *afpacket.RX
	if err := ns.Do(func() (err error) {
		if a, err = net.InterfaceByName("fa"); err != nil {
			return err
		}
		if b, err = net.InterfaceByName("fb"); err != nil {
			return err
		}
		if tx, err = afpacket.OpenTX(a.Index, nil); err != nil {
			return err
		}
		rx, err = afpacket.OpenRX(b.Index, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Close(); rx.Close() })
	if err := rx.SetFilter(ReceiveFilter([][4]byte{filterVIP, filterLocal}, [][4]byte{filterReal})); err != nil {
		t.Fatalf("the kernel refused the program: %v", err)
	}

	// frameFor gives a case's frame the MACs and tag its packet type and
	// VLAN flag call for, as sent on a.
	frameFor := func(i int) []byte {
		tt := filterCases[i]
		f := slices.Clone(tt.frame)
		copy(f[6:12], a.HardwareAddr)
		switch tt.pktType {
		case afpacket.PacketHost:
			copy(f[0:6], b.HardwareAddr)
		case afpacket.PacketBroadcast:
			copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		case afpacket.PacketOtherHost:
			copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 0x99})
		}
		if tt.vlan {
			f = slices.Concat(f[:12], []byte{0x81, 0x00, 0x00, 42}, f[12:])
		}
		return f
	}
	send := func(frames ...[]byte) {
		t.Helper()
		for _, f := range frames {
			_, buf, ok := tx.Slot()
			if !ok {
				t.Fatal("TX ring full")
			}
			tx.Commit(copy(buf, f))
		}
		if err := tx.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// collect receives until the frame with marker last has come, and
	// returns the markers of the frames before it.
	collect := func(last byte) []byte {
		t.Helper()
		timer := time.AfterFunc(10*time.Second, func() { rx.Close() })
		defer timer.Stop()
		var got []byte
		frames := make([]afpacket.Frame, 16)
		for {
			n, err := rx.Receive(frames)
			if err != nil {
				t.Fatalf("receiving (markers so far %v): %v", got, err)
			}
			for _, f := range frames[:n] {
				if len(f.Data) < 35 {
					continue
				}
				if f.Data[34] == last {
					rx.Release()
					return got
				}
				got = append(got, f.Data[34])
			}
			rx.Release()
		}
	}
	const sentinel = 200 // ICMP to the VIP: accepted by every program here
	sentinelFrame := frameFor(0)
	sentinelFrame[14+9], sentinelFrame[34] = 1, sentinel

	// check sends every case and then the sentinel, and compares the
	// markers that came in with those of the cases filtered lets in (all
	// of them when it is false).
	check := func(what string, filtered bool) {
		t.Helper()
		var want []byte
		for i, tt := range filterCases {
			send(frameFor(i))
			if tt.want || !filtered {
				want = append(want, tt.frame[34])
			}
		}
		send(sentinelFrame)
		if got := collect(sentinel); !slices.Equal(got, want) {
			t.Errorf("%s: markers received %v, want %v", what, got, want)
		}
	}
	check("filtered", true)
	if err := rx.SetFilter(nil); err != nil {
		t.Fatalf("SetFilter(nil): %v", err)
	}
	check("no filter", false)
	if err := rx.SetFilter(nil); err != nil {
		t.Errorf("SetFilter(nil) with no filter: %v", err)
	}
}
