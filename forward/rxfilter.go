package forward

import (
	"bytes"
	"encoding/binary"
	"slices"

	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/internal/hdr"
)

// Classic BPF opcodes and ancillary offsets (include/uapi/linux/bpf_common.h,
// filter.h). The ancillary loads read the packet socket's view of the frame:
// SKF_AD_PKTTYPE is sll_pkttype, SKF_AD_VLAN_TAG_PRESENT whether the driver
// took an 802.1Q tag off.
const (
	bpfLdW  = 0x00 | 0x00 | 0x20 // BPF_LD | BPF_W | BPF_ABS
	bpfLdH  = 0x00 | 0x08 | 0x20 // BPF_LD | BPF_H | BPF_ABS
	bpfLdB  = 0x00 | 0x10 | 0x20 // BPF_LD | BPF_B | BPF_ABS
	bpfJeqK = 0x05 | 0x10 | 0x00 // BPF_JMP | BPF_JEQ | BPF_K
	bpfRetK = 0x06 | 0x00        // BPF_RET | BPF_K

	skfAdOff             = 0xfffff000 // SKF_AD_OFF, -0x1000
	skfAdPktType         = 4          // SKF_AD_PKTTYPE
	skfAdVLANTagPresent  = 48         // SKF_AD_VLAN_TAG_PRESENT
	packetHost           = 0          // PACKET_HOST
	filterAccept         = 0xffffffff // keep the whole frame
	filterReject         = 0
	etherOffIPProto      = hdr.EthernetLen + 9
	etherOffIPSrc        = hdr.EthernetLen + 12
	etherOffIPDst        = hdr.EthernetLen + 16
	receiveFilterFixed   = 15 // the program's instructions besides the addresses'
	maxReceiveFilterAddr = (afpacket.MaxInstructions - receiveFilterFixed) / 2
)

// ReceiveFilter returns the classic BPF program that keeps out of a
// worker's receive ring the frames the data path would leave to the kernel
// anyway, so that they cost neither a copy nor a wake-up (on a director
// whose interfaces carry other traffic, and in DR, whose replies the
// kernel routes past gvs, most frames). It accepts the frames that could
// be anything but NotHost, NotIPv4, VLAN or NotOurs:
//
//   - addressed to the interface's MAC (PACKET_HOST), without a VLAN tag
//     the driver took off, with EtherType IPv4; and of those
//   - every ICMP message (an error about a connection can come from any
//     router, to the client's address: handleICMP sorts them), and
//   - every frame to an address of dsts (virtual and FULLNAT local
//     addresses: every port and protocol, and so later fragments, which
//     have no ports), and
//   - every frame from an address of srcs (NAT real servers: their
//     replies).
//
// A frame too short for a field the program reads is rejected (the
// kernel ends the program with 0); IP options do not matter, the
// addresses come before them. Each address costs two instructions; with
// more distinct addresses than fit in the kernel's limit, ReceiveFilter
// returns nil: no filter, every frame copied, as without one.
func ReceiveFilter(dsts, srcs [][4]byte) []afpacket.Instruction {
	dsts, srcs = sortedAddrs(dsts), sortedAddrs(srcs)
	if len(dsts)+len(srcs) > maxReceiveFilterAddr {
		return nil
	}
	p := make([]afpacket.Instruction, 0, receiveFilterFixed+2*(len(dsts)+len(srcs)))
	// requireK continues only when A == k; otherwise rejects.
	requireK := func(k uint32) {
		p = append(p,
			afpacket.Instruction{Op: bpfJeqK, Jt: 1, K: k},
			afpacket.Instruction{Op: bpfRetK, K: filterReject})
	}
	// acceptK accepts when A == k; otherwise continues.
	acceptK := func(k uint32) {
		p = append(p,
			afpacket.Instruction{Op: bpfJeqK, Jf: 1, K: k},
			afpacket.Instruction{Op: bpfRetK, K: filterAccept})
	}
	p = append(p, afpacket.Instruction{Op: bpfLdW, K: skfAdOff + skfAdPktType})
	requireK(packetHost)
	p = append(p, afpacket.Instruction{Op: bpfLdW, K: skfAdOff + skfAdVLANTagPresent})
	requireK(0)
	p = append(p, afpacket.Instruction{Op: bpfLdH, K: 12})
	requireK(hdr.EtherTypeIPv4)
	p = append(p, afpacket.Instruction{Op: bpfLdB, K: etherOffIPProto})
	acceptK(hdr.ProtoICMP)
	if len(dsts) > 0 {
		p = append(p, afpacket.Instruction{Op: bpfLdW, K: etherOffIPDst})
		for _, a := range dsts {
			acceptK(binary.BigEndian.Uint32(a[:]))
		}
	}
	if len(srcs) > 0 {
		p = append(p, afpacket.Instruction{Op: bpfLdW, K: etherOffIPSrc})
		for _, a := range srcs {
			acceptK(binary.BigEndian.Uint32(a[:]))
		}
	}
	return append(p, afpacket.Instruction{Op: bpfRetK, K: filterReject})
}

// sortedAddrs returns the distinct addresses of addrs, sorted.
func sortedAddrs(addrs [][4]byte) [][4]byte {
	s := slices.Clone(addrs)
	slices.SortFunc(s, func(a, b [4]byte) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(s)
}
