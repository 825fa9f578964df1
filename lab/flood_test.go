package lab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gvs-project/gvs/control"
	"github.com/gvs-project/gvs/internal/netns"
	"github.com/gvs-project/gvs/internal/nstest"
)

// The flood lab: the DR lab, plus a router on its LAN with two more
// networks behind it, one of real clients and one a flood comes from.
//
//	clients 192.168.170.2 (and .10-.109) --eth1-- router --eth0-- LAN 192.168.150.0/24 (node01 gvs, node02, node03)
//	flood   192.168.180.2, spoofing      --eth2--  (.254)
//	        198.18.0.0/15
//
// The router routes 198.18.0.0/15 to the flood network, so the real
// servers' SYN-ACKs to the spoofed sources go there and die (nothing
// holds those addresses), as they would on the Internet.
var (
	routerLAN    = netip.MustParseAddr("192.168.150.254")
	clientsNet   = netip.MustParsePrefix("192.168.170.0/24")
	floodNet     = netip.MustParsePrefix("192.168.180.0/24")
	floodSources = netip.MustParsePrefix("198.18.0.0/15")
)

type floodLab struct {
	*Lab
	Router, Clients, Flooder *nstest.NS
	routerMAC                [6]byte // the router's interface towards the flood
	clients                  []netip.Addr
}

// newFloodLab builds the flood lab with nClients client addresses,
// starts gvs with args and configures the seed's TCP service (rr over
// both real servers, DR).
func newFloodLab(t *testing.T, nClients int, args ...string) *floodLab {
	t.Helper()
	nstest.Require(t)
	ctx := context.Background()
	l := buildLab(t, Config{Mode: DR}, "gvf")
	fl := &floodLab{Lab: l}
	fl.Router = nstest.NewNS(t, "gvfr")
	fl.Clients = nstest.NewNS(t, "gvfc")
	fl.Flooder = nstest.NewNS(t, "gvff")
	if err := l.cable(ctx, &Host{Role: "router", NS: fl.Router.Name, Addr: routerLAN}, "eth0", l.Switches[0], routerLAN); err != nil {
		t.Fatal(err)
	}
	nstest.Veth(t, fl.Router, "eth1", fl.Clients, "eth0")
	nstest.Veth(t, fl.Router, "eth2", fl.Flooder, "eth0")
	rt := fl.Router
	rt.MustRun(t, "ip", "addr", "add", "192.168.170.1/24", "dev", "eth1")
	rt.MustRun(t, "ip", "addr", "add", "192.168.180.1/24", "dev", "eth2")
	rt.MustRun(t, "ip", "route", "add", floodSources.String(), "via", "192.168.180.2")
	rt.Sysctl(t, "net.ipv4.ip_forward", "1")
	for _, dev := range []string{"all", "default", "eth0", "eth1", "eth2"} {
		rt.Sysctl(t, "net.ipv4.conf."+dev+".rp_filter", "0")
	}
	fl.Flooder.MustRun(t, "ip", "addr", "add", "192.168.180.2/24", "dev", "eth0")
	fl.Flooder.MustRun(t, "ip", "route", "add", "default", "via", "192.168.180.1")
	fl.Clients.MustRun(t, "ip", "addr", "add", "192.168.170.2/24", "dev", "eth0")
	fl.Clients.MustRun(t, "ip", "route", "add", "default", "via", "192.168.170.1")
	for i := range nClients {
		a := netip.AddrFrom4([4]byte{192, 168, 170, byte(10 + i)})
		fl.Clients.MustRun(t, "ip", "addr", "add", a.String()+"/24", "dev", "eth0")
		fl.clients = append(fl.clients, a)
	}
	for _, h := range l.Reals {
		for _, dst := range []string{clientsNet.String(), floodSources.String(), floodNet.String()} {
			h.mustRun(t, "ip", "route", "add", dst, "via", routerLAN.String())
		}
	}
	if err := netns.Do(rt.Name, func() error {
		ifi, err := net.InterfaceByName("eth2")
		if err == nil {
			copy(fl.routerMAC[:], ifi.HardwareAddr)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.StartServers(); err != nil {
		t.Fatal(err)
	}
	if err := l.StartGvs(ctx, args...); err != nil {
		t.Fatal(err)
	}
	for _, a := range l.ServiceCommands("-t", "rr") {
		if _, err := l.Gvsadm(ctx, a...); err != nil {
			t.Fatal(err)
		}
	}
	return fl
}

// get makes one HTTP request to the VIP on a new connection from the
// client address src, through the router, and checks the answer. Its
// bounds are safety nets: a SYN lost to the flood is retransmitted by the
// client's kernel after 1 s, 3 s, 7 s...
func (fl *floodLab) get(ctx context.Context, src netip.Addr) error {
	var c net.Conn
	err := netns.Do(fl.Clients.Name, func() error {
		d := net.Dialer{Timeout: 60 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		var err error
		c, err = d.DialContext(ctx, "tcp4", VIP.String()+":80")
		return err
	})
	if err != nil {
		return fmt.Errorf("from %v: %w", src, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", VIP)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return fmt.Errorf("from %v: %w", src, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if !strings.HasPrefix(b.String(), "from 192.168.150.1") {
		return fmt.Errorf("from %v: answered %q", src, b.String())
	}
	return nil
}

// clientRun is a crowd of real clients: one goroutine per address, each
// opening connections one after another, pause apart, until stop is
// closed (each makes at least min connections).
//
// The pause bounds the clients' rate whatever the machine's speed, and so
// the connection entries they leave behind: a finished connection's entry
// stays in the table for its TIME_WAIT timeout (2 minutes, as IPVS's), and
// only half-open entries can be evicted. A table full of finished
// connections would leave only the newest half-open ones, the real
// clients' own, to evict (see README, Floods).
type clientRun struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []error
	wg         sync.WaitGroup
}

func (fl *floodLab) startClients(ctx context.Context, addrs []netip.Addr, min int, pause time.Duration, stop <-chan struct{}) *clientRun {
	r := &clientRun{}
	for _, a := range addrs {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for i := 0; ; i++ {
				if i >= min {
					select {
					case <-stop:
						return
					case <-time.After(pause):
					}
				}
				if err := fl.get(ctx, a); err != nil {
					r.failed.Add(1)
					r.mu.Lock()
					r.errs = append(r.errs, err)
					r.mu.Unlock()
					continue
				}
				r.ok.Add(1)
			}
		}()
	}
	return r
}

// check waits for the clients and fails the test if any connection failed.
func (r *clientRun) check(t *testing.T) int64 {
	t.Helper()
	r.wg.Wait()
	if n := r.failed.Load(); n > 0 {
		t.Fatalf("%d of %d real client connections failed; first: %v", n, n+r.ok.Load(), r.errs[0])
	}
	if r.ok.Load() == 0 {
		t.Fatal("no real client connection was made")
	}
	return r.ok.Load()
}

// info reads gvs's counters (without failing: callable from goroutines).
func info(socket string) (map[string]uint64, error) {
	c, err := control.Dial(socket)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rep, err := c.Do(&control.Request{Op: control.OpInfo})
	if err != nil {
		return nil, err
	}
	if rep.Error != nil || rep.Info == nil {
		return nil, fmt.Errorf("info: %+v", rep.Error)
	}
	return rep.Info.Counters, nil
}

// tablePoll polls the connection table's size until stop is closed and
// records the largest seen.
type tablePoll struct {
	max, polls atomic.Uint64
	err        atomic.Pointer[error]
	done       chan struct{}
}

func pollTable(socket string, stop <-chan struct{}) *tablePoll {
	p := &tablePoll{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			c, err := info(socket)
			if err != nil {
				p.err.Store(&err)
				return
			}
			if n := c["conns.entries"]; n > p.max.Load() {
				p.max.Store(n)
			}
			p.polls.Add(1)
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return p
}

// procStatus reads a field of /proc/PID/status ("VmRSS" is in kB).
func procStatus(t *testing.T, pid int, field string) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", field, v)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// countDir counts the entries of a /proc directory (tasks, fds).
func countDir(t *testing.T, path string) int {
	t.Helper()
	ents, err := os.ReadDir(path)
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// rssLimitKB is the generous bound the flood and soak tests put on gvs's
// resident memory: its rings (an 18 MiB receive and an 18 MiB transmit
// ring per worker and interface), a full table of floodConnMax entries
// (about 240 bytes each) and the Go heap, several times over; a race-built
// gvs (under go test -race) takes up to ten times the memory.
func rssLimitKB() uint64 {
	if raceEnabled {
		return 2 << 20 // 2 GiB
	}
	return 512 << 10 // 512 MiB
}

// The SYN flood's sizes: more spoofed sources than the table holds.
const (
	floodCount   = 120000 // distinct sources, all in 198.18.0.0/15
	floodConnMax = 50000  // gvs --conn-max
	floodRate    = 20000  // SYNs per second: the flood lasts 6 s
	floodClients = 100    // real clients, each from its own address
)

// TestSYNFlood: a SYN flood from 120 000 spoofed sources, through a
// router, at a director whose connection table holds 50 000 entries,
// while 100 real clients (real TCP through their kernels, behind the same
// router) keep opening connections to the VIP. Every real connection
// completes; the table never holds more than its bound (polled all
// along); half-open entries are evicted to make room (counted, oldest
// first: the flood's, since a real client's SYN_RECV lasts one round
// trip), no new connection is refused, no frame is dropped for want of a
// transmit slot, and gvs's memory stays within a fixed bound.
func TestSYNFlood(t *testing.T) {
	fl := newFloodLab(t, floodClients, "--conn-max", strconv.Itoa(floodConnMax))
	ctx := context.Background()
	// Every client once before: ARP and the router's caches settle.
	warm := fl.startClients(ctx, fl.clients, 1, 0, closedChan())
	warm.check(t)
	pid := gvsProcess(t, fl.Lab).Pid
	rssBefore := procStatus(t, pid, "VmRSS")

	stop := make(chan struct{})
	poll := pollTable(fl.Socket(), stop)
	// At most 10 connections a second each: at most 1000 a second in all,
	// about 10 000 entries of finished connections over the test, which
	// leaves 40 000 places to half-open ones: 2 s of the flood, far more
	// than a real handshake takes.
	clients := fl.startClients(ctx, fl.clients, 3, 100*time.Millisecond, stop)
	flood := &SYNFlood{NS: fl.Flooder.Name, Dev: "eth0", DstMAC: fl.routerMAC, Sources: floodSources,
		Count: floodCount, Dst: netip.AddrPortFrom(VIP, 80), Rate: floodRate}
	sent, err := flood.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The clients go on for a moment after the flood, then stop.
	time.Sleep(2 * time.Second)
	close(stop)
	n := clients.check(t)
	<-poll.done
	if e := poll.err.Load(); e != nil {
		t.Fatalf("polling the table: %v", *e)
	}
	c, err := info(fl.Socket())
	if err != nil {
		t.Fatal(err)
	}
	rssAfter := procStatus(t, pid, "VmRSS")
	t.Logf("flood: %d SYNs sent; %d real connections; table: max %d entries seen over %d polls, now %d, bound %d; "+
		"evicted %d, refused %d; verdicts: forwarded %d, no_conn %d, table_full %d, tx_full %d; RSS %d -> %d kB",
		sent, n, poll.max.Load(), poll.polls.Load(), c["conns.entries"], c["conns.max"], c["conns.evicted"], c["conns.full"],
		c["verdict.forwarded"], c["verdict.no_conn"], c["verdict.table_full"], c["verdict.tx_full"], rssBefore, rssAfter)
	if sent < floodCount*9/10 {
		t.Fatalf("only %d of %d SYNs went out", sent, floodCount)
	}
	if c["conns.max"] != floodConnMax {
		t.Fatalf("table bound %d, want %d", c["conns.max"], floodConnMax)
	}
	if poll.max.Load() > floodConnMax || c["conns.entries"] > floodConnMax {
		t.Fatalf("the table held %d entries, more than its bound %d", max(poll.max.Load(), c["conns.entries"]), floodConnMax)
	}
	if c["conns.evicted"] == 0 {
		t.Fatalf("no half-open entry was evicted: the table (max %d entries seen) never filled", poll.max.Load())
	}
	if c["conns.full"] != 0 || c["verdict.table_full"] != 0 {
		t.Fatalf("%d new connections refused with a full table: half-open ones should have been evicted", c["conns.full"])
	}
	if c["verdict.tx_full"] != 0 {
		t.Fatalf("%d frames dropped for want of a transmit slot", c["verdict.tx_full"])
	}
	if rssAfter > rssLimitKB() {
		t.Fatalf("gvs's resident memory grew to %d kB (bound %d kB; %d kB before the flood)", rssAfter, rssLimitKB(), rssBefore)
	}
}

func closedChan() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
