package docs

import (
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// Normalising: what changes from one run of a lab to the next is printed
// as a placeholder, so that an excerpt is the same in every run. Each
// guide lists the placeholders at its top:
//
//	<time>     a trace line's clock time
//	#<n>       gvs's number for a frame it received (it counts every frame
//	           on the interface, ARP and IPv6 ones included)
//	<age>      how long before the frame gvs learnt the next hop's MAC
//	<sum>      a checksum over fields that change from run to run (the IP
//	           ID, TCP sequence numbers and timestamps); checksums that
//	           depend on none (partial ones, gvs's outer IPIP header) are
//	           shown as they are
//	<exp>      gvsadm -Lnc's expire countdown
//	<n>        a packet or byte counter of gvsadm --stats (delayed ACKs
//	           make the number of packets vary); 0 is shown as it is
//	<state>    the state of an ARP cache entry (REACHABLE, STALE, ...)
//	<socket>   gvs's control socket, <pcap> its capture file
//
// and in the capture's frames (pcapview.go) <id> for an IP ID the kernel
// chose, <seq> and <ack> for TCP sequence numbers, <ts> for TCP
// timestamps, <win> and <ws> for the TCP window and window scale (they
// follow the host's TCP memory settings). gvsadm -Lnc lists connections in the order of its hash
// table, which is seeded at random: its rows are sorted by the client's
// address and port. Trailing blanks are removed from every line.

var (
	traceTime  = regexp.MustCompile(`^trace \d\d:\d\d:\d\d\.\d+ (\S+) #\d+:`)
	frameNum   = regexp.MustCompile(`\bgvs #\d+ `)
	learnedAge = regexp.MustCompile(`, learned from (an ARP reply|its own ARP request) \d[0-9.]*(?:ns|µs|us|ms|s|m[0-9.]*s|h[0-9hm.]*s) ago`)
	ipSum      = regexp.MustCompile(`^(\s+(?:inner )?ip\.sum\s+)0x[0-9a-f]+ -> 0x[0-9a-f]+$`)
	l4Sum      = regexp.MustCompile(`^(\s+(?:tcp|udp)\.sum\s+)(0x[0-9a-f]+) -> 0x[0-9a-f]+(.*)$`)
	connRow    = regexp.MustCompile(`^(\s*(?:TCP|UDP) )(?:\d\d:\d\d|<exp>)(\s+\S+\s+)(\S+)`)
	neighState = regexp.MustCompile(`^(\s*\S+ (?:dev \S+ )?lladdr \S+ )(?:REACHABLE|STALE|DELAY|PROBE|PERMANENT|NOARP)\b`)
	statsHead  = regexp.MustCompile(`\bConns\s+InPkts\s+OutPkts\s+InBytes\s+OutBytes\s*$`)
	statsRow   = regexp.MustCompile(`^(.*\S)(\s+\d+[KMGT]?)(\s+\d+[KMGT]?)(\s+\d+[KMGT]?)(\s+\d+[KMGT]?)(\s+\d+[KMGT]?)\s*$`)
)

// normalise rewrites text as the excerpts show it: paths holds pairs
// (what the run printed, what the guides show), replaced first.
func normalise(text string, paths []string) string {
	if len(paths) > 0 {
		text = strings.NewReplacer(paths...).Replace(text)
	}
	lines := strings.Split(text, "\n")
	inStats := false
	for i, line := range lines {
		line = strings.TrimRight(line, " \t")
		line = traceTime.ReplaceAllString(line, "trace <time> $1 #<n>:")
		line = frameNum.ReplaceAllString(line, "gvs #<n> ")
		line = learnedAge.ReplaceAllString(line, ", learned from $1 <age> ago")
		line = ipSum.ReplaceAllString(line, "$1<sum> -> <sum>")
		if m := l4Sum.FindStringSubmatch(line); m != nil {
			switch note := m[3]; {
			case strings.HasPrefix(note, " (partial:"):
				// The pseudo-header sum: addresses and length only.
			case strings.HasPrefix(note, " (was partial:"):
				line = m[1] + m[2] + " -> <sum>" + note
			default:
				line = m[1] + "<sum> -> <sum>" + note
			}
		}
		line = connRow.ReplaceAllString(line, "$1<exp>$2$3")
		line = neighState.ReplaceAllString(line, "$1<state>")
		switch {
		case statsHead.MatchString(line):
			inStats = true
		case inStats:
			if m := statsRow.FindStringSubmatch(line); m != nil {
				line = m[1] + m[2] + counterCell(m[3]) + counterCell(m[4]) + counterCell(m[5]) + counterCell(m[6])
			} else if strings.TrimSpace(line) != "-> RemoteAddress:Port" {
				inStats = false
			}
		}
		lines[i] = line
	}
	sortConnRows(lines)
	return strings.Join(lines, "\n")
}

// counterCell replaces a --stats counter other than 0 by <n>, right
// aligned in the same width.
func counterCell(cell string) string {
	v := strings.TrimLeft(cell, " ")
	if v == "0" {
		return cell
	}
	const ph = "<n>"
	if pad := len(cell) - len(ph); pad > 0 {
		return strings.Repeat(" ", pad) + ph
	}
	return " " + ph
}

// sortConnRows sorts each run of consecutive -Lnc rows by the client's
// address and port (their third column), in place.
func sortConnRows(lines []string) {
	for i := 0; i < len(lines); {
		if !connRow.MatchString(lines[i]) {
			i++
			continue
		}
		j := i
		for j < len(lines) && connRow.MatchString(lines[j]) {
			j++
		}
		slices.SortStableFunc(lines[i:j], func(a, b string) int {
			pa, _ := netip.ParseAddrPort(connRow.FindStringSubmatch(a)[3])
			pb, _ := netip.ParseAddrPort(connRow.FindStringSubmatch(b)[3])
			return pa.Compare(pb)
		})
		i = j
	}
}
