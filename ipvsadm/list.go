package ipvsadm

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/gvs-project/gvs/control"
)

// The writers in this file reproduce ipvsadm 1.31's listings byte for
// byte. Each names the C function it follows and quotes its printf
// formats; C pads and truncates by bytes, so do they (fmt pads runes).

// defaultIPVSVersion is the IPVS version gvs follows, printed when the
// daemon does not say.
const defaultIPVSVersion = "1.2.1"

// addrportNameMax is the buffer addrport_to_anyname writes into with
// snprintf(buf, 60, ...): names are cut to 59 bytes.
const addrportNameMax = 59

// Widths at which listings cut names: print_service_entry writes a NUL
// at svc_name[33] and dname[28] (IPv4 only).
const (
	svcNameCut  = 33
	destNameCut = 28
)

// writer accumulates the first write error.
type writer struct {
	w   io.Writer
	err error
}

func (w *writer) str(s string) {
	if w.err == nil {
		_, w.err = io.WriteString(w.w, s)
	}
}

func (w *writer) printf(format string, args ...any) { w.str(fmt.Sprintf(format, args...)) }

// padRight is C's "%-Ns".
func padRight(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return s + strings.Repeat(" ", n-len(s))
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// addrportToAnyname is ipvsadm's addrport_to_anyname: "addr:port" with
// -n, else "host:service" where names resolve, in brackets for IPv6.
func addrportToAnyname(addr netip.Addr, port uint16, proto string, f Format, names Names) string {
	addr = addr.Unmap()
	var host, svc string
	if f&FmtNumeric != 0 {
		host, svc = addr.String(), strconv.Itoa(int(port))
	} else {
		host = addr.String()
		if n, ok := names.HostByAddr(addr); ok {
			host = n
		}
		svc = strconv.Itoa(int(port))
		switch proto {
		case control.TCP, control.UDP, "sctp":
			if n, ok := names.ServiceByPort(port, proto); ok {
				svc = n
			}
		}
	}
	var s string
	if addr.Is4() {
		s = host + ":" + svc
	} else {
		s = "[" + host + "]:" + svc
	}
	return cut(s, addrportNameMax)
}

// printLargenum is ipvsadm's print_largenum: "%9llu" scaled to K, M, G
// or T, or with --exact the whole number right-aligned in at least nine
// columns (one more than its length past eight digits).
func printLargenum(w *writer, i uint64, f Format) {
	if f&FmtExact != 0 {
		n := len(strconv.FormatUint(i, 10))
		width := n + 1
		if n <= 8 {
			width = 9
		}
		w.printf("%*d", width, i)
		return
	}
	switch {
	case i < 100000000: // less than 100 million
		w.printf("%9d", i)
	case i < 1000000000: // less than 1 billion
		w.printf("%8dK", i/1000)
	case i < 100000000000: // less than 100 billion
		w.printf("%8dM", i/1000000)
	case i < 100000000000000: // less than 100 trillion
		w.printf("%8dG", i/1000000000)
	default:
		w.printf("%8dT", i/1000000000000)
	}
}

// protocolName is ipvsadm's protocol_name.
func protocolName(p string) string {
	switch p {
	case control.TCP:
		return "TCP"
	case control.UDP:
		return "UDP"
	case "sctp":
		return "SCTP"
	}
	return "?"
}

// optionFromProtocol is ipvsadm's option_from_protocol.
func optionFromProtocol(p string) string {
	switch p {
	case control.TCP:
		return "-t"
	case control.UDP:
		return "-u"
	case "sctp":
		return "--sctp-service"
	}
	return "--xxx-service"
}

// fwdName is ipvsadm's fwd_name, plus FullNat.
func fwdName(fwd string) string {
	switch fwd {
	case control.FwdMasq:
		return "Masq"
	case "local":
		return "Local"
	case control.FwdTunnel:
		return "Tunnel"
	case control.FwdRoute:
		return "Route"
	case control.FwdFullNat:
		return "FullNat"
	case "":
		return "(null)" // glibc's printf of a NULL %s
	}
	return fwd
}

// fwdSwitch is ipvsadm's fwd_switch, plus --fullnat.
func fwdSwitch(fwd string) string {
	switch fwd {
	case control.FwdMasq:
		return "-m"
	case control.FwdTunnel:
		return "-i"
	case "local", control.FwdRoute:
		return "-g"
	case control.FwdFullNat:
		return "--fullnat"
	}
	return "(null)"
}

// schedFlagsText is ipvsadm's print_sched_flags.
func schedFlagsText(sched string, f uint32) string {
	var flags []string
	switch sched {
	case "sh", "mh":
		if f&schedFlag1 != 0 {
			flags = append(flags, sched+"-fallback")
		}
		if f&schedFlag2 != 0 {
			flags = append(flags, sched+"-port")
		}
	default:
		if f&schedFlag1 != 0 {
			flags = append(flags, "flag-1")
		}
		if f&schedFlag2 != 0 {
			flags = append(flags, "flag-2")
		}
		if f&schedFlag3 != 0 {
			flags = append(flags, "flag-3")
		}
	}
	return strings.Join(flags, ",")
}

// netmaskWord is the service's persistence mask in host order.
func netmaskWord(prefix uint8) uint32 {
	if prefix == 0 || prefix >= 32 {
		return 0xffffffff
	}
	return ^uint32(0) << (32 - prefix)
}

// printTitle is ipvsadm's print_title.
func printTitle(w *writer, f Format) {
	switch {
	case f&FmtStats != 0:
		// "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n"
		w.printf("%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
	case f&FmtRate != 0:
		w.printf("%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
	case f&FmtThresholds != 0:
		// "%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n"
		w.printf("%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn")
	case f&FmtPersistentConn != 0:
		// "%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n"
		w.printf("%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn")
	case f&FmtTunInfo != 0:
		w.str("Prot LocalAddress:Port Scheduler Flags\n" +
			"  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n")
	case f&FmtRule == 0:
		w.str("Prot LocalAddress:Port Scheduler Flags\n" +
			"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
	}
}

// printServiceEntry is ipvsadm's print_service_entry: the service line
// (or -A rule) and one line (or -a rule) per destination.
func printServiceEntry(w *writer, se *control.Service, f Format, names Names) {
	v6 := !se.Addr.Unmap().Is4()
	vname := addrportToAnyname(se.Addr, se.Port, se.Protocol, f, names)
	var svcName string
	if f&FmtRule != 0 {
		// snprintf(svc_name, sizeof(svc_name), "%s %s", stype, vname)
		svcName = optionFromProtocol(se.Protocol) + " " + vname
	} else {
		// snprintf(svc_name, sizeof(svc_name), "%-4s %s", stype, vname)
		svcName = padRight(protocolName(se.Protocol), 4) + " " + vname
		if !v6 {
			svcName = cut(svcName, svcNameCut)
		}
	}

	flags := schedFlagBits(se.SchedFlags)
	mask := netmaskWord(se.Netmask)
	switch {
	case f&FmtRule != 0:
		// printf("-A %s -s %s", svc_name, se->sched_name)
		w.printf("-A %s -s %s", svcName, se.Scheduler)
		if se.Persistent {
			w.printf(" -p %d", se.Timeout)
			if !v6 && mask != 0xffffffff {
				w.printf(" -M %s", dotted(mask))
			}
		}
		if se.PE != "" {
			w.printf(" --pe %s", se.PE)
		}
		if se.OnePacket {
			w.str(" -o")
		}
		if flags&schedFlagAll != 0 {
			w.str(" -b ")
			w.str(schedFlagsText(se.Scheduler, flags))
		}
	case f&FmtStats != 0:
		// printf("%-33s", svc_name) and print_largenum for each counter
		w.str(padRight(svcName, 33))
		printLargenum(w, se.Stats.Conns, f)
		printLargenum(w, se.Stats.InPkts, f)
		printLargenum(w, se.Stats.OutPkts, f)
		printLargenum(w, se.Stats.InBytes, f)
		printLargenum(w, se.Stats.OutBytes, f)
	case f&FmtRate != 0:
		w.str(padRight(svcName, 33))
		printLargenum(w, se.Rates.Conns, f)
		printLargenum(w, se.Rates.InPkts, f)
		printLargenum(w, se.Rates.OutPkts, f)
		printLargenum(w, se.Rates.InBytes, f)
		printLargenum(w, se.Rates.OutBytes, f)
	default:
		// printf("%s %s", svc_name, se->sched_name)
		w.printf("%s %s", svcName, se.Scheduler)
		if flags&schedFlagAll != 0 {
			w.str(" (" + schedFlagsText(se.Scheduler, flags) + ")")
		}
		if se.Persistent {
			w.printf(" persistent %d", se.Timeout)
			if !v6 && mask != 0xffffffff {
				w.printf(" mask %s", dotted(mask))
			}
			if se.PE != "" {
				w.printf(" pe %s", se.PE)
			}
		}
		if se.OnePacket {
			w.str(" ops")
		}
	}
	w.str("\n")
	if f&FmtRule != 0 {
		writeServiceCheckRule(w, se, svcName)
	}

	dests := se.Dests
	if f&FmtNoSort == 0 {
		dests = slices.Clone(dests)
		sortDests(dests)
	}
	if f&FmtRule != 0 {
		// gvs's FULLNAT local addresses, saved as DPVS's ipvsadm adds
		// them (its own -S does not save them): after the servers.
		defer func() {
			las := slices.Clone(se.LocalAddrs)
			slices.SortFunc(las, func(a, b netip.Addr) int { return a.Compare(b) })
			for _, a := range las {
				w.printf("-P %s -z %s\n", svcName, a)
			}
		}()
	}
	for i := range dests {
		e := &dests[i]
		dname := addrportToAnyname(e.Addr, e.Port, se.Protocol, f, names)
		if f&FmtRule == 0 && e.Addr.Unmap().Is4() {
			dname = cut(dname, destNameCut)
		}
		switch {
		case f&FmtRule != 0:
			if e.Forward == control.FwdTunnel {
				// print_tunnel_rule, IP_VS_CONN_F_TUNNEL_TYPE_IPIP:
				// "-a %s -r %s %s -w %d --tun-type %s\n"
				w.printf("-a %s -r %s %s -w %d --tun-type %s\n",
					svcName, dname, fwdSwitch(e.Forward), e.Weight, tunnames[tunIPIP])
			} else {
				// "-a %s -r %s %s -w %d\n"
				w.printf("-a %s -r %s %s -w %d\n", svcName, dname, fwdSwitch(e.Forward), e.Weight)
			}
			writeCheckRule(w, svcName, dname, e)
		case f&FmtStats != 0:
			// printf("  -> %-28s", dname) and print_largenum for each counter
			w.str("  -> " + padRight(dname, 28))
			printLargenum(w, e.Stats.Conns, f)
			printLargenum(w, e.Stats.InPkts, f)
			printLargenum(w, e.Stats.OutPkts, f)
			printLargenum(w, e.Stats.InBytes, f)
			printLargenum(w, e.Stats.OutBytes, f)
			w.str("\n")
		case f&FmtRate != 0:
			// "  -> %-28s %8llu %8llu %8llu" then print_largenum(inbps, outbps)
			w.printf("  -> %s %8d %8d %8d", padRight(dname, 28), e.Rates.Conns, e.Rates.InPkts, e.Rates.OutPkts)
			printLargenum(w, e.Rates.InBytes, f)
			printLargenum(w, e.Rates.OutBytes, f)
			w.str("\n")
		case f&FmtThresholds != 0:
			// "  -> %-28s %-10u %-10u %-10u %-10u\n"
			w.printf("  -> %s %-10d %-10d %-10d %-10d\n", padRight(dname, 28),
				e.UThreshold, e.LThreshold, e.ActiveConns, e.InactiveConns)
		case f&FmtPersistentConn != 0:
			// "  -> %-28s %-9u %-11u %-10u %-10u\n"
			w.printf("  -> %s %-9d %-11d %-10d %-10d\n", padRight(dname, 28),
				uint32(e.Weight), e.PersistConns, e.ActiveConns, e.InactiveConns)
		case f&FmtTunInfo != 0:
			// "  -> %-28s %-7s %-13s %-6d %-10u %-10u\n"; fwd_tun_info
			// gives "ipip" for IPIP tunnels, NULL ("n/a") otherwise.
			ti := "n/a"
			if e.Forward == control.FwdTunnel {
				ti = tunnames[tunIPIP]
			}
			w.printf("  -> %s %s %s %-6d %-10d %-10d\n", padRight(dname, 28),
				padRight(fwdName(e.Forward), 7), padRight(ti, 13), e.Weight, e.ActiveConns, e.InactiveConns)
		default:
			// "  -> %-28s %-7s %-6d %-10u %-10u\n"
			w.printf("  -> %s %s %-6d %-10d %-10d\n", padRight(dname, 28),
				padRight(fwdName(e.Forward), 7), e.Weight, e.ActiveConns, e.InactiveConns)
		}
	}
}

// WriteLaddrs writes gvsadm -G: each service with FULLNAT local addresses,
// and its addresses, in the layout of DPVS's ipvsadm -G:
//
//	VIP:VPORT            TOTAL    SNAT_IP
//	TCP  192.168.150.100:80 2
//	                              192.168.150.200
//	                              192.168.150.201
func WriteLaddrs(out io.Writer, services []control.Service, f Format, names Names) error {
	w := &writer{w: out}
	services = slices.Clone(services)
	sortServices(services)
	w.printf("%-20s %-8s %s\n", "VIP:VPORT", "TOTAL", "SNAT_IP")
	for i := range services {
		se := &services[i]
		if len(se.LocalAddrs) == 0 {
			continue
		}
		proto := "TCP"
		if se.Protocol == control.UDP {
			proto = "UDP"
		}
		vname := addrportToAnyname(se.Addr, se.Port, se.Protocol, f, names)
		w.printf("%s  %-15s %d\n", proto, vname, len(se.LocalAddrs))
		las := slices.Clone(se.LocalAddrs)
		slices.SortFunc(las, func(a, b netip.Addr) int { return a.Compare(b) })
		for _, a := range las {
			w.printf("%-30s%s\n", "", a)
		}
	}
	return w.err
}

// WriteList writes ipvsadm's list_all: with FmtRule the -S rules,
// otherwise the "IP Virtual Server version" header (from info; nil means
// the defaults), the column titles and every service. Services are
// sorted as ipvsadm sorts them unless f has FmtNoSort; the slice is not
// modified.
func WriteList(out io.Writer, info *control.Info, services []control.Service, f Format, names Names) error {
	w := &writer{w: out}
	if f&FmtRule == 0 {
		w.str(headerLine(info))
	}
	if f&FmtNoSort == 0 {
		services = slices.Clone(services)
		sortServices(services)
	}
	printTitle(w, f)
	for i := range services {
		printServiceEntry(w, &services[i], f, names)
	}
	return w.err
}

// WriteService writes ipvsadm's list_service: the column titles and one
// service, without the version header.
func WriteService(out io.Writer, svc *control.Service, f Format, names Names) error {
	w := &writer{w: out}
	printTitle(w, f)
	printServiceEntry(w, svc, f, names)
	return w.err
}

// WriteConns writes ipvsadm's list_conn (-L -c) from the daemon's
// connection table, in the order given.
func WriteConns(out io.Writer, conns []control.Conn, f Format, names Names) error {
	w := &writer{w: out}
	w.str("IPVS connection entries\n")
	if f&FmtPersistentConn != 0 {
		// "pro expire %-11s %-18s %-18s %-18s %-16s %s\n"
		w.printf("pro expire %-11s %-18s %-18s %-18s %-16s %s\n",
			"state", "source", "virtual", "destination", "pe name", "pe_data")
	} else {
		// "pro expire %-11s %-18s %-18s %s\n"
		w.printf("pro expire %-11s %-18s %-18s %s\n", "state", "source", "virtual", "destination")
	}
	for i := range conns {
		c := &conns[i]
		proto := strings.ToLower(c.Protocol)
		cname := addrportToAnyname(c.Client.Addr(), c.Client.Port(), proto, f, names)
		vname := addrportToAnyname(c.Virtual.Addr(), c.Virtual.Port(), proto, f, names)
		dname := addrportToAnyname(c.Dest.Addr(), c.Dest.Port(), proto, f, names)
		// sprintf(expire_str, "%02d:%02d", minutes, seconds)
		expire := fmt.Sprintf("%02d:%02d", c.Expires/60, c.Expires%60)
		// gvs has no persistence engines, so no entry carries pe data
		// and every line takes the short form:
		// "%-3s %-6s %-11s %-18s %-18s %s\n"
		w.printf("%s %s %s %s %s %s\n", padRight(strings.ToUpper(c.Protocol), 3),
			padRight(expire, 6), padRight(c.State, 11), padRight(cname, 18), padRight(vname, 18), dname)
	}
	return w.err
}

// WriteTimeouts writes ipvsadm's list_timeout (-L --timeout).
func WriteTimeouts(out io.Writer, t *control.Timeouts) error {
	w := &writer{w: out}
	// "Timeout (tcp tcpfin udp): %d %d %d\n"
	w.printf("Timeout (tcp tcpfin udp): %d %d %d\n", int32(t.TCP), int32(t.TCPFin), int32(t.UDP))
	return w.err
}
