//go:build linux

package pktgen

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/internal/nstest"
)

// TestGeneratorRun sends for a short while over a veth pair and checks, on
// a receive ring at the other end, that every frame arrives whole and is
// its flow's, that the flows take turns, and that what Run reports as sent
// is what the ring received plus what it dropped.
func TestGeneratorRun(t *testing.T) {
	nstest.Require(t)
	a, b := nstest.NewNS(t, "pga"), nstest.NewNS(t, "pgb")
	nstest.Veth(t, a, "eth0", b, "eth0")

	var rx *afpacket.RX
	if err := b.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		rx, err = afpacket.OpenRX(ifi.Index, &afpacket.RXConfig{FrameSize: 2048, FrameCount: 1 << 16})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rx.Close()

	var g *Generator
	if err := a.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		g, err = Open(ifi.Index, Config{CPU: 0})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer g.Close()

	spec := testSpec(128)
	spec.Flows = 7
	f, err := spec.Build()
	if err != nil {
		t.Fatal(err)
	}
	res, err := g.Run(context.Background(), f, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Frames == 0 || res.Elapsed() <= 0 {
		t.Fatalf("Run = %+v: nothing sent", res)
	}

	// Read everything that arrived: each frame must be its flow's.
	want := make([]byte, f.Len())
	frames := make([]afpacket.Frame, 64)
	var got uint64
	perFlow := make([]uint64, spec.Flows)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			n, err := rx.Receive(frames)
			if err != nil {
				return
			}
			for _, fr := range frames[:n] {
				if len(fr.Data) != f.Len() || binary.BigEndian.Uint16(fr.Data[12:]) != 0x0800 {
					continue // not ours: IPv6 is on in these namespaces
				}
				flow := int(binary.BigEndian.Uint16(fr.Data[34:]) - spec.BasePort)
				if flow < 0 || flow >= spec.Flows {
					t.Errorf("frame from source port %d: not one of the flows", flow+int(spec.BasePort))
					continue
				}
				f.Write(want, flow)
				if !bytes.Equal(fr.Data, want) {
					t.Errorf("frame %d differs from flow %d's:\n got % x\nwant % x", got, flow, fr.Data, want)
				}
				perFlow[flow]++
				got++
			}
			rx.Release()
		}
	}()
	var packets, drops uint64
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		packets, drops, _ = rx.Stats()
		if packets >= res.Frames {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the reader catch up
	rx.Close()
	<-done
	// Every frame sent reached the ring or was counted as a ring drop.
	if got+drops < res.Frames || got > res.Frames {
		t.Errorf("sent %d frames; received %d, ring drops %d (socket saw %d)", res.Frames, got, drops, packets)
	}
	// Flows are sent round robin: no flow is more than one frame ahead
	// of another, unless the ring dropped some.
	if drops == 0 {
		lo, hi := perFlow[0], perFlow[0]
		for _, n := range perFlow {
			lo, hi = min(lo, n), max(hi, n)
		}
		if hi-lo > 1 {
			t.Errorf("frames per flow %v: not round robin", perFlow)
		}
	}
}

// TestGeneratorStops checks that a cancelled context ends Run at once.
func TestGeneratorStops(t *testing.T) {
	nstest.Require(t)
	a, b := nstest.NewNS(t, "pgc"), nstest.NewNS(t, "pgd")
	nstest.Veth(t, a, "eth0", b, "eth0")
	var g *Generator
	if err := a.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		g, err = Open(ifi.Index, Config{CPU: -1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	f, err := testSpec(64).Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := g.Run(ctx, f, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if res.Frames > DefaultBatch {
		t.Errorf("a cancelled Run sent %d frames, want at most one batch (%d)", res.Frames, DefaultBatch)
	}
}

// TestRunPacedReceiver sends stamped frames at a fixed rate over a veth
// pair to a Receiver and checks that every frame's latency was recorded,
// that latencies are plausible (non-negative, far below a second), and
// that the sender never ran ahead of its schedule (on a busy machine it
// may fall behind, which is not checked: it depends on the load).
func TestRunPacedReceiver(t *testing.T) {
	nstest.Require(t)
	a, b := nstest.NewNS(t, "pra"), nstest.NewNS(t, "prb")
	nstest.Veth(t, a, "eth0", b, "eth0")
	var rcv *Receiver
	if err := b.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		rcv, err = OpenReceiver(ifi.Index)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	var g *Generator
	if err := a.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		g, err = Open(ifi.Index, Config{CPU: 0})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	spec := testSpec(MinSize)
	spec.Flows = 5
	f, err := spec.Build()
	if err != nil {
		t.Fatal(err)
	}
	const rate, d = 10000, 200 * time.Millisecond
	res, err := g.RunPaced(context.Background(), f, d, rate)
	if err != nil {
		t.Fatal(err)
	}
	if most := uint64(float64(rate)*res.Elapsed().Seconds()) + 1; res.Frames == 0 || res.Frames > most {
		t.Errorf("sent %d frames in %v at %d/s: want some, at most %d", res.Frames, res.Elapsed(), rate, most)
	}
	rcv.Flush()
	lat, bad := rcv.Latencies()
	drops, err := rcv.Drops()
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(lat))+bad+drops != res.Frames {
		t.Errorf("sent %d stamped frames; receiver has %d latencies, %d negative, %d dropped", res.Frames, len(lat), bad, drops)
	}
	for _, l := range lat {
		if l < 0 || l > int64(time.Second) {
			t.Fatalf("latency %v out of range", time.Duration(l))
		}
	}
	if _, err := g.RunPaced(context.Background(), f, d, 0); err == nil {
		t.Error("RunPaced with rate 0: no error")
	}
}
