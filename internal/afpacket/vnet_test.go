package afpacket

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestVNetHdrLayout(t *testing.T) {
	h := VNetHdr{Flags: NeedsCsum, GSOType: GSOTCPv4 | GSOECN, HdrLen: 0x0102, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
	b := make([]byte, VNetHdrLen)
	h.Encode(b)
	// struct virtio_net_hdr, 16-bit fields in host byte order.
	want := []byte{NeedsCsum, GSOTCPv4 | GSOECN, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.NativeEndian.PutUint16(want[2:], 0x0102)
	binary.NativeEndian.PutUint16(want[4:], 1448)
	binary.NativeEndian.PutUint16(want[6:], 34)
	binary.NativeEndian.PutUint16(want[8:], 16)
	if diff := cmp.Diff(want, b); diff != "" {
		t.Fatalf("Encode (-want +got):\n%s", diff)
	}
	var got VNetHdr
	got.Decode(b)
	if got != h {
		t.Fatalf("Decode = %+v, want %+v", got, h)
	}
	if !got.IsGSO() {
		t.Error("IsGSO = false for TCPv4|ECN")
	}
	if (&VNetHdr{GSOType: GSOECN}).IsGSO() {
		t.Error("IsGSO = true for the ECN bit alone")
	}
}

func TestVNetHdrShort(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Decode of 9 bytes did not panic")
		}
	}()
	var h VNetHdr
	h.Decode(make([]byte, VNetHdrLen-1))
}

func FuzzVNetHdr(f *testing.F) {
	f.Add([]byte{1, 1, 66, 0, 168, 5, 34, 0, 16, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < VNetHdrLen {
			return
		}
		var h VNetHdr
		h.Decode(b)
		out := make([]byte, VNetHdrLen)
		h.Encode(out)
		if diff := cmp.Diff(b[:VNetHdrLen], out); diff != "" {
			t.Fatalf("round trip (-in +out):\n%s", diff)
		}
	})
}
