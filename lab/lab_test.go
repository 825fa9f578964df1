package lab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gvs-project/gvs/control"
	"github.com/gvs-project/gvs/internal/netns"
	"github.com/gvs-project/gvs/internal/nstest"
)

// The binaries under test, built once by TestMain.
var gvsBin, gvsadmBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gvs-lab-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gvsBin, gvsadmBin = filepath.Join(dir, "gvs"), filepath.Join(dir, "gvsadm")
	for bin, pkg := range map[string]string{gvsBin: "../cmd/gvs", gvsadmBin: "../cmd/gvsadm"} {
		args := []string{"build", "-o", bin, pkg}
		if bin == gvsBin && raceEnabled {
			// The daemon under test runs with the race detector when
			// the tests do: the end-to-end traffic and concurrent
			// gvsadm clients then check the real gvs for data races.
			args = []string{"build", "-race", "-o", bin, pkg}
		}
		cmd := exec.Command("go", args...)
		if !raceEnabled {
			// As make build builds them: without cgo, the only way gvs
			// can drop its capabilities on every thread.
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildLab builds a lab for one test (cfg, with the test binaries of gvs
// and gvsadm unless it names others, namespaces named from prefix) and
// tears it down when the test ends: a failed test logs the lab's narration
// and gvs's log, and a data race the race-built gvs reports fails it.
func buildLab(t *testing.T, cfg Config, prefix string) *Lab {
	t.Helper()
	nstest.Require(t)
	var out bytes.Buffer
	cfg.Prefix = nstest.Name(prefix)
	if cfg.Gvs == "" {
		cfg.Gvs = gvsBin
	}
	if cfg.Gvsadm == "" {
		cfg.Gvsadm = gvsadmBin
	}
	cfg.Out = &out
	l, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("building the lab: %v\n%s", err, out.String())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lab narration:\n%s\ngvs log:\n%s", out.String(), l.GvsLog())
		}
		if err := l.Close(); err != nil {
			t.Errorf("tearing down: %v", err)
		}
		// A race-built gvs reports races on its log, and at exit.
		if strings.Contains(l.GvsLog(), "DATA RACE") {
			t.Errorf("gvs reported a data race:\n%s", l.GvsLog())
		}
	})
	return l
}

// newLab builds the seed's lab for one test, with gvs running and the
// notes' service configured, and tears it down when the test ends.
func newLab(t *testing.T, cfg Config) *Lab {
	t.Helper()
	nstest.Require(t)
	ctx := context.Background()
	l := buildLab(t, cfg, "gvt")
	if err := l.StartServers(); err != nil {
		t.Fatal(err)
	}
	if err := l.StartGvs(ctx); err != nil {
		t.Fatal(err)
	}
	for _, args := range append(l.ServiceCommands("-t", "rr"), l.ServiceCommands("-u", "rr")...) {
		if _, err := l.Gvsadm(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// counters reads gvs's counters over the control socket.
func counters(t *testing.T, l *Lab) map[string]uint64 {
	t.Helper()
	c, err := control.Dial(l.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rep, err := c.Do(&control.Request{Op: control.OpInfo})
	if err != nil || rep.Error != nil || rep.Info == nil {
		t.Fatalf("info: %v %+v", err, rep)
	}
	return rep.Info.Counters
}

// udpAsk sends one datagram from the client to the VIP and returns the
// answer.
func udpAsk(t *testing.T, l *Lab, msg string) string {
	t.Helper()
	var c net.Conn
	if err := netns.Do(l.Client.NS, func() error {
		var err error
		c, err = net.Dial("udp4", VIP.String()+":80")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 2048)
	// UDP may lose the first datagram while ARP settles: ask a few times.
	for range 5 {
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(buf)
		if err == nil {
			return string(buf[:n])
		}
	}
	t.Fatalf("no UDP answer to %q\n%s", msg, l.GvsLog())
	return ""
}

// snmp reads counters of node01's kernel (/proc/net/snmp) that show
// whether it handled frames gvs owns: forwarded datagrams and TCP resets.
func snmp(t *testing.T, ns string) map[string]int64 {
	t.Helper()
	var b []byte
	if err := netns.Do(ns, func() error {
		var err error
		// /proc/net is the process's namespace; thread-self is this
		// thread's, which netns.Do put in ns.
		b, err = os.ReadFile("/proc/thread-self/net/snmp")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j := 1; j < len(names) && j < len(values); j++ {
			v, _ := strconv.ParseInt(values[j], 10, 64)
			out[strings.TrimSuffix(names[0], ":")+"."+names[j]] = v
		}
	}
	return out
}

// TestModes drives real TCP and UDP through the kernels of a client and
// two real servers, in every forwarding mode's lab, at veth's default
// offloads: rr over both servers, keep-alive requests pinned to one,
// 4 MiB uploads and downloads checked by SHA-256 (so super-frames, full
// segments and, for NAT and FULLNAT, the reply path all cross gvs), UDP
// request and response, the connection states gvsadm -Lnc shows, and the
// director's kernel never handling a frame gvs owns. DR runs with the VIP
// owned by gvs alone and on the director's kernel, as the notes have it.
func TestModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"DR/VIP owned by gvs", Config{Mode: DR}},
		{"DR/VIP owned by gvs, ip_forward=1", Config{Mode: DR, IPForward: true}},
		{"DR/VIP on the director's kernel", Config{Mode: DR, VIPOnDirector: true}},
		{"DR/VIP on the director's kernel, ip_forward=1", Config{Mode: DR, VIPOnDirector: true, IPForward: true}},
		{"NAT", Config{Mode: NAT}},
		{"NAT/ip_forward=1", Config{Mode: NAT, IPForward: true}},
		{"NAT/VIP on the director's kernel, ip_forward=1", Config{Mode: NAT, VIPOnDirector: true, IPForward: true}},
		{"TUN", Config{Mode: TUN}},
		{"TUN/ip_forward=1", Config{Mode: TUN, IPForward: true}},
		{"FULLNAT", Config{Mode: FullNAT}},
		{"FULLNAT/ip_forward=1", Config{Mode: FullNAT, IPForward: true}},
		// Two workers per interface: replies of NAT and FULLNAT
		// connections may reach another worker than their requests.
		{"DR/2 workers", Config{Mode: DR, Workers: 2}},
		{"NAT/2 workers", Config{Mode: NAT, Workers: 2}},
		{"TUN/2 workers", Config{Mode: TUN, Workers: 2}},
		{"FULLNAT/2 workers", Config{Mode: FullNAT, Workers: 2}},
		// TPACKET_V3 receive rings (blocks of frames).
		// No receive filter: every frame on the interfaces reaches gvs.
		{"NAT/receive-filter=false", Config{Mode: NAT, GvsArgs: []string{"--receive-filter=false"}}},
		{"DR/rx-ring v3", Config{Mode: DR, GvsArgs: []string{"--rx-ring", "v3"}}},
		{"NAT/rx-ring v3, 2 workers", Config{Mode: NAT, Workers: 2, GvsArgs: []string{"--rx-ring", "v3"}}},
		{"TUN/rx-ring v3", Config{Mode: TUN, GvsArgs: []string{"--rx-ring", "v3"}}},
		// Workers that keep looking at their rings between frames.
		{"FULLNAT/busy-poll, 2 workers", Config{Mode: FullNAT, Workers: 2, GvsArgs: []string{"--busy-poll", "100us"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, tc.cfg)
			ctx := context.Background()
			before := snmp(t, l.Director.NS)

			// New connections: rr alternates, both servers answer.
			count := map[string]int{}
			for i := range 10 {
				ans, err := l.Get(ctx)
				if err != nil {
					t.Fatalf("request %d: %v\n%s", i, err, l.GvsLog())
				}
				count[ans]++
			}
			for _, rip := range l.RealAddrs() {
				if count["from "+rip.String()] != 5 {
					t.Fatalf("answers %v: want 5 from each real server", count)
				}
			}

			// One connection, many requests: pinned to one server.
			c := l.HTTPClient(true)
			defer c.CloseIdleConnections()
			first := ""
			for i := range 8 {
				resp, err := c.Get("http://" + VIP.String() + "/")
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if i == 0 {
					first = string(b)
				} else if string(b) != first {
					t.Fatalf("keep-alive request %d answered %q, the connection started with %q", i, b, first)
				}
			}

			// Bulk transfers at default offloads.
			upload(t, l, 4<<20)
			download(t, l, 4<<20)

			// UDP request and response; both servers answer in turn.
			udp := map[string]bool{}
			for i := range 4 {
				ans := udpAsk(t, l, fmt.Sprintf("ping %d", i))
				name, _, _ := strings.Cut(ans, ":")
				udp[name] = true
			}
			if len(udp) != 2 {
				t.Fatalf("UDP answers came from %v, want both servers", udp)
			}

			// The open keep-alive connection is ESTABLISHED in gvs's table,
			// pinned to the server that answered it; UDP entries show "UDP".
			out, err := l.Gvsadm(ctx, "-Lnc")
			if err != nil {
				t.Fatal(err)
			}
			server := strings.TrimPrefix(strings.TrimSpace(first), "from ")
			port := strconv.Itoa(int(tc.cfg.Mode.RealPort()))
			if !regexpLine(out, "TCP", "ESTABLISHED", ClientIP.String(), VIP.String()+":80", server+":"+port) {
				t.Fatalf("no ESTABLISHED entry to %s in:\n%s", server, out)
			}
			if !regexpLine(out, "UDP", "UDP", ClientIP.String(), VIP.String()+":80") {
				t.Fatalf("no UDP entry in:\n%s", out)
			}

			after := snmp(t, l.Director.NS)
			for _, k := range []string{"Ip.ForwDatagrams", "Tcp.OutRsts", "Tcp.PassiveOpens", "Udp.NoPorts"} {
				if after[k] != before[k] {
					t.Errorf("node01's kernel handled gvs's frames: %s went from %d to %d", k, before[k], after[k])
				}
			}
			cn := counters(t, l)
			if cn["verdict.forwarded"] == 0 {
				t.Fatalf("counters %v", cn)
			}
			for _, k := range []string{"verdict.arp_unresolved", "verdict.tx_full", "verdict.no_egress", "verdict.truncated", "verdict.malformed"} {
				if cn[k] != 0 {
					t.Errorf("%s = %d", k, cn[k])
				}
			}
			if tc.cfg.Mode == TUN && cn["tunnel.segmented"] == 0 {
				t.Errorf("the TUN upload crossed gvs without a super-frame to segment: %v", cn)
			}
		})
	}
}

// TestTunnelMTU: with an egress MTU on the director smaller than the
// client's, a 4 MiB upload with DF completes: gvs answers the oversize
// packets with fragmentation-needed and the client's kernel lowers its
// path MTU.
func TestTunnelMTU(t *testing.T) {
	l := newLab(t, Config{Mode: TUN, DirectorMTU: 1400})
	upload(t, l, 4<<20)
	cn := counters(t, l)
	if cn["tunnel.frag_needed"] == 0 {
		t.Fatalf("no fragmentation-needed was sent: %v", cn)
	}
	t.Logf("fragmentation-needed sent: %d", cn["tunnel.frag_needed"])
}

// regexpLine reports whether some line of out has all the fields, in order.
func regexpLine(out string, fields ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		rest := line
		ok := true
		for _, f := range fields {
			i := strings.Index(rest, f)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(f):]
		}
		if ok {
			return true
		}
	}
	return false
}

func patternSum(n int64) string {
	h := sha256.New()
	io.Copy(h, io.LimitReader(&Pattern{}, n))
	return hex.EncodeToString(h.Sum(nil))
}

// upload POSTs n pattern bytes and checks the real server's SHA-256.
func upload(t *testing.T, l *Lab, n int64) {
	t.Helper()
	c := l.HTTPClient(false)
	defer c.CloseIdleConnections()
	resp, err := c.Post("http://"+VIP.String()+"/sum", "application/octet-stream", io.LimitReader(&Pattern{}, n))
	if err != nil {
		t.Fatalf("upload of %d bytes: %v", n, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	f := strings.Fields(string(b))
	if len(f) != 4 || f[2] != strconv.FormatInt(n, 10) || f[3] != patternSum(n) {
		t.Fatalf("upload of %d bytes: server answered %q, want %d bytes with sum %s", n, b, n, patternSum(n))
	}
}

// download fetches n bytes and checks their SHA-256.
func download(t *testing.T, l *Lab, n int64) {
	t.Helper()
	c := l.HTTPClient(false)
	defer c.CloseIdleConnections()
	resp, err := c.Get(fmt.Sprintf("http://%s/bytes?n=%d", VIP, n))
	if err != nil {
		t.Fatalf("download of %d bytes: %v", n, err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	got, err := io.Copy(h, resp.Body)
	if err != nil || got != n || hex.EncodeToString(h.Sum(nil)) != patternSum(n) {
		t.Fatalf("download: %d bytes (err %v), sum mismatch=%v", got, err, hex.EncodeToString(h.Sum(nil)) != patternSum(n))
	}
}

// TestChangesWhileTrafficFlows: services and servers are added, edited and
// removed while a long-lived connection keeps sending; it never breaks,
// and new connections keep working.
func TestChangesWhileTrafficFlows(t *testing.T) {
	l := newLab(t, Config{Mode: DR})
	ctx := context.Background()
	conn, err := l.Dial(ctx, netip.AddrPortFrom(VIP, 80))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	ask := func() string {
		t.Helper()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("long-lived connection broke: %v\n%s", err, l.GvsLog())
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	pinned := ask()
	pinnedRIP := strings.TrimSpace(strings.TrimPrefix(pinned, "from "))

	// A stream of new connections runs beside the changes.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	newConns := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := l.Get(ctx); err != nil {
				mu.Lock()
				failures = append(failures, err)
				mu.Unlock()
			}
			mu.Lock()
			newConns++
			mu.Unlock()
		}
	}()

	svc := VIP.String() + ":80"
	changes := [][]string{
		{"-A", "-u", VIP.String() + ":53", "-s", "rr"},
		{"-a", "-u", VIP.String() + ":53", "-r", RIPs[0].String(), "-g"},
		{"-e", "-t", svc, "-r", RIPs[0].String(), "-g", "-w", "3"},
		{"-E", "-t", svc, "-s", "wrr"},
		{"-A", "-t", VIP.String() + ":8080", "-s", "wlc"},
		// Remove the pinned connection's own real server: IPVS keeps
		// its established flows going, and so does gvs.
		{"-d", "-t", svc, "-r", pinnedRIP},
		{"-D", "-u", VIP.String() + ":53"},
		{"-a", "-t", svc, "-r", pinnedRIP, "-g", "-w", "1"},
		{"-E", "-t", svc, "-s", "rr"},
		{"-D", "-t", VIP.String() + ":8080"},
	}
	for _, c := range changes {
		if _, err := l.Gvsadm(ctx, c...); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if got := ask(); got != pinned {
				t.Fatalf("after gvsadm %v the long-lived connection was answered %q, not %q", c, got, pinned)
			}
		}
	}
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d new connections failed during the changes; first: %v", len(failures), newConns, failures[0])
	}
	if newConns == 0 {
		t.Fatal("no new connection ran during the changes")
	}
	t.Logf("%d new connections and %d requests on one connection across %d changes", newConns, 3*len(changes)+1, len(changes))
}

// TestBadGvsadmArgumentsChangeNothing: mistakes get ipvsadm's answers and
// leave the configuration as it was.
func TestBadGvsadmArgumentsChangeNothing(t *testing.T) {
	l := newLab(t, Config{Mode: DR})
	ctx := context.Background()
	save := func() string {
		out, err := l.Gvsadm(ctx, "-S", "-n")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := save()
	svc := VIP.String() + ":80"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-A", "-t", svc, "-s", "rr"}, "Service already exists"},
		{[]string{"-a", "-t", svc, "-r", RIPs[0].String(), "-g"}, "Destination already exists"},
		{[]string{"-d", "-t", svc, "-r", "192.168.150.99"}, "No such destination"},
		{[]string{"-D", "-t", VIP.String() + ":81"}, "No such service"},
		{[]string{"-a", "-t", VIP.String() + ":81", "-r", RIPs[0].String()}, "Service not defined"},
		{[]string{"-A", "-t", VIP.String() + ":81", "-s", "nosuch"}, "Scheduler or persistence engine not found"},
		{[]string{"-a", "-t", svc, "-r", "192.168.150.20", "-w", "70000"}, "illegal weight specified"},
		{[]string{"-A", "-t", svc, "-x"}, ""},
		{[]string{"-a", "-t", svc, "-r", "10.9.9.9", "-g"}, "not on a network attached to a gvs interface"},
		{[]string{"-P", "-t", svc, "-z", DIP.String()}, "is an address of this host's kernel"},
	} {
		out, err := l.Gvsadm(ctx, tc.args...)
		if err == nil {
			t.Errorf("gvsadm %v succeeded:\n%s", tc.args, out)
			continue
		}
		if !strings.Contains(out, tc.want) {
			t.Errorf("gvsadm %v said %q, want it to say %q", tc.args, out, tc.want)
		}
	}
	if after := save(); after != before {
		t.Fatalf("configuration changed:\n%s\nwas:\n%s", after, before)
	}
	// The restore of a file with one bad line applies nothing.
	cmd := exec.Command(gvsadmBin, "-R")
	cmd.Env = append(os.Environ(), "GVS_SOCKET="+l.Socket())
	cmd.Stdin = strings.NewReader("-A -t 192.168.150.100:8080 -s rr\n-a -t 192.168.150.100:8080 -r 192.168.150.12:8080 -g -w 1\n-A -t 192.168.150.100:80 -s rr\n")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("restore with an existing service succeeded: %s", out)
	}
	if after := save(); after != before {
		t.Fatalf("a failed restore changed the configuration:\n%s", after)
	}
}

// TestDemo runs make demo's walk-through.
func TestDemo(t *testing.T) {
	nstest.Require(t)
	var out bytes.Buffer
	// Not "gvsdemo...": that is the prefix of real demos, whose stale
	// namespaces a demo removes.
	prefix := nstest.Name("gvdt")
	err := Demo(context.Background(), DemoConfig{Out: &out, Gvs: gvsBin, Gvsadm: gvsadmBin, Prefix: prefix})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{"OK: 6 requests answered, alternating", "IPVS connection entries", "ESTABLISHED", "Route   1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	// Nothing is left behind.
	lst, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(lst), prefix+"-") {
		t.Errorf("namespaces left: %s", lst)
	}
}

// newBareLab is a DR lab with gvs running and no service configured.
func newBareLab(t *testing.T) *Lab {
	t.Helper()
	nstest.Require(t)
	l := buildLab(t, Config{Mode: DR}, "gvt")
	if err := l.StartServers(); err != nil {
		t.Fatal(err)
	}
	if err := l.StartGvs(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l
}

// dialFrom opens a TCP connection from the client, from address src, to
// the VIP's port 80.
func dialFrom(ctx context.Context, l *Lab, src netip.Addr) (net.Conn, error) {
	var c net.Conn
	err := netns.Do(l.Client.NS, func() error {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		var err error
		c, err = d.DialContext(ctx, "tcp4", VIP.String()+":80")
		return err
	})
	return c, err
}

// TestWLCWeights: wlc over two real servers weighted 3:1, with 200
// long-lived connections opened one after another, puts exactly 150 and
// 50 active connections on them, as IPVS does.
func TestWLCWeights(t *testing.T) {
	l := newBareLab(t)
	ctx := context.Background()
	svc := VIP.String() + ":80"
	for _, args := range [][]string{
		{"-A", "-t", svc, "-s", "wlc"},
		{"-a", "-t", svc, "-r", RIPs[0].String(), "-g", "-w", "3"},
		{"-a", "-t", svc, "-r", RIPs[1].String(), "-g", "-w", "1"},
	} {
		if _, err := l.Gvsadm(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 200 {
		c, err := dialFrom(ctx, l, ClientIP)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		// Make sure the connection is established on its server before
		// the next one is scheduled: ask it something.
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, err := readAnswer(c); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	out, err := l.Gvsadm(ctx, "-Ln")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{RIPs[0].String(): "150", RIPs[1].String(): "50"}
	for rip, active := range want {
		if !regexpLine(out, rip+":80", "Route", active+" ") {
			t.Errorf("%s should have %s active connections:\n%s", rip, active, out)
		}
	}
}

// shBucket is the kernel's sh hash for an IPv4 client (ip_vs_sh_hashkey
// with no port: hash_32(ntohl(addr), 8), include/linux/hash.h's
// multiply by GOLDEN_RATIO_32 0x61C88647 and keep the top 8 bits),
// written here from the kernel source, independently of package sched.
func shBucket(a netip.Addr) int {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	return int((v * 0x61C88647) >> 24)
}

// TestSHHashing: sh sends each client address, over and over, to the real
// server the kernel's hash names. With two servers of weight 1 in the
// kernel's list order [.13, .12] (the last added first),
// ip_vs_sh_reassign gives even buckets to .13 and odd ones to .12.
func TestSHHashing(t *testing.T) {
	l := newBareLab(t)
	ctx := context.Background()
	svc := VIP.String() + ":80"
	for _, args := range [][]string{
		{"-A", "-t", svc, "-s", "sh"},
		{"-a", "-t", svc, "-r", RIPs[0].String(), "-g", "-w", "1"},
		{"-a", "-t", svc, "-r", RIPs[1].String(), "-g", "-w", "1"},
	} {
		if _, err := l.Gvsadm(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	var srcs []netip.Addr
	for i := range 64 {
		a := netip.AddrFrom4([4]byte{192, 168, 150, byte(160 + i)})
		srcs = append(srcs, a)
		l.Client.mustRun(t, "ip", "addr", "add", a.String()+"/24", "dev", "eth0")
	}
	got := map[string]int{}
	for round := range 3 {
		for _, src := range srcs {
			want := RIPs[1] // .13: even buckets
			if shBucket(src)%2 == 1 {
				want = RIPs[0]
			}
			c, err := dialFrom(ctx, l, src)
			if err != nil {
				t.Fatalf("from %v: %v", src, err)
			}
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			ans, err := readAnswer(c)
			c.Close()
			if err != nil {
				t.Fatalf("from %v: %v", src, err)
			}
			if ans != "from "+want.String() {
				t.Fatalf("round %d: %v (bucket %d) was answered %q, the kernel's sh sends it to %v", round, src, shBucket(src), ans, want)
			}
			got[ans]++
		}
	}
	if len(got) != 2 {
		t.Fatalf("answers %v: both servers should serve some clients", got)
	}
}

// TestPersistenceAndTimeouts: a persistent service with a /24 netmask
// sends every connection of every client in the /24 to one server and
// lists its template; --set changes the timeouts -L --timeout shows.
func TestPersistenceAndTimeouts(t *testing.T) {
	l := newBareLab(t)
	ctx := context.Background()
	svc := VIP.String() + ":80"
	for _, args := range [][]string{
		{"-A", "-t", svc, "-s", "rr", "-p", "60", "-M", "255.255.255.0"},
		{"-a", "-t", svc, "-r", RIPs[0].String(), "-g", "-w", "1"},
		{"-a", "-t", svc, "-r", RIPs[1].String(), "-g", "-w", "1"},
		{"--set", "100", "50", "60"},
	} {
		if _, err := l.Gvsadm(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	out, err := l.Gvsadm(ctx, "-L", "--timeout")
	if err != nil || out != "Timeout (tcp tcpfin udp): 100 50 60\n" {
		t.Fatalf("-L --timeout: %q %v", out, err)
	}
	other := netip.MustParseAddr("192.168.150.77")
	l.Client.mustRun(t, "ip", "addr", "add", other.String()+"/24", "dev", "eth0")
	answers := map[string]int{}
	for i := range 10 {
		src := ClientIP
		if i%2 == 1 {
			src = other
		}
		c, err := dialFrom(ctx, l, src)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		ans, err := readAnswer(c)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		answers[ans]++
	}
	if len(answers) != 1 {
		t.Fatalf("a persistent /24 was spread over %v", answers)
	}
	out, err = l.Gvsadm(ctx, "-Lnc")
	if err != nil {
		t.Fatal(err)
	}
	if !regexpLine(out, "TCP", "NONE", "192.168.150.0:0", VIP.String()+":80") {
		t.Fatalf("no persistence template for 192.168.150.0/24 in:\n%s", out)
	}
	out, err = l.Gvsadm(ctx, "-Ln")
	if err != nil || !strings.Contains(out, "rr persistent 60 mask 255.255.255.0") {
		t.Fatalf("-Ln: %v\n%s", err, out)
	}
}

// TestRulesFile: gvs --rules loads a saved rules file at start, and
// refuses to start on a bad one, naming the line.
func TestRulesFile(t *testing.T) {
	nstest.Require(t)
	ctx := context.Background()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.rules")
	os.WriteFile(good, []byte("# saved by gvsadm -S\n-A -t 192.168.150.100:80 -s rr\n-a -t 192.168.150.100:80 -r 192.168.150.12:80 -g -w 1\n"+
		"-a -t 192.168.150.100:80 -r 192.168.150.13:80 -g -w 1\n"), 0o644)
	bad := filepath.Join(dir, "bad.rules")
	os.WriteFile(bad, []byte("-A -t 192.168.150.100:80 -s rr\n\n-a -t 192.168.150.100:80 -r 192.168.150.12:80 -g -w 1\n-A -t 192.168.150.100:80 -s wrr\n"), 0o644)

	var out bytes.Buffer
	l, err := New(ctx, Config{Mode: DR, Prefix: nstest.Name("gvt"), Gvs: gvsBin, Gvsadm: gvsadmBin, Out: &out})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Cleanup(func() { l.Close() })
	if err := l.StartServers(); err != nil {
		t.Fatal(err)
	}
	err = l.StartGvs(ctx, "--rules", bad)
	if err == nil || !strings.Contains(err.Error(), "line 4") || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("gvs with a bad rules file: %v", err)
	}
	if err := l.StartGvs(ctx, "--rules", good); err != nil {
		t.Fatal(err)
	}
	saved, err := l.Gvsadm(ctx, "-S", "-n")
	if err != nil || saved != "-A -t 192.168.150.100:80 -s rr\n-a -t 192.168.150.100:80 -r 192.168.150.12:80 -g -w 1\n-a -t 192.168.150.100:80 -r 192.168.150.13:80 -g -w 1\n" {
		t.Fatalf("after --rules: %q %v", saved, err)
	}
	if ans, err := l.Get(ctx); err != nil || !strings.HasPrefix(ans, "from 192.168.150.1") {
		t.Fatalf("request: %q %v", ans, err)
	}
}

// TestConcurrentClients: eight gvsadm clients change the configuration at
// once, each its own service, while a long-lived connection keeps
// talking; nothing is lost and (with -race, gvs itself is built with the
// race detector) gvs reports no data race.
func TestConcurrentClients(t *testing.T) {
	l := newLab(t, Config{Mode: DR})
	ctx := context.Background()
	conn, err := l.Dial(ctx, netip.AddrPortFrom(VIP, 80))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	ask := func() string {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("long-lived connection broke: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	pinned := ask()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := fmt.Sprintf("%s:%d", VIP, 9000+c)
			for i := range 10 {
				for _, args := range [][]string{
					{"-A", "-t", svc, "-s", "wlc"},
					{"-a", "-t", svc, "-r", RIPs[i%2].String(), "-g", "-w", "2"},
					{"-e", "-t", svc, "-r", RIPs[i%2].String(), "-g", "-w", "5"},
					{"-D", "-t", svc},
				} {
					cmd := exec.Command(gvsadmBin, args...)
					cmd.Env = append(os.Environ(), "GVS_SOCKET="+l.Socket())
					if out, err := cmd.CombinedOutput(); err != nil {
						errs <- fmt.Errorf("client %d: gvsadm %v: %v: %s", c, args, err, out)
						return
					}
				}
			}
		}()
	}
	for range 20 {
		if got := ask(); got != pinned {
			t.Fatalf("the long-lived connection moved to %q", got)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	out, err := l.Gvsadm(ctx, "-S", "-n")
	if err != nil || strings.Contains(out, ":90") {
		t.Fatalf("after the clients: %v\n%s", err, out)
	}
	if exited, err := l.GvsExited(); exited || strings.Contains(l.GvsLog(), "DATA RACE") {
		t.Fatalf("gvs exited (%v) or raced:\n%s", err, l.GvsLog())
	}
}
