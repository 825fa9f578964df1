//go:build !notrace

package forward

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/internal/hdr"
	"github.com/gvs-project/gvs/service"
)

// recTap records what it observes (deep copies) and traces every frame
// when trace is set.
type recTap struct {
	mu    sync.Mutex
	trace bool
	asked int
	obs   []Observation
	decs  []*Decision
}

func (r *recTap) Trace(*service.Service) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked++
	return r.trace
}

func (r *recTap) Observe(o *Observation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := *o
	c.In = bytes.Clone(o.In)
	c.Outs = nil
	for _, s := range o.Outs {
		s.Data = bytes.Clone(s.Data)
		c.Outs = append(c.Outs, s)
	}
	var d *Decision
	if o.Decision != nil {
		dc := *o.Decision
		d = &dc
	}
	c.Decision = d
	r.obs = append(r.obs, c)
	r.decs = append(r.decs, d)
}

func (r *recTap) last(t *testing.T) Observation {
	t.Helper()
	if len(r.obs) == 0 {
		t.Fatal("nothing observed")
	}
	return r.obs[len(r.obs)-1]
}

// TestTapObserves: in every mode, a tapped worker reports the frame as
// received (before its rewrite), the frames it sent as they went out,
// the verdict, and for traced frames the decision: a new connection NONE
// -> SYN_RECV with the scheduler's foreseen pick and reason and the next
// hop, then SYN_RECV -> ESTABLISHED on the ACK, and for NAT and FULLNAT
// the real server's reply found by its reply key.
func TestTapObserves(t *testing.T) {
	for _, fwd := range []service.Forward{service.Route, service.Masq, service.FullNAT, service.Tunnel} {
		t.Run(fwd.String(), func(t *testing.T) {
			rig := newModeRig(t, fwd, hdr.ProtoTCP)
			tap := &recTap{trace: true}
			rig.w.e.SetTap(tap)
			r := rand.New(rand.NewPCG(1, 2))
			syn := frame(randomFrame(t, r, hdr.ProtoTCP, clientIP, 43000, vip, 80, true))
			in := bytes.Clone(syn.Data)
			if v := rig.send(syn); v != Forwarded {
				t.Fatalf("SYN: %v", v)
			}
			o := tap.last(t)
			if !bytes.Equal(o.In, in) || o.InLen != len(in) || o.Ifindex != ifLAN || o.Verdict != Forwarded {
				t.Fatalf("observed in-frame differs from the received one (verdict %v)", o.Verdict)
			}
			sent, _ := rig.last(rig.real)
			if len(o.Outs) != 1 || !bytes.Equal(o.Outs[0].Data, sent) || o.Outs[0].Ifindex != ifReal {
				t.Fatalf("observed %d out-frames; want the one sent on the real servers' side", len(o.Outs))
			}
			d := o.Decision
			if d == nil || d.Found || !d.Exists || d.Old != conntrack.StateNone || d.New != conntrack.StateSynRecv ||
				!d.Scheduled || d.Predicted == nil || d.Predicted != d.Real || d.Forward != fwd ||
				!strings.HasPrefix(d.Why, "rr: 10.0.0.12, the next available from the head") || d.Hop == nil {
				t.Fatalf("SYN decision %+v", d)
			}
			if mac, _ := d.Hop.MAC(); mac != realMAC {
				t.Fatalf("hop MAC %x", mac)
			}

			ack := frame(randomFrame(t, r, hdr.ProtoTCP, clientIP, 43000, vip, 80, false))
			rig.send(ack)
			d = tap.last(t).Decision
			if d == nil || !d.Found || d.Scheduled || d.Old != conntrack.StateSynRecv || d.New != conntrack.StateEstablished {
				t.Fatalf("ACK decision %+v", d)
			}

			if fwd == service.Masq || fwd == service.FullNAT {
				_, sport, _ := decode(t, sent)
				dst := clientIP
				if fwd == service.FullNAT {
					dst = laddr
				}
				reply := frame(randomFrame(t, r, hdr.ProtoTCP, rip, 8080, dst, sport, false))
				if v := rig.send(reply); v != Forwarded {
					t.Fatalf("reply: %v", v)
				}
				o := tap.last(t)
				back, _ := rig.last(rig.lan)
				d := o.Decision
				if d == nil || !d.Reply || !d.Found || d.PeerMAC != clientMAC || d.PeerIfindex != ifLAN ||
					len(o.Outs) != 1 || !bytes.Equal(o.Outs[0].Data, back) {
					t.Fatalf("reply decision %+v, %d outs", d, len(o.Outs))
				}
				if fwd == service.FullNAT && (d.LocalAddr != laddr || d.LocalPort != sport) {
					t.Fatalf("FULLNAT local %v:%d, want %v:%d", d.LocalAddr, d.LocalPort, laddr, sport)
				}
			}

			// A frame that is not for a service is observed, not traced.
			other := frameSpec{dstMAC: directorMAC, src: clientIP, dst: [4]byte{192, 168, 150, 1}, proto: hdr.ProtoTCP, sport: 1, dport: 22, flags: hdr.TCPFlagSYN}
			rig.send(frame(other.build()))
			if o := tap.last(t); o.Verdict != NotOurs || o.Decision != nil || len(o.Outs) != 0 {
				t.Fatalf("frame to the director itself: %v %+v", o.Verdict, o.Decision)
			}

			// Untapped: nothing is observed.
			rig.w.e.SetTap(nil)
			n := len(tap.obs)
			rig.send(frame(randomFrame(t, r, hdr.ProtoTCP, clientIP, 43001, vip, 80, true)))
			if len(tap.obs) != n {
				t.Fatal("observed after SetTap(nil)")
			}
		})
	}
}

// TestTapNotTraced: a frame the tap does not trace gets no decision, and
// the tables are asked nothing.
func TestTapNotTraced(t *testing.T) {
	rig := newModeRig(t, service.Route, hdr.ProtoUDP)
	tap := &recTap{}
	rig.w.e.SetTap(tap)
	s := frameSpec{dstMAC: directorMAC, src: clientIP, dst: vip, proto: hdr.ProtoUDP, sport: 5000, dport: 80, payload: 10}
	if v := rig.send(frame(s.build())); v != Forwarded {
		t.Fatal(v)
	}
	if o := tap.last(t); o.Decision != nil || tap.asked != 1 || len(o.Outs) != 1 {
		t.Fatalf("decision %+v, asked %d, %d outs", o.Decision, tap.asked, len(o.Outs))
	}
}

// TestTapPersistence: a persistent service's second connection from the
// client's network is traced as placed by its template.
func TestTapPersistence(t *testing.T) {
	r := newRig(t)
	any := service.KeyOf(6, netip.AddrFrom4(vip), 0)
	if _, err := r.services.Apply([]service.Op{
		{Kind: service.AddService, Service: any, Settings: service.Settings{Scheduler: "rr", Persistent: true, Netmask: 24, Timeout: 300}},
		{Kind: service.AddReal, Service: any, Real: service.RealSpec{Addr: netip.AddrFrom4([4]byte{192, 168, 150, 12}), Forward: service.Route, Weight: 1}},
	}, func(p *service.Plan) error {
		for _, nr := range p.NewReals {
			nr.SetLink(&service.Link{Hop: r.hops[nr.Addr.String()]})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tap := &recTap{trace: true}
	r.w.e.SetTap(tap)
	for i, port := range []uint16{443, 8443} {
		s := tcpFrame(uint16(50000+i), hdr.TCPFlagSYN)
		s.dport = port
		if v := r.send(frame(s.build())); v != Forwarded {
			t.Fatal(v)
		}
		d := tap.last(t).Decision
		if d == nil || !d.Scheduled || d.Template != (i == 1) {
			t.Fatalf("connection %d: %+v", i, d)
		}
		if i == 1 && (d.TemplateKey.ClientAddr().Addr().String() != "192.168.150.0" || d.Predicted != d.Real) {
			t.Fatalf("template %v -> %v, real %v", d.TemplateKey, d.Predicted, d.Real)
		}
	}
}

// TestTapAllocs: a tapped batch allocates nothing per frame when no frame
// is traced (pcap alone), once the worker's tap buffers exist.
func TestTapAllocs(t *testing.T) {
	for _, fwd := range []service.Forward{service.Route, service.Masq, service.FullNAT, service.Tunnel} {
		rig := newModeRig(t, fwd, hdr.ProtoUDP)
		tx := &countTX{}
		rig.w.egress[0].TX, rig.w.egress[1].TX = tx, tx
		rig.w.rx = nopRX{}
		rig.w.e.SetTap(nopTap{})
		s := frameSpec{dstMAC: directorMAC, src: clientIP, dst: vip, proto: hdr.ProtoUDP, sport: 5000, dport: 80, payload: 100}
		data := s.build()
		f := frame(bytes.Clone(data))
		if n := testing.AllocsPerRun(500, func() {
			copy(f.Data, data)
			rig.w.frames[0] = f
			rig.w.batch(1)
		}); n != 0 {
			t.Errorf("%v: %v allocs per tapped frame", fwd, n)
		}
	}
}

type nopTap struct{}

func (nopTap) Trace(*service.Service) bool { return false }
func (nopTap) Observe(*Observation)        {}

// TestTapOutsBounded: frames beyond the worker's copy buffer are counted
// as lost to the tap, and still sent.
func TestTapOutsBounded(t *testing.T) {
	rig := newModeRig(t, service.Route, hdr.ProtoUDP)
	tap := &recTap{}
	rig.w.e.SetTap(tap)
	rig.send(frame(frameSpec{dstMAC: directorMAC, src: clientIP, dst: vip, proto: hdr.ProtoUDP, sport: 1, dport: 80}.build()))
	wt := rig.w.tap
	// Fill the worker's out buffer: the next frame's copy does not fit.
	wt.outBuf = wt.outBuf[:10]
	rig.send(frame(frameSpec{dstMAC: directorMAC, src: clientIP, dst: vip, proto: hdr.ProtoUDP, sport: 1, dport: 80, payload: 100}.build()))
	o := tap.last(t)
	if len(o.Outs) != 0 || o.OutsLost != 1 || len(rig.real.sent) != 2 {
		t.Fatalf("%d outs, %d lost, %d sent", len(o.Outs), o.OutsLost, len(rig.real.sent))
	}
}

// TestTappedSuperFrameUsesSlots: while a tap is set, a super-frame goes
// through a transmit slot even where it could be sent directly, so that
// the tap sees what leaves.
func TestTappedSuperFrameUsesSlots(t *testing.T) {
	rig, dtx := newDirectRig(t, service.Route)
	r := rand.New(rand.NewPCG(5, 6))
	rig.send(frame(randomFrame(t, r, hdr.ProtoTCP, clientIP, 41000, vip, 80, true)))
	rig.w.e.SetTap(nopTap{})
	if v := rig.send(superFrame()); v != Forwarded {
		t.Fatalf("verdict %v", v)
	}
	if dtx[1].direct != 0 || len(rig.real.sent) != 2 {
		t.Errorf("%d frames sent directly, %d through slots; want 0 and 2", dtx[1].direct, len(rig.real.sent))
	}
	rig.w.e.SetTap(nil)
	if v := rig.send(superFrame()); v != Forwarded || dtx[1].direct != 1 {
		t.Errorf("untapped again: verdict %v, %d frames sent directly; want 1", v, dtx[1].direct)
	}
}
