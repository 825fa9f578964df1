package ipvsadm

import (
	"math"
	"net/netip"
	"strings"
)

// This file reproduces the C library and ipvsadm helpers whose exact
// acceptance rules decide whether an argument is valid: strtol,
// inet_aton, inet_pton(AF_INET6), and ipvsadm's string_to_number,
// parse_service and parse_netmask.

// isCSpace is C's isspace in the "C" locale.
func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// strtol10 is strtol(s, &end, 10) for a 64-bit long: it returns the value,
// the index where parsing stopped (0 when no digits were read, as C sets
// end = s) and whether the value overflowed (errno == ERANGE).
func strtol10(s string) (n int64, end int, overflow bool) {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	var u uint64
	for i < len(s) && isDigit(s[i]) {
		d := uint64(s[i] - '0')
		if !overflow {
			if u > (math.MaxUint64-d)/10 {
				overflow = true
			} else {
				u = u*10 + d
			}
		}
		i++
	}
	if i == start {
		return 0, 0, false
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++ // LONG_MIN's magnitude
	}
	if overflow || u > limit {
		if neg {
			return math.MinInt64, i, true
		}
		return math.MaxInt64, i, true
	}
	if neg {
		return -int64(u), i, false
	}
	return int64(u), i, false
}

// stringToNumber is ipvsadm's string_to_number: the whole of s must be a
// base-10 long in [min, max]; otherwise it returns -1.
func stringToNumber(s string, min, max int64) int64 {
	n, end, overflow := strtol10(s)
	if end == len(s) && end != 0 && !overflow && min <= n && n <= max {
		return n
	}
	return -1
}

// strtoul0 is strtoul(s, &end, 0) for a string that starts with a digit
// (inet_aton checks that first): 0x/0X means hex, a leading 0 octal,
// anything else decimal. It returns the value, the bytes consumed and
// whether it overflowed an unsigned long.
func strtoul0(s string) (v uint64, n int, overflow bool) {
	base := uint64(10)
	i := 0
	if s[0] == '0' {
		if len(s) > 2 && (s[1] == 'x' || s[1] == 'X') && hexVal(s[2]) >= 0 {
			base, i = 16, 2
		} else {
			base = 8
		}
	}
	for ; i < len(s); i++ {
		d := hexVal(s[i])
		if d < 0 || uint64(d) >= base {
			break
		}
		if !overflow {
			if v > (math.MaxUint64-uint64(d))/base {
				overflow = true
			} else {
				v = v*base + uint64(d)
			}
		}
	}
	return v, i, overflow
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// inetAton is glibc's inet_aton: "a.b.c.d", "a.b.c" (c is 16 bits),
// "a.b" (b is 24 bits) or "a" (32 bits), each part decimal, octal (0...)
// or hex (0x...), optionally followed by whitespace and anything.
func inetAton(s string) (netip.Addr, bool) {
	var parts [4]byte
	np := 0
	i := 0
	var val uint64
	digit := false
	for {
		if i >= len(s) || !isDigit(s[i]) {
			return netip.Addr{}, false
		}
		v, n, overflow := strtoul0(s[i:])
		if overflow || v > math.MaxUint32 {
			return netip.Addr{}, false
		}
		val = v
		digit = n > 0
		i += n
		if i < len(s) && s[i] == '.' {
			if np > 2 || val > 0xff {
				return netip.Addr{}, false
			}
			parts[np] = byte(val)
			np++
			i++
			continue
		}
		break
	}
	if i < len(s) && !isCSpace(s[i]) {
		return netip.Addr{}, false
	}
	if !digit {
		return netip.Addr{}, false
	}
	max := [4]uint64{0xffffffff, 0xffffff, 0xffff, 0xff}
	if val > max[np] {
		return netip.Addr{}, false
	}
	word := uint32(parts[0])<<24 | uint32(parts[1])<<16 | uint32(parts[2])<<8 | uint32(parts[3])
	word |= uint32(val)
	return netip.AddrFrom4([4]byte{byte(word >> 24), byte(word >> 16), byte(word >> 8), byte(word)}), true
}

// inetPton6 reports whether s is an IPv6 address as inet_pton(AF_INET6)
// accepts it (no zone, no surrounding space).
func inetPton6(s string) (netip.Addr, bool) {
	if !strings.Contains(s, ":") || strings.Contains(s, "%") {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		return netip.Addr{}, false
	}
	return a, true
}

// strIsDigit is ipvsadm's str_is_digit: true for "" and all-digit strings.
func strIsDigit(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// parse_service result bits.
const (
	serviceNone = 0
	serviceAddr = 1 << 0
	servicePort = 1 << 1
)

// endpoint is the part of ipvsadm's ipvs_service_t that parse_service
// fills in.
type endpoint struct {
	af   int // 0 (unset), 4 or 6
	addr netip.Addr
	port uint16
}

// parseService is ipvsadm's parse_service. It updates ep as the C code
// does (fields it does not reach keep their values) and returns the
// serviceAddr/servicePort bits, serviceNone on error. proto is the
// protocol used to look up a port name.
func parseService(buf string, proto string, ep *endpoint, names Names) int {
	if strIsDigit(buf) {
		return serviceNone
	}
	host, port, havePort := buf, "", false
	if buf[0] == '[' {
		inner := buf[1:]
		j := strings.IndexByte(inner, ']')
		if j < 0 {
			return serviceNone
		}
		rest := inner[j+1:]
		if !strings.HasPrefix(rest, ":") {
			return serviceNone
		}
		host, port, havePort = inner[:j], rest[1:], true
	}
	if a, ok := inetPton6(host); ok {
		ep.addr, ep.af = a, 6
	} else {
		// portp = strrchr(buf, ':') replaces the bracket's port
		// pointer, so "[1.2.3.4]:80" loses its port, as in ipvsadm.
		havePort = false
		if j := strings.LastIndexByte(host, ':'); j >= 0 {
			host, port, havePort = host[:j], host[j+1:], true
		}
		if a, ok := inetAton(host); ok {
			ep.addr, ep.af = a, 4
		} else if a, ok := names.AddrByHost(host); ok && a.Is4() {
			ep.addr, ep.af = a, 4
		} else {
			return serviceNone
		}
	}
	result := serviceAddr
	if havePort {
		result |= servicePort
		if n := stringToNumber(port, 0, 65535); n != -1 {
			ep.port = uint16(n)
		} else if p, ok := lookupPort(port, proto, names); ok {
			ep.port = p
		} else {
			return serviceNone
		}
	}
	return result
}

// lookupPort is ipvsadm's service_to_port: a name from the services
// database for tcp, udp or sctp; nothing for another protocol.
func lookupPort(name, proto string, names Names) (uint16, bool) {
	switch proto {
	case "tcp", "udp", "sctp":
		return names.PortByService(name, proto)
	}
	return 0, false
}

// parseNetmask is ipvsadm's parse_netmask: a dotted (inet_aton) mask or a
// host name that resolves to one. It returns the mask in host order.
func parseNetmask(buf string, names Names) (uint32, bool) {
	a, ok := inetAton(buf)
	if !ok {
		a, ok = names.AddrByHost(buf)
		if !ok || !a.Is4() {
			return 0, false
		}
	}
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), true
}
