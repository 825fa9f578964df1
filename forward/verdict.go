package forward

// Reason is a frame's verdict: forwarded, left alone, or why it was
// dropped.
type Reason uint8

const (
	// Forwarded: rewritten and queued for its real server.
	Forwarded Reason = iota

	// Left alone (not gvs's to handle; the kernel sees them as usual).
	NotHost     // not addressed to the interface's MAC (broadcast, multicast, other host)
	NotIPv4     // not IPv4 (ARP, IPv6, ...)
	NotOurs     // not to a virtual service
	NoService   // TCP or UDP to a virtual address, on a port (or protocol) no service has
	VLAN        // carries an 802.1Q tag
	Malformed   // IPv4 header that does not hold together: short, version, IHL, total length
	MalformedL4 // TCP or UDP header that does not hold together (see classify)

	// Dropped (to a virtual service, but not forwarded).
	Truncated   // longer than a receive slot
	Fragment    // a later IPv4 fragment whose first fragment gvs has not seen (or no longer remembers)
	BadChecksum // the IPv4 header checksum is wrong (the kernel's ip_rcv would drop it)
	BadFlags    // a TCP flag combination no stack sends (SYN+FIN, SYN+RST, none, ...)
	NoConn      // a TCP packet other than SYN with no connection entry
	NoDest      // the scheduler found no available real server
	DestGone    // the connection's real server was removed (ExpireNodestConn)
	Unresolved  // the real server's MAC address is not known (ARP)
	NoEgress    // the real server is on an interface this worker cannot send on
	TableFull   // the connection table is full
	TxFull      // no free transmit slot
	TTLExceeded // the packet would leave with TTL 0 (ICMP time exceeded sent)
	FragNeeded  // TUN: too big for the egress MTU with DF set (ICMP fragmentation needed sent)
	NoLocalPort // FULLNAT: no local address or port free

	numReasons
)

var reasonNames = [numReasons]string{
	Forwarded:   "forwarded",
	NotHost:     "not_host",
	NotIPv4:     "not_ipv4",
	NotOurs:     "not_ours",
	NoService:   "no_service",
	VLAN:        "vlan",
	Malformed:   "malformed",
	MalformedL4: "malformed_l4",
	Truncated:   "truncated",
	Fragment:    "frag_no_first",
	BadChecksum: "bad_ip_checksum",
	BadFlags:    "bad_tcp_flags",
	NoConn:      "no_conn",
	NoDest:      "no_dest",
	DestGone:    "dest_removed",
	Unresolved:  "arp_unresolved",
	NoEgress:    "no_egress",
	TableFull:   "table_full",
	TxFull:      "tx_full",
	TTLExceeded: "ttl_exceeded",
	FragNeeded:  "frag_needed",
	NoLocalPort: "no_local_port",
}

// String returns the reason's name, as used in logs and metrics.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Dropped reports whether frames with this verdict were to a virtual
// service but not forwarded.
func (r Reason) Dropped() bool { return r >= Truncated }

// Reasons returns every reason, in order.
func Reasons() []Reason {
	rs := make([]Reason, numReasons)
	for i := range rs {
		rs[i] = Reason(i)
	}
	return rs
}
