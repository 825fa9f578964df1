package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DemoConfig configures Demo.
type DemoConfig struct {
	// Mode is the forwarding method to show (default DR, the notes' lab).
	Mode Mode
	Out  io.Writer
	// Keep leaves the lab up after the walk-through, until ctx is done.
	Keep bool
	// Gvs and Gvsadm are the binaries (default: this executable, and
	// gvsadm next to it or on $PATH).
	Gvs, Gvsadm string
	// Prefix names the namespaces (default gvsdemo<pid>).
	Prefix string
	// Trace runs gvs with --trace and shows what it did to the first
	// connection's frames (demo_trace.go).
	Trace bool
}

// demoTitles introduce each mode's demo.
var demoTitles = map[Mode]string{
	DR: "the LVS-DR lab of the seed notes, in network namespaces on this machine.",
	NAT: "LVS-NAT: the real servers on their own subnet behind the director, their default gateway;\n" +
		"the director rewrites the destination on the way in (D-NAT, port 80 to 8080) and the source on the way out (S-NAT).",
	TUN: "LVS-TUN: the real servers behind a router; the director wraps each packet in IPIP,\n" +
		"the real servers unwrap it and answer the client directly, from the VIP.",
	FullNAT: "FULLNAT (gvs, as DPVS): both addresses rewritten, so the real servers need no route back:\n" +
		"they see the director's local address 192.168.30.200, never the client.",
}

// Requests is how many HTTP requests the demo makes from the client.
const Requests = 6

// Demo walks through the seed notes' LVS-DR lab with gvs in place of IPVS
// and gvsadm in place of ipvsadm, printing every step. It returns an error
// unless every request was answered and the answers alternated between
// the two real servers, as rr does. The lab is torn down before it returns,
// also on error or when ctx is cancelled (Ctrl-C).
func Demo(ctx context.Context, cfg DemoConfig) (err error) {
	out := cfg.Out
	if out == nil {
		out = os.Stdout
	}
	if os.Geteuid() != 0 {
		return errors.New("the demo builds network namespaces: run it as root (sudo make demo)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("the demo needs the ip command (iproute2)")
	}
	if cfg.Gvs == "" {
		if cfg.Gvs, err = os.Executable(); err != nil {
			return err
		}
	}
	if cfg.Gvsadm == "" {
		cfg.Gvsadm = filepath.Join(filepath.Dir(cfg.Gvs), "gvsadm")
		if _, err := os.Stat(cfg.Gvsadm); err != nil {
			if cfg.Gvsadm, err = exec.LookPath("gvsadm"); err != nil {
				return errors.New("gvsadm not found next to gvs nor on $PATH (make build puts both in bin/)")
			}
		}
	}
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("gvsdemo%d", os.Getpid())
	}
	removeStaleDemos(out)
	if cfg.Mode == "" {
		cfg.Mode = DR
	}
	if _, err := ParseMode(string(cfg.Mode)); err != nil {
		return err
	}

	fmt.Fprintf(out, "gvs demo: %s\n", demoTitles[cfg.Mode])
	fmt.Fprintf(out, "Every line starting with \"host# \" is a command run on that machine.\n")
	l, err := New(ctx, Config{Mode: cfg.Mode, Prefix: cfg.Prefix, Out: out, VIPOnDirector: true, Gvs: cfg.Gvs, Gvsadm: cfg.Gvsadm})
	if err != nil {
		return err
	}
	defer func() {
		l.step("Tear down: stop gvs and the web servers, delete the namespaces")
		if cerr := l.Close(); cerr != nil && err == nil {
			err = cerr
		}
		fmt.Fprintln(out, "done.")
	}()
	if err := l.StartServers(); err != nil {
		return err
	}
	var gvsArgs []string
	if cfg.Trace {
		gvsArgs = traceArgs
	}
	if err := l.StartGvs(ctx, gvsArgs...); err != nil {
		return err
	}

	l.step("node01: the notes' ipvsadm commands, with gvsadm")
	cmds := l.ServiceCommands("-t", "rr")
	if cfg.Mode == DR || cfg.Mode == "" {
		// As the notes run them: a listing after the service and after
		// the first server.
		cmds = [][]string{cmds[0], {"-ln"}, cmds[1], {"-ln"}, cmds[2]}
	}
	for _, args := range cmds {
		if _, err := l.Gvsadm(ctx, args...); err != nil {
			return err
		}
	}

	l.step(fmt.Sprintf("client: %d requests to the VIP; rr alternates between the real servers", Requests))
	answers, err := l.demoRequests(ctx)
	if err != nil {
		return err
	}
	if cfg.Trace {
		if err := l.showTrace(ctx); err != nil {
			return err
		}
	}

	l.step("client: keep two connections open, to see who holds sockets (the notes' netstat -natp)")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 2 {
		c, err := l.Dial(ctx, netip.AddrPortFrom(VIP, 80))
		if err != nil {
			return fmt.Errorf("client: connecting to the VIP: %w", err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", VIP)
		ans, err := readAnswer(c)
		if err != nil {
			return fmt.Errorf("client: keep-alive request: %w", err)
		}
		l.printf("client: connection %s -> %s: %s (kept open)\n", c.LocalAddr(), c.RemoteAddr(), ans)
	}
	sockets := map[string]int{}
	peer := ClientIP
	if cfg.Mode == FullNAT {
		peer = LocalAddr // the real servers see gvs's local address, not the client
	}
	for _, h := range []*Host{l.Director, l.Reals[0], l.Reals[1]} {
		o, err := l.Output(ctx, h.NS, nil, "ss", "-tn", "state", "established")
		if err != nil {
			return err
		}
		sockets[h.Role] = strings.Count(o, peer.String()+":")
	}
	if sockets["node01"] != 0 {
		return fmt.Errorf("node01 holds %d TCP sockets with the client: the director's kernel took the connections", sockets["node01"])
	}
	if sockets["node02"]+sockets["node03"] < 2 {
		return fmt.Errorf("the real servers hold %d connections with %v, want the 2 open ones", sockets["node02"]+sockets["node03"], peer)
	}
	l.printf("=> node01 holds no socket for the connections; node02 and node03 do: the director only forwards frames.\n")

	l.step("node01: the connection table gvs keeps by watching the client's packets (ipvsadm -lnc)")
	if _, err := l.Gvsadm(ctx, "-Lnc"); err != nil {
		return err
	}
	if cfg.Mode == NAT || cfg.Mode == FullNAT {
		l.printf("=> ESTABLISHED: the open connections; TIME_WAIT: the finished ones (in NAT gvs sees both sides close).\n")
	} else {
		l.printf("=> ESTABLISHED: the open connections; FIN_WAIT: the finished ones (gvs sees only the client's packets: its FIN).\n")
	}
	l.printf("   A connection stuck in SYN_RECV would mean the director saw the SYN but the real server path is broken.\n")
	if _, err := l.Gvsadm(ctx, "-Ln"); err != nil {
		return err
	}

	if err := checkAlternating(answers, l.RealAddrs()); err != nil {
		return err
	}
	l.step("Result")
	l.printf("OK: %d requests answered, alternating: %s\n", len(answers), strings.Join(answers, ", "))

	if cfg.Keep {
		l.printf("\nThe lab stays up until Ctrl-C. Try for example:\n")
		l.printf("  ip netns exec %s curl http://%s/\n", l.Client.NS, VIP)
		l.printf("  GVS_SOCKET=%s %s -Lnc\n", l.Socket(), cfg.Gvsadm)
		<-ctx.Done()
	}
	return nil
}

// demoRequests makes the demo's requests from the client, with curl when
// it is installed (as the notes' reader would), else with Go's client.
func (l *Lab) demoRequests(ctx context.Context) ([]string, error) {
	var answers []string
	_, curlErr := exec.LookPath("curl")
	for range Requests {
		var ans string
		var err error
		if curlErr == nil {
			ans, err = l.Output(ctx, l.Client.NS, nil, "curl", "-s", "--max-time", "5", "http://"+VIP.String()+"/")
		} else {
			l.printf("%sGET http://%s/\n", l.prompt(l.Client.NS), VIP)
			ans, err = l.Get(ctx)
			if err == nil {
				l.printf("%s", indent(ans))
			}
		}
		if err != nil {
			return answers, fmt.Errorf("client: request to the VIP failed: %w\ngvs log:\n%s", err, l.GvsLog())
		}
		answers = append(answers, strings.TrimSpace(ans))
	}
	return answers, nil
}

// checkAlternating checks that every answer came and that they alternate
// between the two real servers.
func checkAlternating(answers []string, reals []netip.Addr) error {
	want := map[string]bool{}
	for _, a := range reals {
		want["from "+a.String()] = true
	}
	for i, a := range answers {
		if !want[a] {
			return fmt.Errorf("request %d was answered %q, not by a real server", i+1, a)
		}
		if i > 0 && a == answers[i-1] {
			return fmt.Errorf("requests %d and %d were both answered by %q: rr should alternate", i, i+1, a)
		}
	}
	if len(answers) != Requests {
		return fmt.Errorf("%d of %d requests answered", len(answers), Requests)
	}
	return nil
}

// readAnswer reads one HTTP/1.1 response with a Content-Length body.
func readAnswer(c net.Conn) (string, error) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	r := bufio.NewReader(c)
	n := -1
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if n < 0 || n > 1<<20 {
		return "", errors.New("answer without a usable Content-Length")
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return "", err
	}
	return strings.TrimSpace(string(body)), nil
}

// removeStaleDemos deletes the namespaces of earlier demos whose process
// is gone (killed before it could clean up).
func removeStaleDemos(out io.Writer) {
	b, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, "gvsdemo")
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // that demo is still running
		}
		fmt.Fprintf(out, "# ip netns del %s   (left by an earlier demo that did not finish)\n", name)
		exec.Command("ip", "netns", "del", name).Run()
	}
}
