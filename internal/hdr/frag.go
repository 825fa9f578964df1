package hdr

import "encoding/binary"

const (
	// ipv4MaxOptionsLen is the most option bytes a header can carry:
	// a 4-bit IHL allows 60 bytes, 20 of them fixed.
	ipv4MaxOptionsLen = 40

	// ipv4FragUnit is the unit of the fragment offset field (RFC 791):
	// every fragment but the last carries a multiple of 8 bytes.
	ipv4FragUnit = 8

	// IPv4 option types with no length byte (RFC 791 section 3.1).
	ipv4OptEOL = 0 // end of option list
	ipv4OptNOP = 1 // no operation

	// ipv4OptCopied is the copied flag of an option type: the option
	// goes into every fragment, not only the first.
	ipv4OptCopied = 0x80
)

// copiedOptions writes into out the options of opts (the option bytes of
// an IPv4 header) that have the copied flag, padded with end-of-list bytes
// to a multiple of 4, and returns their padded length: the options of a
// non-first fragment (RFC 791 section 3.2, "fragmentation"). NOPs are
// dropped (RFC 791 allows it); an end-of-list ends the walk.
func copiedOptions(opts []byte, out *[ipv4MaxOptionsLen]byte) (int, error) {
	n := 0
walk:
	for i := 0; i < len(opts); {
		switch opts[i] {
		case ipv4OptEOL:
			break walk
		case ipv4OptNOP:
			i++
			continue
		}
		if i+1 >= len(opts) {
			return 0, ErrBadIPOptions
		}
		l := int(opts[i+1])
		if l < 2 || l > len(opts)-i {
			return 0, ErrBadIPOptions
		}
		if opts[i]&ipv4OptCopied != 0 {
			n += copy(out[n:], opts[i:i+l])
		}
		i += l
	}
	for n%4 != 0 {
		out[n] = ipv4OptEOL
		n++
	}
	return n, nil
}

// FragmentIPv4 fragments the IPv4 datagram pkt (starting at its header)
// into fragments of at most mtu bytes each, as the kernel's ip_fragment /
// ip_do_fragment do, and writes each fragment as a complete IPv4 packet.
//
// A datagram that fits (total length <= mtu) is copied unchanged into a
// single buffer. A larger one with DF set is not fragmented: FragmentIPv4
// returns ErrFragmentationNeeded and the caller answers with an ICMP
// "fragmentation needed" carrying mtu (see BuildICMPv4Error). Otherwise:
//   - every fragment's payload is a multiple of 8 bytes except the last
//     one's, and as large as mtu allows;
//   - the offset field counts 8-byte units from the start of the original
//     datagram; a fragment that is itself a fragment keeps its offset base
//     and, if it had MF, MF on all its pieces;
//   - MF is set on all but the last fragment; the reserved flag is cleared;
//   - the fragment at offset 0 carries the original header, options and
//     all; the others carry only the options whose copied flag is set
//     (RFC 791 section 3.2), packed and padded with end-of-list bytes to a
//     4-byte boundary, with IHL reduced to match. (The kernel instead keeps
//     the IHL and overwrites uncopied options with NOPs,
//     ip_options_fragment; both are valid RFC 791 fragmentation, and the
//     smaller header leaves more room for data.)
//   - total length and header checksum are set for each fragment; ID, TOS,
//     TTL, protocol and addresses are copied.
//
// The buffer contract is SegmentTCPv4's: next(size) is called once per
// fragment, in order, and must return a buffer of at least size bytes
// (not overlapping pkt) into whose first size bytes the fragment is
// written; a shorter buffer stops the work with ErrNoBuffer. All
// validation happens before the first call to next. FragmentIPv4
// allocates nothing.
//
// Errors: ErrMalformed (bad header, total length not within pkt, an offset
// that would run past 65535), ErrBadIPOptions, ErrFragmentationNeeded,
// ErrMTUTooSmall (mtu cannot carry the header and 8 bytes of data) and
// ErrNoBuffer.
func FragmentIPv4(pkt []byte, mtu int, next func(size int) []byte) error {
	ihl, total, err := ipv4Bounds(pkt, false)
	if err != nil {
		return err
	}
	if total <= mtu {
		b := next(total)
		if len(b) < total {
			return ErrNoBuffer
		}
		copy(b, pkt[:total])
		return nil
	}
	ff := binary.BigEndian.Uint16(pkt[ipv4FlagsOff:])
	if ff&ipv4FlagDF != 0 {
		return ErrFragmentationNeeded
	}
	if mtu-ihl < ipv4FragUnit {
		return ErrMTUTooSmall
	}
	base := int(ff&ipv4OffsetMask) * ipv4FragUnit
	data := pkt[ihl:total]
	if base+total > ipv4MaxTotalLen {
		return ErrMalformed
	}
	var opts [ipv4MaxOptionsLen]byte
	nopts, err := copiedOptions(pkt[IPv4MinLen:ihl], &opts)
	if err != nil {
		return err
	}
	more := ff & ipv4FlagMF

	for pos := 0; pos < len(data); {
		first := base+pos == 0
		h := IPv4MinLen + nopts
		if first {
			h = ihl
		}
		n := len(data) - pos
		last := true
		if n > mtu-h {
			n = (mtu - h) &^ (ipv4FragUnit - 1)
			last = false
		}
		size := h + n
		b := next(size)
		if len(b) < size {
			return ErrNoBuffer
		}
		b = b[:size:size]
		if first {
			copy(b, pkt[:ihl])
		} else {
			copy(b, pkt[:IPv4MinLen])
			copy(b[IPv4MinLen:], opts[:nopts])
			b[ipv4VerIHL] = 4<<4 | byte(h/4)
		}
		copy(b[h:], data[pos:pos+n])

		binary.BigEndian.PutUint16(b[ipv4TotalLen:], uint16(size))
		fo := uint16((base + pos) / ipv4FragUnit)
		if !last || more != 0 {
			fo |= ipv4FlagMF
		}
		binary.BigEndian.PutUint16(b[ipv4FlagsOff:], fo)
		frag := IPv4(b)
		frag.SetChecksum(0)
		frag.SetChecksum(frag.ComputeChecksum())
		pos += n
	}
	return nil
}
