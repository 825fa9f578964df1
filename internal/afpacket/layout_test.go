package afpacket

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNewLayout(t *testing.T) {
	tests := []struct {
		name              string
		frameSize, frames int
		page              int
		want              Layout
		wantErr           bool
	}{
		{
			// 15 slots of 64 KiB + 256 B per 1 MiB block; 256 slots
			// need 18 blocks. 2 MiB blocks would need the same 18 MiB,
			// and the smaller block wins the tie.
			name: "defaults", page: 4096,
			want: Layout{FrameSize: 65792, FrameCount: 270, BlockSize: 1 << 20, BlockCount: 18},
		},
		{
			name: "few big frames use one slot per block", frameSize: DefaultFrameSize, frames: 4, page: 4096,
			want: Layout{FrameSize: 65792, FrameCount: 4, BlockSize: 128 << 10, BlockCount: 4},
		},
		{
			name: "two 2 KiB frames per page", frameSize: 2048, frames: 128, page: 4096,
			want: Layout{FrameSize: 2048, FrameCount: 128, BlockSize: 4096, BlockCount: 64},
		},
		{
			name: "rounded up to a whole block", frameSize: 256, frames: 8, page: 4096,
			want: Layout{FrameSize: 256, FrameCount: 16, BlockSize: 4096, BlockCount: 1},
		},
		{
			name: "frame size rounded to 16", frameSize: 1500, frames: 2, page: 4096,
			want: Layout{FrameSize: 1504, FrameCount: 2, BlockSize: 4096, BlockCount: 1},
		},
		{
			name: "64 KiB pages", frameSize: 2048, frames: 100, page: 64 << 10,
			want: Layout{FrameSize: 2048, FrameCount: 128, BlockSize: 64 << 10, BlockCount: 4},
		},
		{name: "frame too small", frameSize: MinFrameSize - 1, page: 4096, wantErr: true},
		{name: "frame larger than a block", frameSize: maxBlockSize + 1, page: 4096, wantErr: true},
		{name: "negative count", frames: -1, page: 4096, wantErr: true},
		{name: "count too large", frames: maxFrameCount + 1, page: 4096, wantErr: true},
		{name: "bad page size", page: 3000, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newLayout(tt.frameSize, tt.frames, tt.page)
			if tt.wantErr {
				if !errors.Is(err, errConfig) {
					t.Fatalf("err = %v, want errConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("layout (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLayoutInvariants checks what packet_set_ring demands of a ring, and
// that no two slots overlap, over random sizes.
func TestLayoutInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		fs := MinFrameSize + rng.IntN(200<<10)
		n := 1 + rng.IntN(600)
		l, err := newLayout(fs, n, 4096)
		if err != nil {
			t.Fatalf("newLayout(%d, %d): %v", fs, n, err)
		}
		fpb := l.BlockSize / l.FrameSize
		switch {
		case l.FrameSize%tpacketAlignment != 0 || l.FrameSize < fs || l.FrameSize >= fs+tpacketAlignment:
			t.Fatalf("%+v: frame size for %d", l, fs)
		case l.BlockSize%4096 != 0 || l.BlockSize&(l.BlockSize-1) != 0 || l.BlockSize > maxBlockSize:
			t.Fatalf("%+v: block size not a power of two pages within bounds", l)
		case fpb < 1 || l.FrameCount != fpb*l.BlockCount || l.FrameCount < n:
			t.Fatalf("%+v: frame count for %d", l, n)
		case l.FrameCount-n >= fpb:
			t.Fatalf("%+v: a whole block more than needed for %d", l, n)
		}
		offs := l.offsets()
		for i, o := range offs {
			if o%tpacketAlignment != 0 || o+l.FrameSize > l.Size() {
				t.Fatalf("%+v: slot %d at %d", l, i, o)
			}
			if o/l.BlockSize != (o+l.FrameSize-1)/l.BlockSize {
				t.Fatalf("%+v: slot %d at %d crosses a block", l, i, o)
			}
			if i > 0 && o < offs[i-1]+l.FrameSize {
				t.Fatalf("%+v: slot %d at %d overlaps slot %d", l, i, o, i-1)
			}
		}
	}
}

// TestConstants ties the constants to each other and to the sizes they
// are derived from.
func TestConstants(t *testing.T) {
	if tpacket2HdrLen != (tpacket2HdrSize+tpacketAlignment-1)&^(tpacketAlignment-1)+sockaddrLLSize {
		t.Errorf("TPACKET2_HDRLEN = %d", tpacket2HdrLen)
	}
	if txDataOff != 32 {
		t.Errorf("txDataOff = %d, want 32", txDataOff)
	}
	// A maximal super-frame: 65535 bytes of IP packet plus an IPv6 header
	// beyond it (payload_len excludes it), Ethernet and one VLAN tag.
	const maxSuper = 14 + 4 + 40 + 65535
	// tp_mac for Ethernet is 76; a tag left in the data moves it to 72.
	if DefaultFrameSize < 76+maxSuper {
		t.Errorf("DefaultFrameSize %d does not hold a %d-byte super-frame in RX", DefaultFrameSize, maxSuper)
	}
	if DefaultFrameSize-txDataOff-VNetHdrLen < maxSuper {
		t.Errorf("DefaultFrameSize %d does not hold a %d-byte super-frame in TX", DefaultFrameSize, maxSuper)
	}
	if MinFrameSize < 80+14 {
		t.Errorf("MinFrameSize %d does not hold an Ethernet header at tp_mac 80", MinFrameSize)
	}
}
