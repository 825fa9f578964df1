package arp

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The fuzz targets' seed corpora live in testdata/fuzz/<target>/, where
// go test runs them as ordinary tests. TestFuzzSeedCorpus checks that the
// files match fuzzSeeds; `go test -run TestFuzzSeedCorpus -update-corpus`
// rewrites them after fuzzSeeds changes.
var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz from fuzzSeeds")

// fuzzSeeds are FuzzResolverHandle's seeds, by name: frames a neighbour,
// a spoofer and clients send (each frame preceded by its selector byte,
// see FuzzResolverHandle).
func fuzzSeeds() map[string][]byte {
	seed := func(frames ...Frame) []byte {
		var b []byte
		for i, fr := range frames {
			b = append(b, byte(i%2)<<1)
			b, _ = fr.AppendBinary(b)
		}
		return b
	}
	return map[string][]byte{
		"resolve":           seed(replyFrom(realA, macA, mac1, ip1)),
		"claim":             seed(replyFrom(realA, macA, mac1, ip1), replyFrom(realA, macB, mac1, ip1)),
		"claim-refuted":     seed(replyFrom(realA, macA, mac1, ip1), requestFrom(realA, macB, realA), replyFrom(realA, macA, mac1, ip1)),
		"vip-requests":      seed(requestFrom(cliC, macC, vip), requestFrom(netip.IPv4Unspecified(), macC, vip)),
		"vip-claimed":       seed(replyFrom(vip, macB, mac1, ip1), requestFrom(vip, macB, vip)),
		"own-and-group-mac": seed(replyFrom(realA, mac1, mac1, ip1), replyFrom(realA, Broadcast, mac1, ip1)),
		"short":             {1, 2, 3},
	}
}

func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzResolverHandle")
	if *updateCorpus {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, b := range fuzzSeeds() {
		path := filepath.Join(dir, "seed-"+name)
		want := []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b))))
		if *updateCorpus {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s missing or stale (%v): run go test -run TestFuzzSeedCorpus -update-corpus", path, err)
		}
	}
}

// FuzzResolverHandle feeds arbitrary frames (the input cut into frames of
// FrameLen bytes, the first byte of each choosing the interface and the
// clock's step) to a Resolver with a neighbour, an owned VIP and a
// neighbour entry for that VIP, and checks after each frame that nothing
// unsafe happened: every frame gvs wrote is Ethernet/IPv4 ARP from its own
// MAC; every reply answers a request for the owned VIP, unicast to a
// valid MAC, or announces the VIP (gratuitous ARP); every request is for the neighbour (broadcast, or unicast to
// the MAC it is reachable at); the VIP is never learnt; a neighbour's MAC
// is never zero, a group address or gvs's own; every frame is counted.
func FuzzResolverHandle(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		h := newHarness(t, Config{})
		n, _ := h.r.Neighbor(2, realA)
		nv, _ := h.r.Neighbor(2, vip)
		h.r.SetOwned([]netip.Addr{vip})
		h.c1.take(t)
		h.c2.take(t)
		const step = 1 + FrameLen
		frames := 0
		for len(data) > 0 {
			chunk := data[:min(step, len(data))]
			data = data[len(chunk):]
			sel := chunk[0]
			conn, l := h.c1, h.r.links[0]
			if sel&1 != 0 {
				conn, l = h.c2, h.r.links[1]
			}
			h.r.handle(l, chunk[1:])
			frames++
			if s := h.r.Stats(); s.Received != uint64(frames) {
				t.Fatalf("%d frames handled, %d counted", frames, s.Received)
			}
			for _, out := range conn.take(t) {
				switch {
				case out.Src != l.mac || out.SenderMAC != l.mac:
					t.Fatalf("frame from another MAC: %+v", out)
				case out.Op == OpReply:
					garp := out.Dst == Broadcast && out.TargetIP == vip && out.TargetMAC == l.mac
					if out.SenderIP != vip || !garp && (!validUnicast(out.Dst) || out.Dst != out.TargetMAC) {
						t.Fatalf("reply %+v", out)
					}
				case out.Op == OpRequest:
					if out.TargetIP != realA && out.TargetIP != vip {
						t.Fatalf("request for %v", out.TargetIP)
					}
					if mac, ok := n.MAC(); out.Dst != Broadcast && (!ok || out.Dst != mac) && out.TargetIP == realA {
						t.Fatalf("unicast request %+v, neighbour at %v (%v)", out, mac, ok)
					}
				default:
					t.Fatalf("frame %+v", out)
				}
			}
			if nv.State() == Reachable {
				t.Fatal("the owned VIP was learnt")
			}
			if mac, ok := n.MAC(); ok && (!validUnicast(mac) || h.r.isOwnMAC(mac)) {
				t.Fatalf("neighbour learnt %v", mac)
			}
			h.clk.Advance(DefaultRetry * 3 / 4 * time.Duration(1+sel>>1&3))
		}
	})
}
