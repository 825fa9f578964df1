package hdr

import "errors"

// Sentinel errors of the data-path helpers (CompletePartial, SegmentTCPv4,
// FragmentIPv4, BuildICMPv4Error). They are package-level values so that
// returning one never allocates; compare with errors.Is.
var (
	// ErrMalformed reports an input packet whose headers do not hold
	// together: wrong IP version, a header length shorter than the minimum
	// or longer than the packet, a total length that disagrees with the
	// bytes given, a fragment offset that runs past 65535.
	ErrMalformed = errors.New("hdr: malformed packet")

	// ErrBadIPOptions reports IPv4 options that cannot be walked (an option
	// whose length byte is missing, below 2 or past the header's end).
	ErrBadIPOptions = errors.New("hdr: malformed IPv4 options")

	// ErrNotTCP reports a packet given to SegmentTCPv4 that is not TCP.
	ErrNotTCP = errors.New("hdr: not a TCP packet")

	// ErrIsFragment reports a packet that is an IPv4 fragment where a whole
	// datagram is needed (TCP segmentation).
	ErrIsFragment = errors.New("hdr: packet is an IPv4 fragment")

	// ErrBadMSS reports an MSS below 1 or one that makes a segment larger
	// than the 65535 bytes an IPv4 total length can describe.
	ErrBadMSS = errors.New("hdr: invalid MSS")

	// ErrMTUTooSmall reports an MTU that cannot carry the IPv4 header plus
	// the 8 bytes of payload every fragment but the last must carry.
	ErrMTUTooSmall = errors.New("hdr: MTU too small to fragment")

	// ErrFragmentationNeeded is returned by FragmentIPv4 for a packet larger
	// than the MTU with DF set: the caller drops it and sends an ICMP
	// "fragmentation needed" (type 3 code 4) error instead, as ip_fragment
	// does.
	ErrFragmentationNeeded = errors.New("hdr: packet exceeds MTU and has DF set")

	// ErrNoBuffer is returned when a next callback gives a buffer shorter
	// than asked for (typically nil: no free TX slot). Output written
	// before it is complete; nothing is written after it.
	ErrNoBuffer = errors.New("hdr: no output buffer")

	// ErrShortBuffer reports a destination too small for the output.
	ErrShortBuffer = errors.New("hdr: destination buffer too short")

	// ErrChecksumRange reports a csum_start/csum_offset pair that does not
	// lie inside the frame.
	ErrChecksumRange = errors.New("hdr: checksum start/offset outside the frame")

	// ErrNotICMPError reports an ICMP type given to BuildICMPv4Error that
	// is not an error type (3, 4, 5, 11, 12).
	ErrNotICMPError = errors.New("hdr: not an ICMP error type")
)

// ErrICMPSuppressed matches (through errors.Is) every error by which
// BuildICMPv4Error declines to answer a packet because the rules of RFC 1122
// section 3.2.2 and RFC 1812 section 4.3.2.7 forbid an ICMP error about it.
// Such a refusal is the normal outcome for those packets, not a fault.
var ErrICMPSuppressed = errors.New("hdr: ICMP error suppressed")

// icmpSuppressed is the type of the specific suppression errors; its Is
// method makes each of them match ErrICMPSuppressed.
type icmpSuppressed string

func (e icmpSuppressed) Error() string { return string(e) }

func (e icmpSuppressed) Is(target error) bool { return target == ErrICMPSuppressed }

// The specific reasons BuildICMPv4Error suppresses an error. Each matches
// ErrICMPSuppressed.
var (
	// ErrQuotesICMPError: the packet is itself an ICMP error (or an ICMP
	// message too short to tell, or of an unknown type), and errors are
	// never sent about ICMP errors.
	ErrQuotesICMPError error = icmpSuppressed("hdr: ICMP error suppressed: packet is an ICMP error")

	// ErrQuotesFragment: the packet is a fragment other than the first.
	ErrQuotesFragment error = icmpSuppressed("hdr: ICMP error suppressed: packet is a non-first fragment")

	// ErrNotUnicast: the error would go to, or is about a packet sent to,
	// an address that does not name a single host (0/8, 127/8, multicast,
	// class E, limited broadcast).
	ErrNotUnicast error = icmpSuppressed("hdr: ICMP error suppressed: address is not unicast")
)
