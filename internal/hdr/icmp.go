package hdr

import "encoding/binary"

// ICMPv4 message layout (RFC 792): an 8-byte header, then, for the error
// messages, the quoted original datagram.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     rest of header: unused / next-hop MTU / pointer / gateway |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|      Internet Header + leading bytes of the original datagram |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	// ICMPv4HeaderLen is the length of the ICMP header.
	ICMPv4HeaderLen = 8

	icmpType     = 0
	icmpCode     = 1
	icmpChecksum = 2
	icmpRest     = 4

	// icmpQuoteMinL4 is how much of the original payload an error must
	// quote after the original IP header: 64 bits (RFC 792), enough for
	// the ports of TCP and UDP.
	icmpQuoteMinL4 = 8

	// icmpErrorMaxLen bounds an ICMP error datagram: RFC 1812 section
	// 4.3.2.3 quotes "as much of the original datagram as possible without
	// the length of the ICMP datagram exceeding 576 bytes", and Linux's
	// icmp_send does the same.
	icmpErrorMaxLen = 576

	// icmpTypeMax is the highest ICMP type Linux knows (NR_ICMP_TYPES,
	// ICMP_ADDRESSREPLY); icmp_send will not answer an ICMP message of a
	// type above it.
	icmpTypeMax = 18

	// TOS of an ICMP error, as Linux's icmp_send sets it: the original's
	// TOS bits (IPTOS_TOS_MASK) with precedence "internetwork control"
	// (IPTOS_PREC_INTERNETCONTROL, RFC 791 section 3.1; RFC 1812 section
	// 4.3.2.5 recommends precedence 6 for ICMP errors).
	iptosTOSMask          = 0x1e
	iptosPrecInternetCtrl = 0xc0
)

// ICMPv4 types and codes gvs sends or relays.
const (
	ICMPv4EchoReply        = 0
	ICMPv4DestUnreachable  = 3
	ICMPv4SourceQuench     = 4
	ICMPv4Redirect         = 5
	ICMPv4Echo             = 8
	ICMPv4TimeExceeded     = 11
	ICMPv4ParameterProblem = 12

	// ICMPv4CodeFragNeeded is the Destination Unreachable code for
	// "fragmentation needed and DF set"; the next-hop MTU goes in the low
	// 16 bits of the rest of the header (RFC 1191 section 4).
	ICMPv4CodeFragNeeded = 4
	// ICMPv4CodeTTLExceeded is the Time Exceeded code "TTL exceeded in
	// transit".
	ICMPv4CodeTTLExceeded = 0
)

// icmpIsError reports whether an ICMP type is an error message, the
// types Linux marks .error in icmp_pointers.
func icmpIsError(t uint8) bool {
	switch t {
	case ICMPv4DestUnreachable, ICMPv4SourceQuench, ICMPv4Redirect,
		ICMPv4TimeExceeded, ICMPv4ParameterProblem:
		return true
	}
	return false
}

// isSingleHost reports whether a names a single host in the sense of
// RFC 1812 section 4.3.2.7: not 0.0.0.0/8 ("this network"), not
// 127.0.0.0/8 (loopback), not 224.0.0.0/4 (multicast) and not
// 240.0.0.0/4 (class E, which holds the limited broadcast
// 255.255.255.255). Directed broadcasts cannot be told from an address
// alone; the caller knows its subnets.
func isSingleHost(a [4]byte) bool {
	return a[0] != 0 && a[0] != 127 && a[0] < 224
}

// BuildICMPv4Error writes into dst an IPv4 datagram carrying an ICMP error
// about orig (an IPv4 datagram, from its header) and returns its length.
//
// typ and code are the ICMP type and code; typ must be an error type
// (3, 4, 5, 11, 12), else ErrNotICMPError. extra is the 32-bit "rest of
// header" in host order, written big-endian: the next-hop MTU in its low
// 16 bits for 3/4 (fragmentation needed), the pointer in its top byte for
// 12, the gateway for 5, 0 otherwise.
//
// The quote is orig from its IP header on, as much as fits in a 576-byte
// datagram (RFC 1812 section 4.3.2.3, as Linux's icmp_send: up to 548
// bytes), bounded by orig's total length and by len(dst): to keep a
// message within a smaller path MTU, pass dst[:mtu]. It returns
// ErrShortBuffer if dst cannot hold at least orig's header and 8 bytes of
// its payload (RFC 792), or all of orig if shorter.
//
// The outer header has no options, TOS (orig TOS & 0x1e) | 0xc0 as Linux
// sets it, DF clear, the given ttl, source src, destination to, and an ID
// equal to the ICMP checksum (distinct messages get distinct IDs with no
// state to keep; RFC 6864 asks no more of a datagram this small). Both
// checksums are computed.
//
// No error is built (an error matching ErrICMPSuppressed is returned) when
// RFC 1122 section 3.2.2 and RFC 1812 section 4.3.2.7 forbid one, as
// icmp_send checks: orig is a fragment other than the first
// (ErrQuotesFragment); orig is an ICMP error, or an ICMP message of
// unknown type (above 18) or too short to show its type
// (ErrQuotesICMPError); to, or orig's destination, does not name a single
// host (ErrNotUnicast). orig itself must be a well-formed IPv4 header
// (ErrMalformed); its total length may exceed len(orig) (a truncated
// copy), and then only the bytes present are quoted.
//
// dst may overlap orig (building the error in the receive buffer): orig is
// read before dst is written. BuildICMPv4Error allocates nothing.
func BuildICMPv4Error(dst []byte, typ, code uint8, extra uint32, src, to [4]byte, ttl uint8, orig []byte) (int, error) {
	if !icmpIsError(typ) {
		return 0, ErrNotICMPError
	}
	if len(orig) < IPv4MinLen || orig[ipv4VerIHL]>>4 != 4 {
		return 0, ErrMalformed
	}
	o := IPv4(orig)
	ihl := o.HeaderLen()
	total := o.TotalLen()
	if ihl < IPv4MinLen || ihl > len(orig) || total < ihl {
		return 0, ErrMalformed
	}
	avail := min(total, len(orig))
	if binary.BigEndian.Uint16(orig[ipv4FlagsOff:])&ipv4OffsetMask != 0 {
		return 0, ErrQuotesFragment
	}
	if !isSingleHost(to) || !isSingleHost(o.Destination()) {
		return 0, ErrNotUnicast
	}
	if o.Protocol() == ProtoICMP {
		if avail <= ihl {
			return 0, ErrQuotesICMPError
		}
		if t := orig[ihl+icmpType]; t > icmpTypeMax || icmpIsError(t) {
			return 0, ErrQuotesICMPError
		}
	}
	const hl = IPv4MinLen + ICMPv4HeaderLen
	limit := min(len(dst), icmpErrorMaxLen)
	q := min(avail, limit-hl)
	if q < min(avail, ihl+icmpQuoteMinL4) {
		return 0, ErrShortBuffer
	}
	tos := o.TOS()&iptosTOSMask | iptosPrecInternetCtrl

	n := hl + q
	b := dst[:n:n]
	copy(b[hl:], orig[:q]) // memmove: safe if dst overlaps orig
	m := b[IPv4MinLen:]
	m[icmpType] = typ
	m[icmpCode] = code
	binary.BigEndian.PutUint32(m[icmpRest:], extra)
	m[icmpChecksum], m[icmpChecksum+1] = 0, 0
	c := ^Fold(Sum(m, 0))
	binary.BigEndian.PutUint16(m[icmpChecksum:], c)

	IPv4(b).Encode(&IPv4Fields{
		TOS:      tos,
		TotalLen: uint16(n),
		ID:       c,
		TTL:      ttl,
		Protocol: ProtoICMP,
		Src:      src,
		Dst:      to,
	})
	return n, nil
}

// ParseICMPv4Error parses pkt, an IPv4 datagram from its header, as an
// ICMP error message, for relaying it (NAT: rewrite the quoted header and
// ports; TUN: find the flow the error belongs to). It reports ok only if:
// pkt is a well-formed, unfragmented IPv4 datagram (bytes past its total
// length are ignored) carrying ICMP with a valid checksum; the type is an
// error type (3, 4, 5, 11, 12); and the quote holds a well-formed IPv4
// header (version 4, IHL >= 5) followed by at least 8 bytes.
//
// quoted is the quoted IPv4 header, exactly its IHL*4 bytes; quotedL4 is
// everything after it to the end of the ICMP message: at least 8 bytes,
// the start of the original transport header (ports in the first 4), and
// possibly more (a longer quote, RFC 4884 extensions). Both alias pkt, so
// a relay can rewrite them in place (and must then fix the ICMP checksum);
// their capacity ends with their length. The quoted header's own checksum
// and total length are not checked: routers quote what they hold, and the
// quote is usually truncated.
func ParseICMPv4Error(pkt []byte) (typ, code uint8, quoted IPv4, quotedL4 []byte, ok bool) {
	ihl, total, err := ipv4Bounds(pkt, false)
	if err != nil {
		return 0, 0, nil, nil, false
	}
	ip := IPv4(pkt)
	if ip.Protocol() != ProtoICMP || ip.IsFragment() {
		return 0, 0, nil, nil, false
	}
	m := pkt[ihl:total]
	if len(m) < ICMPv4HeaderLen+IPv4MinLen+icmpQuoteMinL4 {
		return 0, 0, nil, nil, false
	}
	// A correct checksum makes the sum over the message all ones.
	if Fold(Sum(m, 0)) != 0xffff {
		return 0, 0, nil, nil, false
	}
	typ, code = m[icmpType], m[icmpCode]
	if !icmpIsError(typ) {
		return 0, 0, nil, nil, false
	}
	in := m[ICMPv4HeaderLen:]
	if in[ipv4VerIHL]>>4 != 4 {
		return 0, 0, nil, nil, false
	}
	qihl := int(in[ipv4VerIHL]&0x0f) * 4
	if qihl < IPv4MinLen || len(in) < qihl+icmpQuoteMinL4 {
		return 0, 0, nil, nil, false
	}
	return typ, code, IPv4(in[:qihl:qihl]), in[qihl:len(in):len(in)], true
}
