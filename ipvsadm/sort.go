package ipvsadm

import (
	"net/netip"

	"github.com/gvs-project/gvs/control"
)

// Listings are sorted as ipvsadm sorts them: qsort with libipvs's
// ipvs_cmp_services and ipvs_cmp_dests. Both compare addresses by
// subtracting them as 32-bit unsigned integers and reading the result as
// a signed int, so two addresses 2^31 or more apart compare "backwards"
// (10.0.0.1 sorts after 192.168.0.1). The comparison is therefore not a
// total order, and the result depends on the sorting algorithm: glibc's
// qsort is a top-down merge sort (msort.c), reproduced here step for step
// so that gvsadm lists in exactly ipvsadm's order.

// msort is glibc's msort_with_tmp: split at n/2, sort both halves, merge
// taking from the left run while cmp(left, right) <= 0.
func msort[T any](s []T, cmp func(a, b *T) int) {
	if len(s) < 2 {
		return
	}
	tmp := make([]T, len(s))
	msortRec(s, tmp, cmp)
}

func msortRec[T any](b, tmp []T, cmp func(a, b *T) int) {
	n := len(b)
	if n <= 1 {
		return
	}
	n1 := n / 2
	b1, b2 := b[:n1], b[n1:]
	msortRec(b1, tmp, cmp)
	msortRec(b2, tmp, cmp)
	i, j, k := 0, 0, 0
	for i < len(b1) && j < len(b2) {
		if cmp(&b1[i], &b2[j]) <= 0 {
			tmp[k] = b1[i]
			i++
		} else {
			tmp[k] = b2[j]
			j++
		}
		k++
	}
	// glibc copies what is left of the first run after the merged part,
	// then copies tmp back; what is left of the second run is in place.
	k += copy(tmp[k:], b1[i:])
	copy(b, tmp[:k])
}

// addrWord is an IPv4 address as the host-order integer ntohl returns.
func addrWord(a netip.Addr) uint32 {
	b := a.Unmap().As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// cmpAddr is libipvs's address comparison: for IPv4, ntohl(a) - ntohl(b)
// stored in an int; for IPv6 the same over the four 32-bit words.
func cmpAddr(a, b netip.Addr) int {
	a, b = a.Unmap(), b.Unmap()
	if a.Is6() {
		x, y := a.As16(), b.As16()
		for i := 0; i < 16; i += 4 {
			wa := uint32(x[i])<<24 | uint32(x[i+1])<<16 | uint32(x[i+2])<<8 | uint32(x[i+3])
			wb := uint32(y[i])<<24 | uint32(y[i+1])<<16 | uint32(y[i+2])<<8 | uint32(y[i+3])
			if r := int32(wa - wb); r != 0 {
				return int(r)
			}
		}
		return 0
	}
	if !a.Is4() || !b.Is4() {
		return 0
	}
	return int(int32(addrWord(a) - addrWord(b)))
}

// protoNumber is the IP protocol number of a control protocol name.
func protoNumber(p string) int {
	switch p {
	case control.TCP:
		return 6
	case control.UDP:
		return 17
	case "sctp":
		return 132
	}
	return 0
}

// afNumber is AF_INET or AF_INET6 for an address.
func afNumber(a netip.Addr) int {
	if a.Unmap().Is4() {
		return 2 // AF_INET
	}
	return 10 // AF_INET6
}

// cmpServices is ipvs_cmp_services: fwmark, family, protocol, address,
// port. gvs has no fwmark services, so the first key is always equal.
func cmpServices(s1, s2 *control.Service) int {
	if r := afNumber(s1.Addr) - afNumber(s2.Addr); r != 0 {
		return r
	}
	if r := protoNumber(s1.Protocol) - protoNumber(s2.Protocol); r != 0 {
		return r
	}
	if r := cmpAddr(s1.Addr, s2.Addr); r != 0 {
		return r
	}
	return int(s1.Port) - int(s2.Port)
}

// cmpDests is ipvs_cmp_dests: address, then port.
func cmpDests(d1, d2 *control.Dest) int {
	if r := cmpAddr(d1.Addr, d2.Addr); r != 0 {
		return r
	}
	return int(d1.Port) - int(d2.Port)
}

// sortServices sorts services as ipvsadm does (in place).
func sortServices(s []control.Service) { msort(s, cmpServices) }

// sortDests sorts destinations as ipvsadm does (in place).
func sortDests(d []control.Dest) { msort(d, cmpDests) }
