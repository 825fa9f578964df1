package docs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gvs-project/gvs/lab"
)

// Binaries are the gvs and gvsadm programs the labs run.
type Binaries struct {
	Gvs, Gvsadm string
}

// Run is what one mode's lab printed: make demo's walk-through (with
// --trace) followed by the steps the guides add, and gvs's capture.
type Run struct {
	Mode lab.Mode
	// Narration is everything the demo printed, as printed (not
	// normalised).
	Narration string
	// Capture is the pcapng file gvs --pcap wrote, read whole.
	Capture []byte
	// reals are the real servers' addresses.
	reals []netip.Addr
	// paths are the run's file names (binaries, control socket,
	// capture) and what the guides show instead.
	paths []string
}

// synRecvPort is the client's port for the connection the DR run lets
// fail (the demo's connections use DemoClientPort onwards, 8 of them).
const synRecvPort = lab.DemoClientPort + lab.Requests + 2

// RunMode runs the mode's demo in a lab named after prefix, with gvs
// --trace and --pcap, then the steps the guides add (extraSteps), and
// returns what it printed and captured. dir holds the capture.
func RunMode(ctx context.Context, bins Binaries, mode lab.Mode, prefix, dir string) (*Run, error) {
	if _, err := exec.LookPath("curl"); err != nil {
		return nil, errors.New("the guides show curl's requests: install curl")
	}
	pcap := filepath.Join(dir, "gvs-"+string(mode)+".pcapng")
	var out bytes.Buffer
	var socket string
	var reals []netip.Addr
	err := lab.Demo(ctx, lab.DemoConfig{
		Mode: mode, Out: &out, Gvs: bins.Gvs, Gvsadm: bins.Gvsadm, Prefix: prefix,
		Trace: true, Pcap: pcap,
		Extra: func(ctx context.Context, l *lab.Lab) error {
			socket, reals = l.Socket(), l.RealAddrs()
			return extraSteps(ctx, l)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%s demo: %w\n%s", mode, err, out.String())
	}
	capture, err := os.ReadFile(pcap)
	if err != nil {
		return nil, err
	}
	return &Run{
		Mode: mode, Narration: out.String(), Capture: capture, reals: reals,
		paths: []string{
			bins.Gvs, "gvs",
			bins.Gvsadm, "gvsadm",
			socket, "<socket>",
			pcap, "<pcap>",
		},
	}, nil
}

// Titles of the steps extraSteps adds, which the excerpts look up.
const (
	stepStats   = "node01: the counters (gvsadm -Ln --stats)"
	stepTimeout = "node01: the connection timeouts (gvsadm -L --timeout)"
	stepNeigh   = "client: where it sends frames for the VIP (its ARP cache)"
	stepRoutes  = "node02: its routes"
	stepLo      = "node02: the VIP on its loopback"
	stepTunnel  = "node02: the tunnel's end"
	stepUnplug  = "switch: unplug node03"
	stepSynRecv = "node01: the connection that never got past the SYN"
)

// extraSteps are the steps the guides show beyond make demo's, run on the
// demo's lab before it is torn down.
func extraSteps(ctx context.Context, l *lab.Lab) error {
	client, node02 := l.Client.NS, l.Reals[0].NS
	l.Step(stepStats + ": In counts what came from clients, Out what came back from the real servers through gvs")
	if _, err := l.Gvsadm(ctx, "-Ln", "--stats"); err != nil {
		return err
	}
	switch l.Mode() {
	case lab.DR, lab.TUN:
		l.Step(stepLo + ", so that its kernel accepts packets for the VIP and answers from it")
		if _, err := l.Output(ctx, node02, nil, "ip", "-4", "-brief", "addr", "show", "dev", "lo"); err != nil {
			return err
		}
		for _, k := range []string{"net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.all.arp_announce"} {
			if _, err := l.Output(ctx, node02, nil, "sysctl", k); err != nil {
				return err
			}
		}
	}
	if l.Mode() == lab.TUN {
		l.Step(stepTunnel + ": gvs realserver --tun's TUN device, and reverse-path filtering off for the packets it hands the kernel")
		if _, err := l.Output(ctx, node02, nil, "ip", "-brief", "link", "show", "dev", "gvstun0"); err != nil {
			return err
		}
		for _, k := range []string{"net.ipv4.conf.gvstun0.rp_filter", "net.ipv4.conf.all.rp_filter"} {
			if _, err := l.Output(ctx, node02, nil, "sysctl", k); err != nil {
				return err
			}
		}
	}
	switch l.Mode() {
	case lab.NAT, lab.TUN, lab.FullNAT:
		l.Step(stepRoutes + ": where its replies to the client go")
		if _, err := l.Output(ctx, node02, nil, "ip", "route"); err != nil {
			return err
		}
	}
	if l.Mode() != lab.DR {
		return nil
	}
	l.Step(stepTimeout)
	if _, err := l.Gvsadm(ctx, "-L", "--timeout"); err != nil {
		return err
	}
	l.Step(stepNeigh + ": node01's MAC, since the real servers never answer ARP for it")
	if _, err := l.Output(ctx, client, nil, "ip", "neigh", "show", lab.VIP.String(), "dev", "eth0"); err != nil {
		return err
	}
	return synRecv(ctx, l)
}

// synRecv shows the notes' SYN_RECV case: node03's cable is pulled (its
// switch port taken down), so the SYN gvs forwards to it is lost; the
// client retransmits and gives up, and gvs's entry stays in SYN_RECV.
func synRecv(ctx context.Context, l *lab.Lab) error {
	sw := l.Switches[0].NS
	port := strconv.Itoa(synRecvPort)
	l.Step(stepUnplug + ": its switch port drops every frame, so whatever gvs sends node03 is lost")
	if _, err := l.Output(ctx, sw, nil, "ip", "link", "set", "node03", "down"); err != nil {
		return err
	}
	// The trace prints at most 10 packets a second (a token bucket the
	// demo's last connections emptied): after a second's pause it prints
	// this connection's SYNs, whatever the machine's load.
	time.Sleep(1100 * time.Millisecond)
	// rr's next pick is node03 (the demo's 8 connections alternated,
	// starting with it). The client sends its SYN at once and again a
	// second later (TCP's initial retransmission timeout), then gives up.
	_, err := l.Output(ctx, l.Client.NS, nil, "curl", "-s", "--max-time", "2.5", "--local-port", port, "http://"+lab.VIP.String()+"/")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 28 {
		return fmt.Errorf("curl through the unplugged node03: %v, want exit status 28 (timed out)", err)
	}
	l.Printf("=> curl gave up: exit status 28, timed out\n")
	l.Step(stepSynRecv + ": SYN_RECV in gvsadm -Lnc, and in gvs --trace the client's SYN forwarded twice and nothing after it")
	if _, err := l.Gvsadm(ctx, "-Lnc"); err != nil {
		return err
	}
	client := netip.AddrPortFrom(lab.ClientIP, synRecvPort).String()
	var blocks []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		blocks = blocks[:0]
		for _, b := range lab.TraceBlocks(l.GvsLog()) {
			if strings.Contains(firstLine(b), " "+client+" > ") {
				blocks = append(blocks, b)
			}
		}
		if len(blocks) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(blocks) < 2 {
		return fmt.Errorf("gvs traced %d frames of %s, want its SYN and the retransmission\n%s", len(blocks), client, l.GvsLog())
	}
	for _, b := range blocks {
		if !strings.Contains(firstLine(b), " [SYN] -> forwarded, DR to "+l.Reals[1].Addr.String()) {
			return fmt.Errorf("gvs traced a frame of %s that is not a SYN forwarded to node03:\n%s", client, b)
		}
	}
	for _, b := range blocks[:2] {
		// The decision lines; the hop and the fields changed are as
		// for any DR frame.
		for _, line := range strings.SplitAfter(b, "\n") {
			if strings.HasPrefix(line, "trace ") || strings.HasPrefix(line, "  conn ") || strings.HasPrefix(line, "  sched ") {
				l.Printf("%s", line)
			}
		}
		l.Printf("  ...\n")
	}
	l.Printf("=> gvs forwarded both SYNs to node03; no ACK from the client followed, because no SYN-ACK reached it.\n")
	if _, err := l.Output(ctx, sw, nil, "ip", "link", "set", "node03", "up"); err != nil {
		return err
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
