package arp

import (
	"encoding/hex"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// mustHex decodes hex with spaces allowed.
func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A who-has 192.168.1.10 tell 192.168.1.1, as Linux sends it.
const requestHex = "ffffffffffff 020000000001 0806 0001 0800 06 04 0001 020000000001 c0a80101 000000000000 c0a8010a"

var requestFrame = Frame{
	Dst: Broadcast, Src: mac1, Op: OpRequest,
	SenderMAC: mac1, SenderIP: ip1, TargetIP: realA,
}

func TestFrameUnmarshal(t *testing.T) {
	pad := strings.Repeat("00", 60-FrameLen)
	tests := []struct {
		name    string
		in      string
		want    Frame
		wantErr error
	}{
		{"request", requestHex, requestFrame, nil},
		{"padded to 60 octets", requestHex + pad, requestFrame, nil},
		{"reply", "020000000001 02aa0000000a 0806 0001 0800 06 04 0002 02aa0000000a c0a8010a 020000000001 c0a80101",
			Frame{Dst: mac1, Src: macA, Op: OpReply, SenderMAC: macA, SenderIP: realA, TargetMAC: mac1, TargetIP: ip1}, nil},
		{"probe, unknown op kept", "ffffffffffff 020000000001 0806 0001 0800 06 04 0009 020000000001 00000000 000000000000 c0a8010a",
			Frame{Dst: Broadcast, Src: mac1, Op: 9, SenderMAC: mac1, SenderIP: netip.IPv4Unspecified(), TargetIP: realA}, nil},
		{"empty", "", Frame{}, io.ErrUnexpectedEOF},
		{"Ethernet header only", "ffffffffffff 020000000001 0806", Frame{}, io.ErrUnexpectedEOF},
		{"one octet short", requestHex[:len(requestHex)-2], Frame{}, io.ErrUnexpectedEOF},
		{"IPv4 EtherType", strings.Replace(requestHex, "0806", "0800", 1), Frame{}, ErrInvalidFrame},
		{"VLAN tag", strings.Replace(requestHex, "0806", "8100", 1) + "0000", Frame{}, ErrInvalidFrame},
		{"IEEE 802 hardware type", strings.Replace(requestHex, "0806 0001", "0806 0006", 1), Frame{}, ErrInvalidFrame},
		{"IPv6 protocol type", strings.Replace(requestHex, "0001 0800", "0001 86dd", 1), Frame{}, ErrInvalidFrame},
		{"hardware length 8", strings.Replace(requestHex, "06 04", "08 04", 1), Frame{}, ErrInvalidFrame},
		{"protocol length 16", strings.Replace(requestHex, "06 04", "06 10", 1), Frame{}, ErrInvalidFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Frame
			err := got.UnmarshalBinary(mustHex(t, tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Fatalf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestFrameMarshal(t *testing.T) {
	got, err := requestFrame.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if want := mustHex(t, requestHex); string(got) != string(want) {
		t.Fatalf("got  %x\nwant %x", got, want)
	}
	for _, f := range []Frame{
		{SenderIP: ip1}, // zero target
		{TargetIP: ip1}, // zero sender
		{SenderIP: ip1, TargetIP: netip.MustParseAddr("::1")},
		{SenderIP: netip.MustParseAddr("::ffff:192.168.1.1"), TargetIP: ip1}, // 4in6 is not 4
	} {
		if _, err := f.MarshalBinary(); !errors.Is(err, ErrInvalidAddr) {
			t.Errorf("%+v: err %v, want ErrInvalidAddr", f, err)
		}
	}
}

func TestFrameAppendNoAlloc(t *testing.T) {
	buf := make([]byte, 0, 2*FrameLen)
	if a := testing.AllocsPerRun(100, func() {
		b, err := requestFrame.AppendBinary(buf[:0])
		if err != nil || len(b) != FrameLen {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Fatalf("AppendBinary allocates %v times", a)
	}
	prefix := []byte("xy")
	b, _ := requestFrame.AppendBinary(prefix)
	if string(b[:2]) != "xy" || len(b) != 2+FrameLen {
		t.Fatalf("append clobbered the prefix: %x", b)
	}
	var f Frame
	in := mustHex(t, requestHex)
	if a := testing.AllocsPerRun(100, func() { f.decode(in) }); a != 0 {
		t.Fatalf("decode allocates %v times", a)
	}
}

func TestOperationString(t *testing.T) {
	if OpRequest.String() != "request" || OpReply.String() != "reply" || Operation(9).String() != "Operation(9)" {
		t.Fatal(OpRequest, OpReply, Operation(9))
	}
}

// FuzzFrameUnmarshalMarshal checks that whatever decodes re-encodes to the
// same 42 octets and decodes to the same Frame, and that decode never
// panics.
func FuzzFrameUnmarshalMarshal(f *testing.F) {
	f.Add(mustHex(f, requestHex))
	f.Add(mustHex(f, requestHex+"000000000000000000000000000000000000"))
	f.Add(mustHex(f, "020000000001 02aa0000000a 0806 0001 0800 06 04 0002 02aa0000000a c0a8010a 020000000001 c0a80101"))
	f.Add([]byte{})
	f.Add(mustHex(f, "ffffffffffff 020000000001 0806"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var f1 Frame
		if err := f1.UnmarshalBinary(b); err != nil {
			if len(b) < FrameLen && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("short input: %v", err)
			}
			return
		}
		out, err := f1.MarshalBinary()
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		if string(out) != string(b[:FrameLen]) {
			t.Fatalf("round trip changed the frame:\nin  %x\nout %x", b[:FrameLen], out)
		}
		var f2 Frame
		if err := f2.UnmarshalBinary(out); err != nil || f2 != f1 {
			t.Fatalf("second decode: %v, %+v != %+v", err, f2, f1)
		}
	})
}
