package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gvs-project/gvs/bench/topo"
	"github.com/gvs-project/gvs/internal/netns"
)

// The TCP services: an HTTP server on webPort and a discard server on
// bulkPort in each sink, the same ports on the VIP.
const (
	webPort  = 80
	bulkPort = 5001
)

// The TCP tests.
const (
	testConn = "conn/s"
	testReq  = "req/s"
	testBulk = "bulk"
)

// TCPResult is one TCP point: a test through one path, over its runs.
type TCPResult struct {
	Test    string    `json:"test"` // conn/s, req/s, bulk
	Path    string    `json:"path"`
	Unit    string    `json:"unit"`
	Samples []float64 `json:"samples"`
	// Errors are wrk's socket errors and non-2xx answers, over the runs.
	Errors   uint64  `json:"errors"`
	Value    Summary `json:"value"`
	VsDirect float64 `json:"vs_direct,omitempty"`
}

// tcpPath is one way from the client to the servers for the TCP tests.
type tcpPath interface {
	Name() string
	Describe() string
	// Needs lists the commands the path runs (besides ip).
	Needs() []string
	// Tests lists the tests the path takes part in.
	Tests() []string
	// Start sets the path up on the TCP topology.
	Start(ctx context.Context, e *env, t *topo.Topology) (*tcpSetup, error)
}

// tcpSetup is a started TCP path.
type tcpSetup struct {
	// Targets are the addresses the client connects to: the VIP, or the
	// servers' own addresses (direct).
	Targets []netip.Addr
	Stop    func() error
	Exited  func() error // nil: cannot die
	Profile *profiler    // nil: no profiles (see setup.Profile)
}

func allTCPPaths() []tcpPath {
	return []tcpPath{directTCP{}, nftTCP{}, haproxyTCP{},
		gvsTCP{modeDR}, gvsTCP{modeNAT}, gvsTCP{modeFullNAT}, gvsTCP{modeTUN}}
}

func tcpPathNames() []string {
	var n []string
	for _, p := range allTCPPaths() {
		n = append(n, p.Name())
	}
	return n
}

// directTCP: the client connects to the servers' own addresses, which
// the director's kernel routes.
type directTCP struct{}

func (directTCP) Name() string { return "direct" }
func (directTCP) Describe() string {
	return "the client connects to a server's own address (wrk: the first; bulk: one connection to each), routed by the director's kernel (the baseline)"
}
func (directTCP) Needs() []string { return nil }
func (directTCP) Tests() []string { return []string{testConn, testReq, testBulk} }
func (directTCP) Start(ctx context.Context, e *env, t *topo.Topology) (*tcpSetup, error) {
	return &tcpSetup{Targets: sinkAddrs(t), Stop: func() error { return nil }}, nil
}

// nftTCPTable is the table nftTCP creates in the director's namespace.
const nftTCPTable = "gvsbench_tcp"

// nftTCP is nftables DNAT of VIP:80 and VIP:5001 to the servers.
type nftTCP struct{}

func (nftTCP) Name() string { return "nft-dnat" }
func (nftTCP) Describe() string {
	return "nftables DNAT of VIP:80 to the two servers (numgen inc mod 2 map, per conntrack flow), ip_forward=1"
}
func (nftTCP) Needs() []string { return []string{"nft"} }
func (nftTCP) Tests() []string { return []string{testConn, testReq} }
func (nftTCP) Start(ctx context.Context, e *env, t *topo.Topology) (*tcpSetup, error) {
	ns := t.DirIn.NS
	script := fmt.Sprintf(`table ip %s {
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		ip daddr %s tcp dport { %d, %d } dnat to numgen inc mod 2 map { 0 : %s, 1 : %s }
	}
}
`, nftTCPTable, topo.VIP, webPort, bulkPort, t.Sinks[0].Addr.Addr(), t.Sinks[1].Addr.Addr())
	file := filepath.Join(e.tmp, "nft-dnat-tcp.nft")
	if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
		return nil, err
	}
	e.log("nft script %s:\n%s", file, script)
	if _, err := t.Run(ctx, ns, "nft", "-f", file); err != nil {
		return nil, err
	}
	return &tcpSetup{
		Targets: []netip.Addr{topo.VIP},
		Stop: func() error {
			_, err := t.Run(context.Background(), ns, "nft", "delete", "table", "ip", nftTCPTable)
			return err
		},
	}, nil
}

// haproxyTCP is HAProxy in TCP mode on the director, holding the VIP.
type haproxyTCP struct{}

func (haproxyTCP) Name() string { return "haproxy" }
func (haproxyTCP) Describe() string {
	return "HAProxy in TCP mode on the director (VIP on its lo), roundrobin over the two servers, a new server connection per client connection"
}
func (haproxyTCP) Needs() []string { return []string{"haproxy"} }
func (haproxyTCP) Tests() []string { return []string{testConn, testReq} }
func (haproxyTCP) Start(ctx context.Context, e *env, t *topo.Topology) (_ *tcpSetup, err error) {
	ns := t.DirIn.NS
	// maxconn: far above -c64, within the 20000 descriptors a
	// process may have here (HAProxy wants two per connection).
	cfg := fmt.Sprintf(`global
	maxconn 8000
defaults
	mode tcp
	timeout connect 5s
	timeout client 60s
	timeout server 60s
frontend web
	bind %s:%d
	default_backend web
backend web
	balance roundrobin
	server sink1 %s:%d
	server sink2 %s:%d
`, topo.VIP, webPort, t.Sinks[0].Addr.Addr(), webPort, t.Sinks[1].Addr.Addr(), webPort)
	file := filepath.Join(e.tmp, "haproxy.cfg")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	e.log("haproxy config %s:\n%s", file, cfg)
	if _, err := t.Run(ctx, ns, "ip", "addr", "add", topo.VIP.String()+"/32", "dev", "lo"); err != nil {
		return nil, err
	}
	delVIP := func() error {
		_, err := t.Run(context.Background(), ns, "ip", "addr", "del", topo.VIP.String()+"/32", "dev", "lo")
		return err
	}
	p, err := startDaemon(ns, "haproxy", []string{"haproxy", "-f", file, "-db"}, e.log)
	if err != nil {
		delVIP()
		return nil, err
	}
	return &tcpSetup{
		Targets: []netip.Addr{topo.VIP},
		Stop:    func() error { return errors.Join(p.stop(), delVIP()) },
		Exited:  p.exited,
	}, nil
}

// gvsTCP is gvs in one mode, with services on VIP:80 and VIP:5001.
type gvsTCP struct{ mode gvsMode }

func (p gvsTCP) Name() string { return "gvs-" + p.mode.name }
func (p gvsTCP) Describe() string {
	d := fmt.Sprintf("gvs -i eth0 -i eth1, gvsadm -A -t VIP:80 and VIP:5001 -s rr, %s per server", p.mode.flag)
	switch p.mode {
	case modeDR:
		d += "; the servers answer from the VIP through the director's kernel (ip_forward=1, as a router would)"
	case modeTUN:
		d += "; the servers unwrap IPIP with gvs realserver --tun (user space: this kernel has no ipip) and answer through the director's kernel"
	case modeNAT:
		d += "; the servers' answers come back through gvs (their default route)"
	case modeFullNAT:
		d += ", -P -z " + topo.LocalAddr.String() + "; the servers answer the local address on-link"
	}
	return d
}
func (gvsTCP) Needs() []string { return nil }
func (p gvsTCP) Tests() []string {
	if p.mode == modeDR || p.mode == modeNAT {
		return []string{testConn, testReq, testBulk}
	}
	return []string{testBulk}
}
func (p gvsTCP) Start(ctx context.Context, e *env, t *topo.Topology) (_ *tcpSetup, err error) {
	var stops []func() error
	stop := func() error {
		var errs []error
		for i := len(stops) - 1; i >= 0; i-- {
			errs = append(errs, stops[i]())
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	var tunnels []*daemon
	if p.mode == modeTUN {
		if err := e.buildGvs(ctx); err != nil {
			return nil, err
		}
		for _, s := range t.Sinks {
			d, err := startDaemon(s.NS, "gvs realserver --tun", []string{e.gvs, "realserver", "--vip", topo.VIP.String(), "--tun", "--dev", s.Name}, e.log)
			if err != nil {
				return nil, err
			}
			stops = append(stops, d.stop)
			tunnels = append(tunnels, d)
			if err := waitLink(ctx, t, s.NS, "gvstun0", d); err != nil {
				return nil, err
			}
		}
	}
	cmds := serviceCommands("-t", webPort, sinkAddrs(t), p.mode)
	cmds = append(cmds, serviceCommands("-t", bulkPort, sinkAddrs(t), p.mode)...)
	g, err := e.startGvs(ctx, t.DirIn.NS, t, cmds)
	if err != nil {
		return nil, err
	}
	stops = append(stops, g.Stop)
	return &tcpSetup{
		Targets: []netip.Addr{topo.VIP},
		Profile: g.Profile,
		Stop:    stop,
		Exited: func() error {
			for _, d := range tunnels {
				if err := d.exited(); err != nil {
					return err
				}
			}
			return g.Exited()
		},
	}, nil
}

// daemon is a background process of a path (HAProxy, gvs realserver).
type daemon struct {
	name string
	cmd  interface{ Signal(os.Signal) error }
	kill func() error
	done chan struct{}
	err  error
	out  *lockedBuffer
}

// startDaemon starts args in namespace ns.
func startDaemon(ns, name string, args []string, log func(string, ...any)) (*daemon, error) {
	cmd := topo.Command(context.Background(), ns, args...)
	log("%s# %s &", ns, strings.Join(args, " "))
	d := &daemon{name: name, done: make(chan struct{}), out: &lockedBuffer{}}
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	d.cmd, d.kill = cmd.Process, cmd.Process.Kill
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

func (d *daemon) exited() error {
	select {
	case <-d.done:
		return fmt.Errorf("%s exited: %v\n%s", d.name, d.err, d.out.String())
	default:
		return nil
	}
}

func (d *daemon) stop() error {
	select {
	case <-d.done:
		return d.exited()
	default:
	}
	d.cmd.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return nil
	case <-time.After(10 * time.Second):
		d.kill()
		<-d.done
		return fmt.Errorf("%s did not stop within 10 s of SIGTERM; killed\n%s", d.name, d.out.String())
	}
}

// waitLink waits until the interface exists in ns (at most 15 s).
func waitLink(ctx context.Context, t *topo.Topology, ns, name string, d *daemon) error {
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		if _, err := topo.Command(ctx, ns, "ip", "link", "show", name).Output(); err == nil {
			return nil
		}
		if err := d.exited(); err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not bring up %s within 15 s\n%s", d.name, name, d.out.String())
}

// servers are the sinks' TCP servers, run by this process: each listener
// was opened inside its sink's namespace, and the connections it accepts
// belong there.
type servers struct {
	web  []*http.Server
	lns  []net.Listener
	bulk atomic.Int64 // bytes the discard servers have read
	wg   sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]bool // the discard servers' open connections
	closed bool
}

// webBody is what the HTTP servers answer: small, as a health page.
func webBody(sink int) string { return fmt.Sprintf("gvs-bench sink%d\n", sink+1) }

func startServers(t *topo.Topology) (_ *servers, err error) {
	s := &servers{conns: map[net.Conn]bool{}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	for i, sk := range t.Sinks {
		var web, bulk net.Listener
		if err := netns.Do(sk.NS, func() error {
			var err error
			if web, err = net.Listen("tcp4", fmt.Sprintf(":%d", webPort)); err != nil {
				return err
			}
			bulk, err = net.Listen("tcp4", fmt.Sprintf(":%d", bulkPort))
			return err
		}); err != nil {
			if web != nil {
				web.Close()
			}
			return nil, fmt.Errorf("servers in %s: %w", sk.NS, err)
		}
		s.lns = append(s.lns, web, bulk)
		body := []byte(webBody(i))
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.Write(body)
			}),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          nil,
		}
		s.web = append(s.web, srv)
		s.wg.Add(2)
		go func() { defer s.wg.Done(); srv.Serve(web) }()
		go func() { defer s.wg.Done(); s.discard(bulk) }()
	}
	return s, nil
}

// discard accepts connections and reads them to the end, counting bytes.
func (s *servers) discard(ln net.Listener) {
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.mu.Unlock()
		conns.Add(1)
		go func() {
			defer conns.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			buf := make([]byte, 256<<10)
			for {
				n, err := c.Read(buf)
				s.bulk.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
	}
}

// Close stops the servers, closing their connections: a connection whose
// path is gone (a stopped gvs) would otherwise wait for TCP keep-alive.
func (s *servers) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	for _, srv := range s.web {
		srv.Close()
	}
	for _, ln := range s.lns {
		ln.Close()
	}
	s.wg.Wait()
	return nil
}

// dialIn dials addr from namespace ns.
func dialIn(ctx context.Context, ns, addr string) (net.Conn, error) {
	var c net.Conn
	err := netns.Do(ns, func() error {
		var err error
		c, err = (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, "tcp4", addr)
		return err
	})
	return c, err
}

// checkTCP proves a started path works before it is measured: HTTP GETs
// from the client's namespace until every server has answered through it
// (at most 10 s; the first may wait for HAProxy to listen, or gvs to
// resolve the servers).
func checkTCP(ctx context.Context, t *topo.Topology, s *tcpSetup) error {
	client := &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return dialIn(ctx, t.Gen.NS, addr)
			},
		},
	}
	seen := map[string]bool{}
	var last error
	for deadline, i := time.Now().Add(10*time.Second), 0; time.Now().Before(deadline); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.Exited != nil {
			if err := s.Exited(); err != nil {
				return err
			}
		}
		target := s.Targets[i%len(s.Targets)]
		resp, err := client.Get(fmt.Sprintf("http://%s/", netip.AddrPortFrom(target, webPort)))
		if err != nil {
			last = err
			time.Sleep(100 * time.Millisecond)
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			last = err
			continue
		}
		seen[string(b)] = true
		if len(seen) == len(t.Sinks) {
			return nil
		}
	}
	return fmt.Errorf("the servers did not all answer through the path within 10 s (answers %v; last error: %v)", seen, last)
}

// wrkResult is what one wrk run reports.
type wrkResult struct {
	requests float64 // per second
	errors   uint64
}

// runWrk runs wrk in namespace ns against the targets for d: one wrk per
// target, sharing conns connections and two threads (one per CPU), at the
// same time; their rates add up. closeConn sends "Connection: close", so
// that each request takes a new connection.
func runWrk(ctx context.Context, ns string, targets []netip.Addr, conns int, d time.Duration, closeConn bool, log func(string, ...any)) (wrkResult, error) {
	threads := max(1, 2/len(targets))
	per := max(threads, conns/len(targets))
	secs := max(1, int(d.Round(time.Second)/time.Second))
	type out struct {
		r   wrkResult
		err error
	}
	outs := make([]out, len(targets))
	var wg sync.WaitGroup
	for i, a := range targets {
		args := []string{"wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(per), "-d", fmt.Sprintf("%ds", secs), "--timeout", "2s"}
		if closeConn {
			args = append(args, "-H", "Connection: close")
		}
		args = append(args, fmt.Sprintf("http://%s/", netip.AddrPortFrom(a, webPort)))
		log("%s# %s", ns, strings.Join(args, " "))
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
			defer cancel()
			b, err := topo.Command(ctx, ns, args...).CombinedOutput()
			if err != nil {
				outs[i].err = fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(b))
				return
			}
			outs[i].r, outs[i].err = parseWrk(b)
		}()
	}
	wg.Wait()
	var sum wrkResult
	for _, o := range outs {
		if o.err != nil {
			return sum, o.err
		}
		sum.requests += o.r.requests
		sum.errors += o.r.errors
	}
	return sum, nil
}

// parseWrk reads wrk's summary: "Requests/sec:", "Socket errors: connect
// N, read N, write N, timeout N" and "Non-2xx or 3xx responses: N".
func parseWrk(b []byte) (wrkResult, error) {
	var r wrkResult
	found := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "Requests/sec:"):
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(l, "Requests/sec:")), 64)
			if err != nil {
				return r, fmt.Errorf("wrk: %q: %w", l, err)
			}
			r.requests, found = v, true
		case strings.HasPrefix(l, "Socket errors:"):
			for _, f := range strings.Split(strings.TrimPrefix(l, "Socket errors:"), ",") {
				fs := strings.Fields(f)
				if len(fs) == 2 {
					n, _ := strconv.ParseUint(fs[1], 10, 64)
					r.errors += n
				}
			}
		case strings.HasPrefix(l, "Non-2xx or 3xx responses:"):
			n, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(l, "Non-2xx or 3xx responses:")), 10, 64)
			r.errors += n
		}
	}
	if !found {
		return r, fmt.Errorf("wrk printed no Requests/sec line:\n%s", b)
	}
	return r, nil
}

// bulkStreams is the number of connections of a bulk run: one per CPU,
// spread over the servers (round robin puts one on each).
const bulkStreams = 2

// bulkBuf is the size of the client's writes.
const bulkBuf = 256 << 10

// runBulk uploads from the client's namespace to the targets' discard
// servers over bulkStreams connections, for d or until max bytes are
// written, and returns what the servers read per second, in bits.
func runBulk(ctx context.Context, ns string, srv *servers, targets []netip.Addr, d time.Duration, max int64) (float64, error) {
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range bulkStreams {
		c, err := dialIn(ctx, ns, netip.AddrPortFrom(targets[i%len(targets)], bulkPort).String())
		if err != nil {
			return 0, err
		}
		conns = append(conns, c)
	}
	var written atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	b0, t0 := srv.bulk.Load(), time.Now()
	deadline := t0.Add(d)
	for _, c := range conns {
		c.SetWriteDeadline(deadline.Add(5 * time.Second)) // a safety net
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, bulkBuf)
			for {
				select {
				case <-stop:
					return
				default:
				}
				n, err := c.Write(buf)
				if written.Add(int64(n)) >= max || err != nil {
					return
				}
			}
		}()
	}
	for time.Now().Before(deadline) && written.Load() < max && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	b1, t1 := srv.bulk.Load(), time.Now()
	close(stop)
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	wg.Wait()
	if b1 == b0 {
		return 0, errors.New("bulk: the servers received nothing")
	}
	return float64(b1-b0) * 8 / t1.Sub(t0).Seconds(), ctx.Err()
}

// tcpPhase builds the TCP topology and measures the TCP paths on it.
func (r *runner) tcpPhase(ctx context.Context, o options, rep *Report, paths []tcpPath, tlog io.Writer, progress func(string, ...any)) error {
	progress("building the TCP topology (namespaces gvsb%dt-*)", os.Getpid())
	t, err := topo.New(ctx, topo.Config{Prefix: fmt.Sprintf("gvsb%dt", os.Getpid()), Log: tlog, TCP: true})
	if err != nil {
		return err
	}
	if o.keep {
		defer func() {
			progress("--keep: the TCP namespaces stay: %s", strings.Join(t.Namespaces(), " "))
		}()
	} else {
		defer t.Close()
	}
	srv, err := startServers(t)
	if err != nil {
		return err
	}
	defer srv.Close()
	rep.Config.TCPClient = fmt.Sprintf("wrk -t2 -c%d (direct: to the first server) against Go net/http servers in the sinks; bulk: %d Go connections writing %d KiB at a time (direct: one to each server)",
		o.tcpConns, bulkStreams, bulkBuf>>10)
	rep.Config.TCPServer = "Go net/http (this process; listeners opened in the sinks' namespaces), a short text body; a discard server on port 5001"
	rep.Config.TCPPinning = fmt.Sprintf("gvs pinned to CPU %d; wrk, the servers, HAProxy and the kernel's work unpinned", r.e.fwdCPU)
	for _, p := range paths {
		if ctx.Err() != nil {
			return nil
		}
		name := "tcp " + p.Name()
		skip := ""
		for _, c := range p.Needs() {
			if why := r.e.missing[c]; why != "" {
				skip = why
			}
		}
		if skip != "" {
			rep.Skipped = append(rep.Skipped, Skipped{Path: name, Reason: skip})
			progress("%s: skipped: %s", name, skip)
			continue
		}
		rep.Paths = append(rep.Paths, PathDoc{Name: name, Description: p.Describe()})
		res, err := r.runTCPPath(ctx, t, srv, p, o, rep, progress)
		rep.TCP = append(rep.TCP, res...)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			rep.Failed = append(rep.Failed, Skipped{Path: name, Reason: err.Error()})
			progress("%s: FAILED: %v", name, err)
		}
	}
	return nil
}

// runTCPPath starts a TCP path, checks it, and runs its tests.
func (r *runner) runTCPPath(ctx context.Context, t *topo.Topology, srv *servers, p tcpPath, o options, rep *Report, progress func(string, ...any)) (results []TCPResult, err error) {
	name := "tcp " + p.Name()
	progress("%s: starting", name)
	s, err := p.Start(ctx, r.e, t)
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	defer func() {
		if serr := s.Stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("stop: %w", serr))
		}
	}()
	if err := checkTCP(ctx, t, s); err != nil {
		return nil, err
	}
	for _, test := range p.Tests() {
		if test != testBulk {
			if why := r.e.missing["wrk"]; why != "" {
				if test == testConn {
					rep.Skipped = append(rep.Skipped, Skipped{Path: name + " conn/s, req/s", Reason: why})
				}
				continue
			}
		}
		res := TCPResult{Test: test, Path: p.Name(), Unit: "/s"}
		if test == testBulk {
			res.Unit = "Gbit/s"
		}
		for i := range o.repeats {
			var v float64
			var errs uint64
			profiled := profilePoint(ctx, s.Profile, i, o.duration, p.Name()+" "+test, progress)
			switch test {
			case testBulk:
				v, err = runBulk(ctx, t.Gen.NS, srv, s.Targets, o.duration, o.bulkMax)
				v /= 1e9
			default:
				var w wrkResult
				// One wrk against one address: the VIP, or
				// (direct) the first server, as the servers are
				// one process anyway.
				w, err = runWrk(ctx, t.Gen.NS, s.Targets[:1], o.tcpConns, o.duration, test == testConn, r.e.log)
				v, errs = w.requests, w.errors
			}
			profiled()
			if err == nil && s.Exited != nil {
				err = s.Exited()
			}
			if err != nil {
				if len(res.Samples) > 0 {
					res.Value = summarize(res.Samples)
					results = append(results, res)
				}
				return results, fmt.Errorf("%s: %w", test, err)
			}
			res.Samples = append(res.Samples, v)
			res.Errors += errs
			progress("%s %s run %d/%d: %s %s, %d errors", name, test, i+1, o.repeats, fmtValue(v), res.Unit, errs)
		}
		res.Value = summarize(res.Samples)
		results = append(results, res)
	}
	return results, nil
}

// tcpRatios fills each TCP result's ratio to the direct path's, same test.
func tcpRatios(rs []TCPResult) {
	direct := map[string]float64{}
	for _, r := range rs {
		if r.Path == (directTCP{}).Name() {
			direct[r.Test] = r.Value.Median
		}
	}
	for i := range rs {
		if d := direct[rs[i].Test]; d > 0 {
			rs[i].VsDirect = rs[i].Value.Median / d
		}
	}
}
