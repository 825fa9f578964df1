package docs

import (
	"fmt"
	"net"
	"strings"

	"github.com/gvs-project/gvs/lab"
)

// An excerpt is a named piece of a lab run's output, normalised, that the
// guides quote between markers (splice.go). Its name says which run it
// comes from: "dr/trace-syn", "nat/lnc"; "seed/..." are the DR run's
// pieces the seed walk-through quotes.
type excerpt struct {
	name string
	mode lab.Mode // the run it is cut from
	cut  func(r *Run) (string, error)
}

// Steps of make demo's narration that excerpts quote whole, by the start
// of their titles (lab/demo.go and lab/lab.go print them).
const (
	stepVIP       = "node01: the VIP on the director's interface"
	stepDRReal    = "node02, node03: hide the VIP on lo"
	stepNATGw     = "node02, node03: the director is their default gateway"
	stepTUNReal   = "node02, node03: unwrap the director's IPIP packets"
	stepTUNRouter = "The router between the LANs"
	stepHTTPD     = "node02, node03: start the web servers"
	stepGvs       = "node01: start the director"
	stepGvsadm    = "node01: the notes' ipvsadm commands"
	stepRequests  = "client: 6 requests to the VIP"
	stepTrace     = "node01: what gvs did to the first connection's first frames"
	stepSockets   = "client: keep two connections open"
	stepTable     = "node01: the connection table gvs keeps"
	stepResult    = "Result"
)

// registry lists every excerpt the guides quote. Each one is used by at
// least one guide (TestGuidesUseEveryExcerpt).
func registry() []excerpt {
	var ex []excerpt
	add := func(name string, mode lab.Mode, cut func(r *Run) (string, error)) {
		ex = append(ex, excerpt{name, mode, cut})
	}
	whole := func(title string) func(r *Run) (string, error) {
		return func(r *Run) (string, error) { return r.step(title, true) }
	}
	// The seed walk-through: the DR demo, step by step.
	for name, title := range map[string]string{
		"seed/vip": stepVIP, "seed/realserver": stepDRReal, "seed/httpd": stepHTTPD, "seed/gvs": stepGvs,
		"seed/ipvsadm": stepGvsadm, "seed/curl": stepRequests, "seed/netstat": stepSockets, "seed/lnc": stepTable,
		"seed/result": stepResult, "seed/timeout": stepTimeout, "seed/neigh": stepNeigh, "seed/unplug": stepUnplug,
		"seed/syn-recv": stepSynRecv,
	} {
		add(name, lab.DR, whole(title))
	}
	for _, m := range lab.Modes {
		p := string(m) + "/"
		add(p+"gvsadm", m, whole(stepGvsadm))
		add(p+"trace-syn", m, func(r *Run) (string, error) { return r.traceBlock(0, "[SYN] -> forwarded") })
		add(p+"pcap-syn", m, func(r *Run) (string, error) { return r.pcapSYN() })
		ack := 1 // the client's ACK: after the SYN, or in NAT and FULLNAT after the SYN-ACK
		if m == lab.NAT || m == lab.FullNAT {
			ack = 2
		}
		add(p+"trace-ack", m, func(r *Run) (string, error) { return r.traceDecision(ack, "[ACK] -> forwarded") })
		add(p+"sockets", m, whole(stepSockets))
		add(p+"lnc", m, func(r *Run) (string, error) { return r.command(stepTable, "node01# gvsadm -Lnc") })
		add(p+"ln", m, func(r *Run) (string, error) { return r.command(stepTable, "node01# gvsadm -Ln") })
		add(p+"stats", m, whole(stepStats))
		switch m {
		case lab.NAT, lab.FullNAT:
			add(p+"trace-synack", m, func(r *Run) (string, error) { return r.traceBlock(1, "[SYN,ACK] -> forwarded") })
			add(p+"pcap-synack", m, func(r *Run) (string, error) { return r.pcapSYNACK() })
		case lab.DR, lab.TUN:
			add(p+"pcap-replies", m, func(r *Run) (string, error) { return r.pcapReplies() })
			add(p+"lo", m, whole(stepLo))
		}
		if m != lab.DR {
			add(p+"routes", m, whole(stepRoutes))
		}
	}
	add("dr/setup", lab.DR, whole(stepDRReal))
	add("nat/setup", lab.NAT, whole(stepNATGw))
	add("tun/setup", lab.TUN, whole(stepTUNReal))
	add("tun/router", lab.TUN, whole(stepTUNRouter))
	add("tun/tunnel", lab.TUN, whole(stepTunnel))
	return ex
}

// Excerpts cuts every excerpt of the modes in runs from them, normalised,
// by name.
func Excerpts(runs map[lab.Mode]*Run) (map[string]string, error) {
	out := map[string]string{}
	for _, e := range registry() {
		r := runs[e.mode]
		if r == nil {
			continue
		}
		text, err := e.cut(r)
		if err != nil {
			return nil, fmt.Errorf("excerpt %s: %w", e.name, err)
		}
		out[e.name] = strings.TrimRight(normalise(text, r.paths), "\n") + "\n"
	}
	return out, nil
}

// step returns the body of the first step whose title starts with title,
// with its "### title" line if withTitle.
func (r *Run) step(title string, withTitle bool) (string, error) {
	lines := strings.Split(r.Narration, "\n")
	for i, line := range lines {
		if !strings.HasPrefix(line, "### "+title) {
			continue
		}
		j := i + 1
		for j < len(lines) && !strings.HasPrefix(lines[j], "### ") {
			j++
		}
		from := i + 1
		if withTitle {
			from = i
		}
		return strings.TrimRight(strings.Join(lines[from:j], "\n"), "\n") + "\n", nil
	}
	return "", fmt.Errorf("the %s demo printed no step %q", r.Mode, title)
}

// command returns a command line of a step, exactly cmd, with the
// indented lines of output after it.
func (r *Run) command(title, cmd string) (string, error) {
	body, err := r.step(title, false)
	if err != nil {
		return "", err
	}
	lines := strings.Split(body, "\n")
	for i, line := range lines {
		if strings.TrimRight(line, " ") != cmd {
			continue
		}
		j := i + 1
		for j < len(lines) && strings.HasPrefix(lines[j], "    ") {
			j++
		}
		return strings.Join(lines[i:j], "\n") + "\n", nil
	}
	return "", fmt.Errorf("the %s demo's step %q has no command %q", r.Mode, title, cmd)
}

// traceBlock returns the i-th trace block the demo showed for the first
// connection, which must contain want.
func (r *Run) traceBlock(i int, want string) (string, error) {
	body, err := r.step(stepTrace, false)
	if err != nil {
		return "", err
	}
	blocks := lab.TraceBlocks(body)
	if i >= len(blocks) {
		return "", fmt.Errorf("the %s demo showed %d trace blocks, want at least %d", r.Mode, len(blocks), i+1)
	}
	if !strings.Contains(firstLine(blocks[i]), want) {
		return "", fmt.Errorf("the %s demo's trace block %d is not %q:\n%s", r.Mode, i, want, blocks[i])
	}
	return blocks[i], nil
}

// traceDecision returns the header and the decision lines (conn, local,
// sched) of the i-th trace block, without the next hop and the fields
// changed, which are as in the SYN's block.
func (r *Run) traceDecision(i int, want string) (string, error) {
	block, err := r.traceBlock(i, want)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(block, "\n") {
		if strings.HasPrefix(line, "trace ") || strings.HasPrefix(line, "  conn ") ||
			strings.HasPrefix(line, "  local ") || strings.HasPrefix(line, "  sched ") {
			b.WriteString(line)
		}
	}
	b.WriteString("  ...\n")
	return b.String(), nil
}

// pcapSYN shows the first connection's SYN as gvs received and sent it.
func (r *Run) pcapSYN() (string, error) {
	groups, err := readCapture(r.Capture)
	if err != nil {
		return "", err
	}
	g, ok := findGroup(groups, func(in, _ *capFrame) bool {
		_, t := in.tcp()
		return t != nil && t.SYN && !t.ACK && uint16(t.SrcPort) == lab.DemoClientPort
	})
	if !ok {
		return "", fmt.Errorf("the %s capture has no SYN from port %d forwarded", r.Mode, lab.DemoClientPort)
	}
	return g.view(), nil
}

// pcapSYNACK shows the real server's SYN-ACK to the first connection as
// gvs received it and sent it on to the client (NAT, FULLNAT).
func (r *Run) pcapSYNACK() (string, error) {
	groups, err := readCapture(r.Capture)
	if err != nil {
		return "", err
	}
	g, ok := findGroup(groups, func(in, out *capFrame) bool {
		_, t := in.tcp()
		_, o := out.tcp()
		return t != nil && o != nil && t.SYN && t.ACK && uint16(o.DstPort) == lab.DemoClientPort
	})
	if !ok {
		return "", fmt.Errorf("the %s capture has no SYN-ACK forwarded to port %d", r.Mode, lab.DemoClientPort)
	}
	return g.view(), nil
}

// pcapReplies counts the TCP frames gvs received from the real servers
// (DR, TUN: none, since they answer the client directly).
func (r *Run) pcapReplies() (string, error) {
	groups, err := readCapture(r.Capture)
	if err != nil {
		return "", err
	}
	var reals []net.IP
	for _, a := range r.reals {
		reals = append(reals, a.AsSlice())
	}
	if len(reals) != 2 {
		return "", fmt.Errorf("the %s run has %d real servers, want 2", r.Mode, len(reals))
	}
	n := 0
	for _, g := range groups {
		if !g[0].out && g[0].fromAny(reals) {
			n++
		}
	}
	return fmt.Sprintf("TCP frames gvs received from %s and %s: %d\n", reals[0], reals[1], n), nil
}
