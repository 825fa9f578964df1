package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/gvs-project/gvs/internal/nstest"
)

// Tests of gvs's privileges and of what it does with its state on
// SIGTERM, SIGHUP and restart.

// capNetAdmin is CAP_NET_ADMIN's bit (include/uapi/linux/capability.h):
// the one capability gvs keeps.
const capNetAdmin = 1 << 12

// stateSafety bounds each wait of these tests for something gvs must do
// (log a line, exit); none is a measurement.
const stateSafety = 20 * time.Second

var (
	noCgoOnce sync.Once
	noCgoBin  string
	noCgoErr  error
)

// noCgoGvs returns a gvs built without cgo, as make build builds it: the
// only kind that can drop its capabilities on every thread. Without -race
// the tests' gvs is one; with -race (which needs cgo) one more is built.
func noCgoGvs(t *testing.T) string {
	t.Helper()
	if !raceEnabled {
		return gvsBin
	}
	noCgoOnce.Do(func() {
		noCgoBin = filepath.Join(filepath.Dir(gvsBin), "gvs-nocgo")
		cmd := exec.Command("go", "build", "-o", noCgoBin, "../cmd/gvs")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			noCgoErr = fmt.Errorf("building gvs without cgo: %v\n%s", err, out)
		}
	})
	if noCgoErr != nil {
		t.Fatal(noCgoErr)
	}
	return noCgoBin
}

// newStateLab is a DR lab (the VIP owned by gvs) with the web servers
// running and gvs, the binary given, not started.
func newStateLab(t *testing.T, gvs string) *Lab {
	t.Helper()
	nstest.Require(t)
	l := buildLab(t, Config{Mode: DR, Gvs: gvs}, "gvs")
	if err := l.StartServers(); err != nil {
		t.Fatal(err)
	}
	return l
}

// gvsProcess returns the running gvs's process (ip netns exec runs gvs
// in its own place, so the command's pid is gvs's).
func gvsProcess(t *testing.T, l *Lab) *os.Process {
	t.Helper()
	l.mu.Lock()
	p := l.gvs.Process
	l.mu.Unlock()
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.Pid))
	if err != nil || !strings.HasPrefix(string(comm), "gvs") {
		t.Fatalf("process %d is %q (%v), not gvs", p.Pid, comm, err)
	}
	return p
}

// signalGvs sends sig to gvs.
func signalGvs(t *testing.T, l *Lab, sig os.Signal) {
	t.Helper()
	if err := gvsProcess(t, l).Signal(sig); err != nil {
		t.Fatalf("signalling gvs: %v", err)
	}
}

// stopGvs sends SIGTERM and waits for gvs to exit; it returns how gvs
// exited (nil: status 0).
func stopGvs(t *testing.T, l *Lab) error {
	t.Helper()
	signalGvs(t, l, syscall.SIGTERM)
	select {
	case <-l.gvsDone:
		return l.gvsErr
	case <-time.After(stateSafety):
		t.Fatalf("gvs did not exit within %v of SIGTERM\n%s", stateSafety, l.GvsLog())
		return nil
	}
}

// waitLog waits until gvs has logged a line containing s n times, and
// returns the last such line.
func waitLog(t *testing.T, l *Lab, s string, n int) string {
	t.Helper()
	deadline := time.Now().Add(stateSafety)
	for {
		var found []string
		for _, line := range strings.Split(l.GvsLog(), "\n") {
			if strings.Contains(line, s) {
				found = append(found, line)
			}
		}
		if len(found) >= n {
			return found[n-1]
		}
		if exited, err := l.GvsExited(); exited {
			t.Fatalf("gvs exited (%v) before logging %q\n%s", err, s, l.GvsLog())
		}
		if time.Now().After(deadline) {
			t.Fatalf("gvs did not log %q %d times within %v\n%s", s, n, stateSafety, l.GvsLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nftIn returns a netlink nftables connection into the namespace ns.
func nftIn(t *testing.T, ns string) *nftables.Conn {
	t.Helper()
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// netdevTables lists the netdev-family nftables tables of a namespace
// (this machine has no nft command).
func netdevTables(t *testing.T, ns string) []string {
	t.Helper()
	tables, err := nftIn(t, ns).ListTablesOfFamily(nftables.TableFamilyNetdev)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range tables {
		names = append(names, tb.Name)
	}
	return names
}

// filterDsts lists the destinations (address:port/protocol number) in
// gvs's nftables set dst.
func filterDsts(t *testing.T, ns string) []string {
	t.Helper()
	elems, err := nftIn(t, ns).GetSetElements(&nftables.Set{Name: "dst",
		Table: &nftables.Table{Name: "gvs", Family: nftables.TableFamilyNetdev}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range elems {
		// ipv4_addr . inet_proto . inet_service, each in a 4-byte
		// register: address, protocol (then padding), port.
		if len(e.Key) < 10 {
			t.Fatalf("set element %x", e.Key)
		}
		a := netip.AddrFrom4([4]byte(e.Key[0:4]))
		out = append(out, fmt.Sprintf("%v:%d/%d", a, int(e.Key[8])<<8|int(e.Key[9]), e.Key[4]))
	}
	return out
}

// threadCaps reads a thread's capability sets and no_new_privs.
func threadCaps(t *testing.T, status string) (map[string]uint64, bool) {
	t.Helper()
	b, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	caps := map[string]uint64{}
	nnp := false
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		if strings.HasPrefix(k, "Cap") {
			n, err := strconv.ParseUint(v, 16, 64)
			if err != nil {
				t.Fatalf("%s: %s", status, line)
			}
			caps[k] = n
		}
		if k == "NoNewPrivs" {
			nnp = v == "1"
		}
	}
	return caps, nnp
}

// writeRules writes a rules file.
func writeRules(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// saved is gvsadm -S -n.
func saved(t *testing.T, l *Lab) string {
	t.Helper()
	out, err := l.Gvsadm(context.Background(), "-S", "-n")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// theRules are the lab's services as gvsadm -S -n writes them: TCP and
// UDP port 80 over both real servers with rr.
var theRules = `-A -t 192.168.150.100:80 -s rr
-a -t 192.168.150.100:80 -r 192.168.150.12:80 -g -w 1
-a -t 192.168.150.100:80 -r 192.168.150.13:80 -g -w 1
-A -u 192.168.150.100:80 -s rr
-a -u 192.168.150.100:80 -r 192.168.150.12:80 -g -w 1
-a -u 192.168.150.100:80 -r 192.168.150.13:80 -g -w 1
`

// getBoth makes n requests on new connections and checks that both real
// servers answered.
func getBoth(t *testing.T, l *Lab, n int) {
	t.Helper()
	got := map[string]int{}
	for i := range n {
		ans, err := l.Get(context.Background())
		if err != nil {
			t.Fatalf("request %d: %v\n%s", i, err, l.GvsLog())
		}
		got[ans]++
	}
	if len(got) != 2 {
		t.Fatalf("answers %v: want both real servers", got)
	}
}

// TestPrivilegesDropped: once serving, every thread of gvs (built as make
// build builds it) has CAP_NET_ADMIN and nothing else in its effective,
// permitted and bounding sets, none inheritable or ambient, and
// no_new_privs; and with that gvs still forwards, applies gvsadm's
// changes to its nftables filter, reloads on SIGHUP and cleans up on
// SIGTERM.
func TestPrivilegesDropped(t *testing.T) {
	l := newStateLab(t, noCgoGvs(t))
	ctx := context.Background()
	rules := filepath.Join(t.TempDir(), "gvs.rules")
	writeRules(t, rules, theRules)
	if err := l.StartGvs(ctx, "--rules", rules); err != nil {
		t.Fatal(err)
	}
	waitLog(t, l, "capabilities dropped", 1)
	p := gvsProcess(t, l)
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", p.Pid))
	if err != nil || len(tasks) < 2 {
		t.Fatalf("threads of gvs: %v %v", tasks, err)
	}
	for _, task := range tasks {
		caps, nnp := threadCaps(t, task)
		want := map[string]uint64{"CapInh": 0, "CapPrm": capNetAdmin, "CapEff": capNetAdmin, "CapBnd": capNetAdmin, "CapAmb": 0}
		for k, v := range want {
			if caps[k] != v {
				t.Errorf("%s: %s %016x, want %016x", task, k, caps[k], v)
			}
		}
		if !nnp {
			t.Errorf("%s: no_new_privs not set", task)
		}
	}
	t.Logf("%d threads checked", len(tasks))

	getBoth(t, l, 4)
	// A new service reaches the kernel's filter (nfnetlink: CAP_NET_ADMIN,
	// from a socket opened without setns).
	svc := VIP.String() + ":8080"
	for _, args := range [][]string{{"-A", "-t", svc, "-s", "rr"}, {"-a", "-t", svc, "-r", RIPs[0].String(), "-g"}} {
		if _, err := l.Gvsadm(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	if dsts := filterDsts(t, l.Director.NS); !strings.Contains(strings.Join(dsts, " "), VIP.String()+":8080/6") {
		t.Fatalf("the filter's destinations after gvsadm -A: %v", dsts)
	}
	signalGvs(t, l, syscall.SIGHUP)
	waitLog(t, l, "rules reloaded", 1)
	if got := saved(t, l); got != theRules {
		t.Fatalf("after SIGHUP, gvsadm -S -n:\n%s\nwant the file:\n%s", got, theRules)
	}
	if dsts := filterDsts(t, l.Director.NS); strings.Contains(strings.Join(dsts, " "), ":8080") {
		t.Fatalf("the filter's destinations after the reload: %v", dsts)
	}
	getBoth(t, l, 4)
	if err := stopGvs(t, l); err != nil {
		t.Fatalf("gvs exited with %v after SIGTERM\n%s", err, l.GvsLog())
	}
	if tables := netdevTables(t, l.Director.NS); len(tables) != 0 {
		t.Fatalf("tables left after SIGTERM: %v", tables)
	}
}

// neighbour is the client's neighbour entry for the VIP, as ip neigh
// shows it.
func neighbour(t *testing.T, l *Lab) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", l.Client.NS, "ip", "neigh", "show", VIP.String(), "dev", "eth0").CombinedOutput()
	if err != nil {
		t.Fatalf("ip neigh: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestStopOnSIGTERM: SIGTERM while clients keep connecting makes gvs exit
// with status 0 after removing its nftables table and its control socket,
// and it no longer answers ARP for the VIP.
func TestStopOnSIGTERM(t *testing.T) {
	l := newStateLab(t, gvsBin)
	ctx := context.Background()
	if err := l.StartGvs(ctx); err != nil {
		t.Fatal(err)
	}
	for _, args := range l.ServiceCommands("-t", "rr") {
		if _, err := l.Gvsadm(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	getBoth(t, l, 4)
	if tables := netdevTables(t, l.Director.NS); len(tables) != 1 || tables[0] != "gvs" {
		t.Fatalf("netdev tables while gvs runs: %v", tables)
	}
	if _, err := os.Stat(l.Socket()); err != nil {
		t.Fatal(err)
	}
	dirMAC := macOf(DIP)
	if n := neighbour(t, l); !strings.Contains(n, "lladdr "+dirMAC) {
		t.Fatalf("the client's entry for the VIP while gvs runs: %q, want %s", n, dirMAC)
	}

	// Clients keep connecting while gvs stops (at most 2000 requests).
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		for ; n < 2000; n++ {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			c, cancel := context.WithTimeout(ctx, time.Second)
			l.Get(c)
			cancel()
		}
		done <- n
	}()
	time.Sleep(200 * time.Millisecond) // let some requests run (not a measurement)
	err := stopGvs(t, l)
	close(stop)
	n := <-done
	if err != nil {
		t.Fatalf("gvs exited with %v after SIGTERM\n%s", err, l.GvsLog())
	}
	t.Logf("%d requests ran beside the stop", n)
	if !strings.Contains(l.GvsLog(), "gvs stopped") {
		t.Fatalf("no \"gvs stopped\" in the log:\n%s", l.GvsLog())
	}
	if tables := netdevTables(t, l.Director.NS); len(tables) != 0 {
		t.Fatalf("netdev tables after SIGTERM: %v", tables)
	}
	if _, err := os.Stat(l.Socket()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("control socket after SIGTERM: %v", err)
	}
	// Nobody answers ARP for the VIP any more: the client's new request
	// stays unanswered.
	l.Client.mustRun(t, "ip", "neigh", "flush", "dev", "eth0")
	c, err := dialFrom(ctx, l, ClientIP)
	if err == nil {
		c.Close()
		t.Fatal("a connection to the VIP succeeded after gvs stopped")
	}
	if n := neighbour(t, l); strings.Contains(n, "lladdr") {
		t.Fatalf("the VIP was resolved after gvs stopped: %q", n)
	}
}

// keepAlive is a long-lived HTTP connection from the client.
type keepAlive struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func openKeepAlive(t *testing.T, l *Lab) *keepAlive {
	t.Helper()
	c, err := l.Dial(context.Background(), netip.AddrPortFrom(VIP, 80))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAlive{t: t, conn: c, r: bufio.NewReader(c)}
}

// ask sends one request on the connection and returns the answer.
func (k *keepAlive) ask() string {
	k.t.Helper()
	k.conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(k.conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		k.t.Fatalf("the long-lived connection broke: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return strings.TrimSpace(string(b))
}

// activeConns reads a real server's ActiveConn from gvsadm -Ln.
func activeConns(t *testing.T, l *Lab, rip string) string {
	t.Helper()
	out, err := l.Gvsadm(context.Background(), "-Ln", "-t", VIP.String()+":80")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`-> ` + regexp.QuoteMeta(rip) + `:80\s+Route\s+\d+\s+(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no line for %s in:\n%s", rip, out)
	}
	return m[1]
}

// TestReloadOnHangup: SIGHUP replaces the configuration with the rules
// file's, undoing every gvsadm change since, while a long-lived connection
// keeps its server and its entry (the server, kept in place, still counts
// it); a bad file changes nothing and the log names the line.
func TestReloadOnHangup(t *testing.T) {
	l := newStateLab(t, gvsBin)
	ctx := context.Background()
	rules := filepath.Join(t.TempDir(), "gvs.rules")
	writeRules(t, rules, theRules)
	if err := l.StartGvs(ctx, "--rules", rules); err != nil {
		t.Fatal(err)
	}
	if got := saved(t, l); got != theRules {
		t.Fatalf("after --rules, gvsadm -S -n:\n%s\nwant:\n%s", got, theRules)
	}
	ka := openKeepAlive(t, l)
	pinned := ka.ask()
	rip := strings.TrimPrefix(pinned, "from ")
	if got := activeConns(t, l, rip); got != "1" {
		t.Fatalf("ActiveConn of %s: %s, want 1", rip, got)
	}

	// Changes made with gvsadm, all to be undone by the reload.
	for _, args := range [][]string{
		{"-A", "-t", VIP.String() + ":8080", "-s", "wlc"},
		{"-a", "-t", VIP.String() + ":8080", "-r", RIPs[0].String(), "-g"},
		{"-E", "-t", VIP.String() + ":80", "-s", "wrr"},
		{"-e", "-t", VIP.String() + ":80", "-r", rip, "-g", "-w", "5"},
		{"-d", "-u", VIP.String() + ":80", "-r", RIPs[0].String()},
		{"--set", "100", "50", "60"},
	} {
		if _, err := l.Gvsadm(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	if got := saved(t, l); got == theRules {
		t.Fatal("the gvsadm changes changed nothing")
	}
	signalGvs(t, l, syscall.SIGHUP)
	waitLog(t, l, "rules reloaded", 1)
	if got := saved(t, l); got != theRules {
		t.Fatalf("after SIGHUP, gvsadm -S -n:\n%s\nwant the file:\n%s", got, theRules)
	}
	if out, err := l.Gvsadm(ctx, "-L", "--timeout"); err != nil || out != "Timeout (tcp tcpfin udp): 900 120 300\n" {
		t.Fatalf("timeouts after the reload: %q %v", out, err)
	}
	for range 3 {
		if got := ka.ask(); got != pinned {
			t.Fatalf("after the reload the long-lived connection was answered %q, not %q", got, pinned)
		}
	}
	if got := activeConns(t, l, rip); got != "1" {
		t.Fatalf("ActiveConn of %s after the reload: %s, want 1 (the server kept in place)", rip, got)
	}
	out, err := l.Gvsadm(ctx, "-Lnc")
	if err != nil || !regexpLine(out, "TCP", "ESTABLISHED", ClientIP.String(), VIP.String()+":80", rip+":80") {
		t.Fatalf("the connection's entry after the reload: %v\n%s", err, out)
	}
	getBoth(t, l, 4)

	// Bad files: a line the table refuses, and a server gvs cannot
	// reach. Nothing changes; the log names the line.
	for i, bad := range []struct{ text, line, why string }{
		{theRules + "-A -t 192.168.150.100:80 -s wrr\n", "line 7", "already exists"},
		{"-A -t 192.168.150.100:80 -s rr\n-a -t 192.168.150.100:80 -r 10.9.9.9:80 -g -w 1\n", "line 2", "not on a network attached to a gvs interface"},
		{theRules + "-a -t 192.168.150.100:80 -r 192.168.150.14:80 -g -x 5 -y 9\n", "line 7", "lower threshold 9 above upper threshold 5"},
		{"\n-A -t 192.168.150.100:80 -s nosuch\n", "line 2", "nosuch"},
		{"# a comment\n-A -t 192.168.150.100:80 --bogus\n", "line 2", "--bogus: unknown option"},
	} {
		writeRules(t, rules, bad.text)
		signalGvs(t, l, syscall.SIGHUP)
		line := waitLog(t, l, "rules not reloaded", i+1)
		t.Logf("bad file %d: %s", i, line)
		if !strings.Contains(line, rules+" "+bad.line+":") || !strings.Contains(line, bad.why) {
			t.Errorf("bad file %d: logged %q, want it to name %s and say %q", i, line, bad.line, bad.why)
		}
		if got := saved(t, l); got != theRules {
			t.Fatalf("bad file %d changed the configuration:\n%s", i, got)
		}
		if got := ka.ask(); got != pinned {
			t.Fatalf("after bad file %d the long-lived connection was answered %q", i, got)
		}
	}

	// Another file: a changed scheduler and weight, a service removed
	// and one added. The result is exactly the file's.
	next := `-A -t 192.168.150.100:80 -s wrr
-a -t 192.168.150.100:80 -r 192.168.150.12:80 -g -w 1
-a -t 192.168.150.100:80 -r 192.168.150.13:80 -g -w 2
-A -t 192.168.150.100:8080 -s sh
-a -t 192.168.150.100:8080 -r 192.168.150.12:8080 -g -w 1
`
	writeRules(t, rules, next)
	signalGvs(t, l, syscall.SIGHUP)
	waitLog(t, l, "rules reloaded", 2)
	if got := saved(t, l); got != next {
		t.Fatalf("after reloading another file, gvsadm -S -n:\n%s\nwant:\n%s", got, next)
	}
	if got := ka.ask(); got != pinned {
		t.Fatalf("after the last reload the long-lived connection was answered %q", got)
	}
}

// shPicks asks the VIP from each source address and returns who answered.
func shPicks(t *testing.T, l *Lab, srcs []netip.Addr) map[netip.Addr]string {
	t.Helper()
	picks := map[netip.Addr]string{}
	for _, src := range srcs {
		c, err := dialFrom(context.Background(), l, src)
		if err != nil {
			t.Fatalf("from %v: %v\n%s", src, err, l.GvsLog())
		}
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		ans, err := readAnswer(c)
		c.Close()
		if err != nil {
			t.Fatalf("from %v: %v", src, err)
		}
		picks[src] = ans
	}
	return picks
}

// TestRestartKeepsSHPicks: stopped and started again with the same rules
// file, gvs has the same services and its sh scheduler sends every client
// to the server it picked before (its table is built from the servers in
// list order, which the file restores). The same servers in the other
// order send the clients elsewhere: the order is what the file keeps.
func TestRestartKeepsSHPicks(t *testing.T) {
	l := newStateLab(t, gvsBin)
	ctx := context.Background()
	dir := t.TempDir()
	rules, reversed := filepath.Join(dir, "sh.rules"), filepath.Join(dir, "reversed.rules")
	text := "-A -t 192.168.150.100:80 -s sh\n" +
		"-a -t 192.168.150.100:80 -r 192.168.150.12:80 -g -w 1\n" +
		"-a -t 192.168.150.100:80 -r 192.168.150.13:80 -g -w 1\n"
	writeRules(t, rules, text)
	writeRules(t, reversed, "-A -t 192.168.150.100:80 -s sh\n"+
		"-a -t 192.168.150.100:80 -r 192.168.150.13:80 -g -w 1\n"+
		"-a -t 192.168.150.100:80 -r 192.168.150.12:80 -g -w 1\n")
	var srcs []netip.Addr
	for i := range 32 {
		a := netip.AddrFrom4([4]byte{192, 168, 150, byte(160 + i)})
		srcs = append(srcs, a)
		l.Client.mustRun(t, "ip", "addr", "add", a.String()+"/24", "dev", "eth0")
	}

	run := func(file string) (string, map[netip.Addr]string) {
		t.Helper()
		if err := l.StartGvs(ctx, "--rules", file); err != nil {
			t.Fatal(err)
		}
		s := saved(t, l)
		picks := shPicks(t, l, srcs)
		if err := stopGvs(t, l); err != nil {
			t.Fatalf("gvs exited with %v after SIGTERM\n%s", err, l.GvsLog())
		}
		return s, picks
	}
	saved1, before := run(rules)
	if saved1 != text {
		t.Fatalf("gvsadm -S -n:\n%s\nwant the file:\n%s", saved1, text)
	}
	served := map[string]int{}
	for _, a := range before {
		served[a]++
	}
	if len(served) != 2 {
		t.Fatalf("sh sent the %d clients to %v: want both servers used", len(srcs), served)
	}
	saved2, after := run(rules)
	if saved2 != saved1 {
		t.Fatalf("after the restart, gvsadm -S -n:\n%s\nbefore:\n%s", saved2, saved1)
	}
	for _, src := range srcs {
		if after[src] != before[src] {
			t.Errorf("%v went to %q before the restart and to %q after", src, before[src], after[src])
		}
	}
	_, other := run(reversed)
	moved := 0
	for _, src := range srcs {
		if other[src] != before[src] {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("the servers in the other order made the same picks: the test cannot tell orders apart")
	}
	t.Logf("%d clients kept their server across the restart; %d of them move with the servers in the other order (%v)", len(srcs), moved, served)

	// A reload gives the order a fresh start with the file gives, both
	// ways: the same picks as those starts.
	live := filepath.Join(dir, "live.rules")
	writeRules(t, live, text)
	if err := l.StartGvs(ctx, "--rules", live); err != nil {
		t.Fatal(err)
	}
	for i, step := range []struct {
		file string
		want map[netip.Addr]string
	}{{reversed, other}, {rules, before}} {
		b, err := os.ReadFile(step.file)
		if err != nil {
			t.Fatal(err)
		}
		writeRules(t, live, string(b))
		signalGvs(t, l, syscall.SIGHUP)
		waitLog(t, l, "rules reloaded", i+1)
		got := shPicks(t, l, srcs)
		for _, src := range srcs {
			if got[src] != step.want[src] {
				t.Fatalf("after reloading %s, %v went to %q; a fresh start with the file sends it to %q",
					filepath.Base(step.file), src, got[src], step.want[src])
			}
		}
	}
}

// TestInterfaceDownAndUp: gvs's interface going down and up again does
// not stop gvs, and it serves again once the link is back (its sockets
// stay bound to the interface, so nothing is reopened: gvs could not,
// having dropped CAP_NET_RAW).
func TestInterfaceDownAndUp(t *testing.T) {
	l := newStateLab(t, gvsBin)
	ctx := context.Background()
	if err := l.StartGvs(ctx); err != nil {
		t.Fatal(err)
	}
	for _, args := range l.ServiceCommands("-t", "rr") {
		if _, err := l.Gvsadm(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	getBoth(t, l, 4)
	l.Director.mustRun(t, "ip", "link", "set", "eth0", "down")
	// gvs's ARP socket sees the link go (ENETDOWN), and says so.
	waitLog(t, l, "network is down", 1)
	l.Director.mustRun(t, "ip", "link", "set", "eth0", "up")
	getBoth(t, l, 4)
	if exited, err := l.GvsExited(); exited {
		t.Fatalf("gvs exited: %v\n%s", err, l.GvsLog())
	}
}
