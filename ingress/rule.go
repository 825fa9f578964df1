package ingress

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// IP protocol numbers a Rule may match (IANA "Assigned Internet Protocol
// Numbers").
const (
	ProtoTCP = 6
	ProtoUDP = 17
)

// DefaultTable is the nftables table name used when Config.Table is empty.
const DefaultTable = "gvs"

// Priority is the priority of every ingress base chain the filter creates.
//
// Netdev ingress chains have no standard priorities (nft uses 0 when told
// nothing). gvs uses -500, well below 0, so that its chains run before an
// administrator's own netdev ingress chains at default priority: a frame gvs
// handles is dropped before anything else in nf_tables spends time on it or
// counts it. The choice does not affect gvs itself, whose ETH_P_ALL sockets
// see every frame before the ingress hook runs.
const Priority = -500

// Total is the key under which Filter.Dropped reports the sum over all
// interfaces. No interface can be named "" so it never collides.
const Total = ""

// ErrNotSupported is matched (errors.Is) by the error Open returns when the
// kernel lacks nf_tables, its netdev family, the ingress hook or one of the
// expressions the filter needs.
var ErrNotSupported = errors.New("nf_tables netdev ingress filtering not supported by this kernel")

// ErrInvalidRule is matched (errors.Is) by every *RuleError.
var ErrInvalidRule = errors.New("invalid rule")

// Rule matches IPv4 frames of one protocol (ProtoTCP or ProtoUDP) by address
// and port.
//
// Source=false matches the destination address and port: client -> VIP:port,
// what gvs handles in every forwarding mode. Source=true matches the source
// address and port: for NAT mode, the replies of a real server RIP:port that
// gvs rewrites, except those to an address of the host itself (fib daddr
// type local), which answer the director's own connections (health checks)
// and are the kernel's.
//
// Addr must be an IPv4 address (an IPv4-mapped IPv6 address is unmapped).
// Port 0 in a destination rule matches every port of the address and
// protocol (an IPVS port-0 service, which must be persistent); a source
// rule needs a port. Rule is a small comparable value.
type Rule struct {
	Protocol uint8
	Addr     netip.Addr
	Port     uint16
	Source   bool
}

// String formats the rule as nft would write its match, for example
// "ip daddr 192.168.1.10 tcp dport 80".
func (r Rule) String() string {
	dir, pdir := "daddr", "dport"
	if r.Source {
		dir, pdir = "saddr", "sport"
	}
	proto := fmt.Sprintf("ip protocol %d th", r.Protocol)
	switch r.Protocol {
	case ProtoTCP:
		proto = "tcp"
	case ProtoUDP:
		proto = "udp"
	}
	if r.Port == 0 {
		if proto == "tcp" || proto == "udp" {
			return fmt.Sprintf("ip %s %v ip protocol %s", dir, r.Addr, proto)
		}
		return fmt.Sprintf("ip %s %v ip protocol %d", dir, r.Addr, r.Protocol)
	}
	return fmt.Sprintf("ip %s %v %s %s %d", dir, r.Addr, proto, pdir, r.Port)
}

// RuleError reports a rule that Set refused. Nothing was changed.
type RuleError struct {
	Index int  // position in the slice passed to Set
	Rule  Rule // the rule as given
	Err   error
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("ingress: rule %d (%v): %v", e.Index, e.Rule, e.Err)
}

// Unwrap returns the reason, so errors.Is(err, ErrInvalidRule) holds.
func (e *RuleError) Unwrap() []error { return []error{ErrInvalidRule, e.Err} }

// Rule errors, wrapped in *RuleError.
var (
	errProtocol    = errors.New("protocol is neither TCP (6) nor UDP (17)")
	errNoAddr      = errors.New("address is not set")
	errNotIPv4     = errors.New("address is not IPv4 (only IPv4 is filtered for now)")
	errUnspecified = errors.New("address 0.0.0.0 matches nothing a client sends")
	errPortZero    = errors.New("port 0 is only for destination rules (every port of a VIP)")
)

// keyLen is the length of a set key: three nf_tables 32-bit registers.
// nf_tables pads every part of a concatenation to a multiple of 4 bytes
// (NFT_REG32_SIZE), so ipv4_addr . inet_proto . inet_service is 4+4+4
// bytes, not 4+1+2.
const keyLen = 12

// anyKeyLen is the length of a key of the any set: ipv4_addr . inet_proto,
// the first two registers of a key.
const anyKeyLen = 8

// key is one element of the dst or src set:
//
//	 0               1               2               3
//	+---------------+---------------+---------------+---------------+
//	|                 IPv4 address (network order)                  |  register 0
//	+---------------+---------------+---------------+---------------+
//	|   protocol    |                  zero padding                 |  register 1
//	+---------------+---------------+---------------+---------------+
//	|        port (network order)   |          zero padding         |  register 2
//	+---------------+---------------+---------------+---------------+
//
// This is exactly what the rule's payload loads leave in the registers:
// nft_payload zeroes the last 32-bit register it writes before copying a
// field shorter than 4 bytes into it.
type key [keyLen]byte

// check validates r and returns its set key. r.Addr may be IPv4-mapped.
func (r Rule) check() (key, error) {
	var k key
	if r.Protocol != ProtoTCP && r.Protocol != ProtoUDP {
		return k, errProtocol
	}
	a := r.Addr
	switch {
	case !a.IsValid():
		return k, errNoAddr
	case a.Is4In6():
		a = a.Unmap()
	case !a.Is4():
		return k, errNotIPv4
	}
	if a.IsUnspecified() {
		return k, errUnspecified
	}
	if r.Port == 0 && r.Source {
		return k, errPortZero
	}
	a4 := a.As4()
	copy(k[0:4], a4[:])
	k[4] = r.Protocol
	binary.BigEndian.PutUint16(k[8:10], r.Port)
	return k, nil
}

// keys validates every rule and splits their keys into the destination and
// source sets, without duplicates and in the order given.
func keys(rules []Rule) (dst, src, any []key, err error) {
	seen := make(map[key]bool, len(rules))
	seenSrc := make(map[key]bool)
	for i, r := range rules {
		k, err := r.check()
		if err != nil {
			return nil, nil, nil, &RuleError{Index: i, Rule: r, Err: err}
		}
		if r.Port == 0 {
			// Every port: the any set, keyed by address and protocol
			// (the first anyKeyLen bytes of the key).
			if !seen[k] {
				seen[k] = true
				any = append(any, k)
			}
			continue
		}
		if r.Source {
			if !seenSrc[k] {
				seenSrc[k] = true
				src = append(src, k)
			}
			continue
		}
		if !seen[k] {
			seen[k] = true
			dst = append(dst, k)
		}
	}
	return dst, src, any, nil
}
