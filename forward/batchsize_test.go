package forward

import (
	"testing"

	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/internal/hdr"
)

// TestBatchBuckets: the last bucket ends at BatchSize, and every batch
// size lands in the one bucket whose bounds hold it.
func TestBatchBuckets(t *testing.T) {
	if got := BatchBucketBound(BatchBuckets - 1); got != BatchSize {
		t.Fatalf("last bucket bound %d, want BatchSize %d", got, BatchSize)
	}
	for n := 1; n <= BatchSize; n++ {
		var b batchSizes
		b.add(n)
		got := b.load()
		for i, c := range got {
			lo := 0
			if i > 0 {
				lo = BatchBucketBound(i - 1)
			}
			want := uint64(0)
			if lo < n && n <= BatchBucketBound(i) {
				want = 1
			}
			if c != want {
				t.Fatalf("batch of %d: bucket %d (up to %d) counts %d, want %d", n, i, BatchBucketBound(i), c, want)
			}
		}
	}
	var b batchSizes
	b.add(0)
	if b.load() != [BatchBuckets]uint64{} {
		t.Fatal("an empty batch was counted")
	}
}

// TestBatchSizesCounted: a worker counts each batch it handles in its
// size's bucket, and its frames and batches, whatever the frames' verdicts.
func TestBatchSizesCounted(t *testing.T) {
	r := newRig(t)
	r.w.rx = nopRX{}
	r.w.egress[0].TX = &countTX{}
	syn := tcpFrame(43000, hdr.TCPFlagSYN).build()
	arp := tcpFrame(43001, hdr.TCPFlagSYN)
	arp.etherType = hdr.EtherTypeARP
	other := arp.build()
	sizes := []int{1, 2, 3, 64, 5, 64}
	for _, n := range sizes {
		for i := range n {
			if i%2 == 0 {
				r.w.frames[i] = frame(syn)
			} else {
				r.w.frames[i] = frame(other)
			}
		}
		r.w.batch(n)
	}
	s := r.w.Stats()
	// Buckets: 1 | 2 | 3-4 | 5-8 | 9-16 | 17-32 | 33-64.
	want := [BatchBuckets]uint64{1, 1, 1, 1, 0, 0, 2}
	if s.BatchSizes != want {
		t.Errorf("batch sizes %v, want %v", s.BatchSizes, want)
	}
	if s.Batches != uint64(len(sizes)) || s.Frames != 1+2+3+64+5+64 {
		t.Errorf("%d batches of %d frames, want %d of %d", s.Batches, s.Frames, len(sizes), 1+2+3+64+5+64)
	}
	if es := r.w.e.Stats(); es.BatchSizes != want {
		t.Errorf("engine's batch sizes %v, want %v", es.BatchSizes, want)
	}
}

// TestBatchAllocs: a whole batch, counters included, allocates nothing.
func TestBatchAllocs(t *testing.T) {
	r := newRig(t)
	r.w.rx = nopRX{}
	r.w.egress[0].TX = &countTX{}
	ack := tcpFrame(43100, hdr.TCPFlagSYN).build()
	r.w.frames[0] = frame(ack)
	r.w.batch(1)
	ack = tcpFrame(43100, hdr.TCPFlagACK).build()
	fill := func() {
		for i := range BatchSize {
			r.w.frames[i] = afpacket.Frame{Data: ack, Len: len(ack), PktType: afpacket.PacketHost}
		}
	}
	if n := testing.AllocsPerRun(200, func() { fill(); r.w.batch(BatchSize) }); n != 0 {
		t.Errorf("batch: %v allocs per batch of %d, want 0", n, BatchSize)
	}
	if s := r.w.Stats(); s.Verdicts[Forwarded] < 200*BatchSize {
		t.Errorf("only %d frames forwarded: the batches did not run", s.Verdicts[Forwarded])
	}
}
