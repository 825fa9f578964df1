package forward

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/gvs-project/gvs/health"
	"github.com/gvs-project/gvs/internal/hdr"
	"github.com/gvs-project/gvs/service"
)

// TestHealthDown: a real server its health check takes down gets no new
// connection, in either mode (quiesce, remove), not even a SYN from a
// client port whose old connection it had; its established flows keep
// going, or with expire_nodest_conn are dropped at their next packet;
// once it is up again it takes new connections.
func TestHealthDown(t *testing.T) {
	tcp := service.KeyOf(6, netip.AddrFrom4(vip), 80)
	rs13 := netip.MustParseAddr("192.168.150.13")
	for _, mode := range []service.OnFailure{service.FailQuiesce, service.FailRemove} {
		for _, nodest := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/expire_nodest_conn=%v", mode, nodest), func(t *testing.T) {
				r := newRig(t)
				r.w.e.cfg.ExpireNodestConn = nodest
				if _, err := r.services.Apply([]service.Op{
					{Kind: service.EditService, Service: tcp, Settings: service.Settings{Scheduler: "rr", OnFailure: mode}},
					{Kind: service.EditReal, Service: tcp, Real: service.RealSpec{Addr: rs13, Port: 80, KeepForward: true,
						KeepWeight: true, KeepThresholds: true, Check: &health.Spec{Kind: health.TCP}}},
				}, nil); err != nil {
					t.Fatal(err)
				}
				if v := r.send(frame(tcpFrame(45000, hdr.TCPFlagSYN).build())); v != Forwarded || r.lastMAC() != rs13MAC {
					t.Fatalf("first connection: %v to %x", v, r.lastMAC())
				}
				svc := r.services.Load().Lookup(tcp)
				var real13 *service.Real
				for _, x := range svc.Reals() {
					if x.Addr == rs13 {
						real13 = x
					}
				}
				if !svc.SetHealth(real13, false) {
					t.Fatal("SetHealth")
				}
				want := Forwarded
				if nodest {
					want = DestGone
				}
				if v := r.send(frame(tcpFrame(45000, hdr.TCPFlagACK).build())); v != want {
					t.Fatalf("established flow of the failed server: %v, want %v", v, want)
				}
				// A SYN from the same client port is a new connection: it
				// goes to a live server, whatever became of the old entry.
				if v := r.send(frame(tcpFrame(45000, hdr.TCPFlagSYN).build())); v != Forwarded || r.lastMAC() != rs12MAC {
					t.Fatalf("a new connection from the old client port: %v to %x", v, r.lastMAC())
				}
				for i := range 4 {
					if v := r.send(frame(tcpFrame(uint16(46000+i), hdr.TCPFlagSYN).build())); v != Forwarded || r.lastMAC() != rs12MAC {
						t.Fatalf("new connection %d while .13 is down: %v to %x", i, v, r.lastMAC())
					}
				}
				svc.SetHealth(real13, true)
				seen := map[[6]byte]int{}
				for i := range 4 {
					r.send(frame(tcpFrame(uint16(47000+i), hdr.TCPFlagSYN).build()))
					seen[r.lastMAC()]++
				}
				if seen[rs13MAC] != 2 || seen[rs12MAC] != 2 {
					t.Fatalf("after .13 came back: %v", seen)
				}
			})
		}
	}
}

// lastMAC is the destination MAC of the last frame sent.
func (r *rig) lastMAC() [6]byte { return [6]byte(r.tx.sent[len(r.tx.sent)-1][0:6]) }
