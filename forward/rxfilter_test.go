package forward

import (
	"encoding/binary"
	"testing"

	"github.com/gvs-project/gvs/internal/afpacket"
)

// filterFrame builds an Ethernet frame with an IPv4 header: proto from src
// to dst, a marker byte after the IPv4 header, and EtherType etherType.
func filterFrame(etherType uint16, proto uint8, src, dst [4]byte, marker byte) []byte {
	f := make([]byte, 60)
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 0x02})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 0x01})
	binary.BigEndian.PutUint16(f[12:14], etherType)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], 46)
	ip[8] = 64
	ip[9] = proto
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	ip[20] = marker
	return f
}

// runFilter runs a classic BPF program the way the kernel runs a packet
// socket's filter, for the instructions ReceiveFilter uses: it returns the
// program's result, or 0 when a load reads past the frame.
func runFilter(t *testing.T, prog []afpacket.Instruction, frame []byte, pktType uint8, vlan bool) uint32 {
	t.Helper()
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Op {
		case bpfLdW, bpfLdH, bpfLdB:
			if in.K >= skfAdOff {
				switch in.K - skfAdOff {
				case skfAdPktType:
					a = uint32(pktType)
				case skfAdVLANTagPresent:
					a = 0
					if vlan {
						a = 1
					}
				default:
					t.Fatalf("instruction %d: ancillary load %d", pc, in.K-skfAdOff)
				}
				continue
			}
			size := map[uint16]uint32{bpfLdW: 4, bpfLdH: 2, bpfLdB: 1}[in.Op]
			if in.K+size > uint32(len(frame)) {
				return 0
			}
			b := frame[in.K : in.K+size]
			switch size {
			case 4:
				a = binary.BigEndian.Uint32(b)
			case 2:
				a = uint32(binary.BigEndian.Uint16(b))
			default:
				a = uint32(b[0])
			}
		case bpfJeqK:
			if a == in.K {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case bpfRetK:
			return in.K
		default:
			t.Fatalf("instruction %d: opcode %#x", pc, in.Op)
		}
	}
	t.Fatal("the program ran off its end")
	return 0
}

var (
	filterVIP   = [4]byte{192, 168, 150, 100}
	filterLocal = [4]byte{192, 168, 150, 200}
	filterReal  = [4]byte{192, 168, 150, 11}
	filterOther = [4]byte{192, 168, 150, 50}
	filterCIP   = [4]byte{192, 168, 150, 1}
)

// filterCases are frames and whether ReceiveFilter([VIP, local], [real])
// lets them into the ring.
var filterCases = []struct {
	name    string
	frame   []byte
	pktType uint8 // afpacket.PacketHost...
	vlan    bool
	want    bool
}{
	{"TCP to the VIP", filterFrame(0x0800, 6, filterCIP, filterVIP, 1), afpacket.PacketHost, false, true},
	{"UDP to the VIP", filterFrame(0x0800, 17, filterCIP, filterVIP, 2), afpacket.PacketHost, false, true},
	{"other protocol to the VIP (a later fragment's kin)", filterFrame(0x0800, 47, filterCIP, filterVIP, 3), afpacket.PacketHost, false, true},
	{"TCP to the FULLNAT local address", filterFrame(0x0800, 6, filterReal, filterLocal, 4), afpacket.PacketHost, false, true},
	{"a NAT real server's reply", filterFrame(0x0800, 6, filterReal, filterCIP, 5), afpacket.PacketHost, false, true},
	{"ICMP between others", filterFrame(0x0800, 1, filterOther, filterCIP, 6), afpacket.PacketHost, false, true},
	{"TCP between others", filterFrame(0x0800, 6, filterCIP, filterOther, 7), afpacket.PacketHost, false, false},
	{"UDP from the VIP", filterFrame(0x0800, 17, filterVIP, filterCIP, 8), afpacket.PacketHost, false, false},
	{"ARP", filterFrame(0x0806, 6, filterCIP, filterVIP, 9), afpacket.PacketHost, false, false},
	{"IPv6", filterFrame(0x86dd, 6, filterCIP, filterVIP, 10), afpacket.PacketHost, false, false},
	{"to the VIP, broadcast MAC", filterFrame(0x0800, 6, filterCIP, filterVIP, 11), afpacket.PacketBroadcast, false, false},
	{"to the VIP, another host's MAC", filterFrame(0x0800, 6, filterCIP, filterVIP, 12), afpacket.PacketOtherHost, false, false},
	{"to the VIP, VLAN-tagged", filterFrame(0x0800, 6, filterCIP, filterVIP, 13), afpacket.PacketHost, true, false},
}

func TestReceiveFilter(t *testing.T) {
	prog := ReceiveFilter([][4]byte{filterVIP, filterLocal, filterVIP}, [][4]byte{filterReal, filterReal})
	if want := receiveFilterFixed + 2*3; len(prog) != want {
		t.Errorf("%d instructions, want %d (duplicate addresses count once)", len(prog), want)
	}
	for _, tt := range filterCases {
		got := runFilter(t, prog, tt.frame, tt.pktType, tt.vlan) != 0
		if got != tt.want {
			t.Errorf("%s: accepted %v, want %v", tt.name, got, tt.want)
		}
	}
	if runFilter(t, prog, filterFrame(0x0800, 6, filterCIP, filterVIP, 1)[:29], afpacket.PacketHost, false) != 0 {
		t.Error("a frame cut off before the destination address was accepted")
	}

	// Without services, only ICMP comes in.
	empty := ReceiveFilter(nil, nil)
	if runFilter(t, empty, filterFrame(0x0800, 6, filterCIP, filterVIP, 1), afpacket.PacketHost, false) != 0 {
		t.Error("no addresses: TCP to the VIP was accepted")
	}
	if runFilter(t, empty, filterFrame(0x0800, 1, filterCIP, filterVIP, 1), afpacket.PacketHost, false) == 0 {
		t.Error("no addresses: ICMP was rejected")
	}
}

func TestReceiveFilterLimit(t *testing.T) {
	addrs := func(n int) [][4]byte {
		a := make([][4]byte, n)
		for i := range a {
			a[i] = [4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}
		}
		return a
	}
	most := addrs(maxReceiveFilterAddr)
	prog := ReceiveFilter(most[:len(most)/2], most[len(most)/2:])
	if prog == nil || len(prog) > afpacket.MaxInstructions {
		t.Fatalf("%d addresses: %d instructions, want a program within %d", maxReceiveFilterAddr, len(prog), afpacket.MaxInstructions)
	}
	last := most[len(most)-1]
	if runFilter(t, prog, filterFrame(0x0800, 6, last, filterCIP, 1), afpacket.PacketHost, false) == 0 {
		t.Error("the last source address was rejected")
	}
	if prog := ReceiveFilter(addrs(maxReceiveFilterAddr+1), nil); prog != nil {
		t.Errorf("%d addresses: %d instructions, want none (no filter)", maxReceiveFilterAddr+1, len(prog))
	}
}
