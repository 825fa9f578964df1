package forward

import (
	"testing"

	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/internal/hdr"
	"github.com/gvs-project/gvs/service"
)

// BenchmarkBatch runs whole batches of BatchSize frames of established
// UDP flows through Worker.batch, per-batch work included (the clock, the
// service snapshot, the tap check, the flushes), with no tap set. Built
// with -tags notrace it measures the same without the tap check: the
// pair shows what the trace hook costs when it is off.
func BenchmarkBatch(b *testing.B) {
	for _, tc := range []struct {
		name string
		fwd  service.Forward
	}{{"DR", service.Route}, {"NAT", service.Masq}, {"FULLNAT", service.FullNAT}, {"TUN", service.Tunnel}} {
		b.Run(tc.name, func(b *testing.B) {
			rig := newModeRig(&testing.T{}, tc.fwd, hdr.ProtoUDP)
			tx := &countTX{}
			rig.w.egress[0].TX, rig.w.egress[1].TX = tx, tx
			rig.w.rx = nopRX{}
			var frames [BatchSize]afpacket.Frame
			var datas [BatchSize][]byte
			for i := range frames {
				s := frameSpec{dstMAC: directorMAC, src: clientIP, dst: vip, proto: hdr.ProtoUDP, sport: uint16(10000 + i), dport: 80, payload: 64 - 42}
				frames[i] = frame(s.build())
				datas[i] = append([]byte(nil), frames[i].Data...)
			}
			load := func() {
				for i := range frames {
					copy(frames[i].Data, datas[i]) // TUN rewrites the received frame in place
				}
				rig.w.frames = frames
			}
			load()
			rig.w.batch(BatchSize) // the flows' connections
			b.ReportAllocs()
			for b.Loop() {
				load()
				rig.w.batch(BatchSize)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*BatchSize), "ns/frame")
		})
	}
}
