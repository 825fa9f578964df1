// Package lab builds the LVS lab of the seed notes on one Linux machine, in
// network namespaces: a client, the director node01 and the real servers
// node02 and node03, all on one bridge (the notes' VM network), with the
// notes' addresses:
//
//	client   192.168.150.10    curl http://192.168.150.100/
//	node01   192.168.150.1     the director: gvs, configured with gvsadm   (DIP)
//	node02   192.168.150.12    real server: HTTP "from 192.168.150.12"     (RIP)
//	node03   192.168.150.13    real server: HTTP "from 192.168.150.13"     (RIP)
//	VIP      192.168.150.100   on node01 (eth0:8, as the notes do) or owned by gvs alone
//
// `gvs demo` (make demo) walks through the notes step by step with it, and
// the end-to-end tests drive gvs through it. Every command the lab runs is
// printed as the shell command it is, so a reader can repeat it by hand.
// Everything the lab creates is removed by Close, also after a failure or
// Ctrl-C.
package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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
	"syscall"
	"time"

	"github.com/gvs-project/gvs/internal/netns"
)

// The seed notes' addresses.
var (
	VIP      = netip.MustParseAddr("192.168.150.100")
	DIP      = netip.MustParseAddr("192.168.150.1")
	ClientIP = netip.MustParseAddr("192.168.150.10")
	RIPs     = []netip.Addr{netip.MustParseAddr("192.168.150.12"), netip.MustParseAddr("192.168.150.13")}
)

// Prefix is the length of the lab's subnet, 192.168.150.0/24.
const Prefix = 24

// Host is one machine of the lab: a network namespace with eth0 on the
// bridge.
type Host struct {
	Role string // client, node01, node02, node03
	NS   string // network namespace name
	Addr netip.Addr
	MAC  string
}

// Config configures a lab.
type Config struct {
	// Prefix makes the lab's namespace names unique ("gvsdemo1234"
	// gives gvsdemo1234-node01 and so on).
	Prefix string
	// Out receives the narration: every command, as a shell line, and
	// what it printed. nil means quiet.
	Out io.Writer
	// VIPOnDirector puts the VIP on node01's eth0 as the notes do
	// (ifconfig eth0:8 192.168.150.100/24); otherwise gvs owns it alone
	// and answers ARP for it.
	VIPOnDirector bool
	// IPForward sets net.ipv4.ip_forward=1 on node01.
	IPForward bool
	// Gvs and Gvsadm are the binaries to run.
	Gvs, Gvsadm string
	// Socket is gvs's control socket (default: under os.TempDir()).
	Socket string
}

// Lab is a running lab.
type Lab struct {
	cfg      Config
	Switch   *Host
	Client   *Host
	Director *Host
	Reals    []*Host

	mu      sync.Mutex
	servers []*http.Server
	gvs     *exec.Cmd
	gvsDone chan struct{} // closed when gvs has exited
	gvsErr  error         // its exit status, once gvsDone is closed
	gvsLog  *bytes.Buffer
	closed  bool
	made    []string // namespaces created
}

// macOf gives each host a fixed, locally administered MAC derived from
// its address, so that traces and listings repeat from run to run.
func macOf(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

// New builds the lab's network: namespaces, bridge, links and addresses,
// and configures the real servers as the notes do. It does not start gvs
// or the HTTP servers (see StartServers and StartGvs).
func New(ctx context.Context, cfg Config) (l *Lab, err error) {
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("gvslab%d", os.Getpid())
	}
	if cfg.Socket == "" {
		cfg.Socket = filepath.Join(os.TempDir(), cfg.Prefix+".sock")
	}
	l = &Lab{cfg: cfg}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	host := func(role string, addr netip.Addr) *Host {
		return &Host{Role: role, NS: cfg.Prefix + "-" + role, Addr: addr, MAC: macOf(addr)}
	}
	l.Switch = &Host{Role: "switch", NS: cfg.Prefix + "-switch"}
	l.Client = host("client", ClientIP)
	l.Director = host("node01", DIP)
	l.Reals = []*Host{host("node02", RIPs[0]), host("node03", RIPs[1])}

	l.step("Create the machines: one network namespace each, and one for the switch")
	for _, h := range l.hosts(true) {
		if err := l.sh(ctx, "", "ip", "netns", "add", h.NS); err != nil {
			return nil, err
		}
		l.made = append(l.made, h.NS)
		if err := l.sh(ctx, h.NS, "ip", "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
	}
	l.step("The switch: a bridge (its netfilter hooks off, as on a plain switch)")
	for _, args := range [][]string{
		{"ip", "link", "add", "br0", "type", "bridge"},
		{"ip", "link", "set", "br0", "up"},
	} {
		if err := l.sh(ctx, l.Switch.NS, args...); err != nil {
			return nil, err
		}
	}
	if err := l.sysctlIfPresent(ctx, l.Switch.NS, "net/bridge/bridge-nf-call-iptables", "0"); err != nil {
		return nil, err
	}
	l.step("Cable every machine's eth0 to the switch, with the notes' addresses")
	for _, h := range l.hosts(false) {
		tmp := "gvs" + strconv.Itoa(os.Getpid()%100000) + h.Role[len(h.Role)-2:]
		for _, args := range [][]string{
			{"ip", "link", "add", tmp, "netns", h.NS, "address", h.MAC, "type", "veth", "peer", "name", h.Role, "netns", l.Switch.NS},
		} {
			if err := l.sh(ctx, "", args...); err != nil {
				return nil, err
			}
		}
		for _, args := range [][]string{
			{"ip", "link", "set", tmp, "name", "eth0"},
			{"ip", "addr", "add", h.Addr.String() + "/" + strconv.Itoa(Prefix), "dev", "eth0"},
			{"ip", "link", "set", "eth0", "up"},
		} {
			if err := l.sh(ctx, h.NS, args...); err != nil {
				return nil, err
			}
		}
		for _, args := range [][]string{
			{"ip", "link", "set", h.Role, "master", "br0"},
			{"ip", "link", "set", h.Role, "up"},
		} {
			if err := l.sh(ctx, l.Switch.NS, args...); err != nil {
				return nil, err
			}
		}
	}
	if cfg.VIPOnDirector {
		l.step("node01: the VIP on the director's interface, as the notes do (ifconfig eth0:8 192.168.150.100/24)")
		if err := l.sh(ctx, l.Director.NS, "ip", "addr", "add", VIP.String()+"/24", "dev", "eth0", "label", "eth0:8"); err != nil {
			return nil, err
		}
	} else {
		l.step("node01: the VIP is not an address of node01's kernel: gvs alone owns it and answers ARP for it")
	}
	if cfg.IPForward {
		if err := l.sh(ctx, l.Director.NS, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
			return nil, err
		}
	}
	l.step("node02, node03: hide the VIP on lo and keep quiet about it in ARP (gvs realserver does the notes' echo/ifconfig lines)")
	for _, h := range l.Reals {
		if err := l.sh(ctx, h.NS, cfg.Gvs, "realserver", "--vip", VIP.String(), "--dev", "eth0"); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// hosts returns the lab's hosts, with the switch first if asked.
func (l *Lab) hosts(withSwitch bool) []*Host {
	hs := []*Host{l.Client, l.Director, l.Reals[0], l.Reals[1]}
	if withSwitch {
		hs = append([]*Host{l.Switch}, hs...)
	}
	return hs
}

// Socket returns gvs's control socket path.
func (l *Lab) Socket() string { return l.cfg.Socket }

func (l *Lab) printf(format string, args ...any) {
	if l.cfg.Out != nil {
		fmt.Fprintf(l.cfg.Out, format, args...)
	}
}

// step announces the next step of the narration.
func (l *Lab) step(title string) { l.printf("\n### %s\n", title) }

// Step is step for callers outside the package (the demo).
func (l *Lab) Step(title string) { l.step(title) }

// Printf writes to the narration.
func (l *Lab) Printf(format string, args ...any) { l.printf(format, args...) }

// prompt is how a command run in a namespace is shown.
func (l *Lab) prompt(ns string) string {
	for _, h := range l.hosts(true) {
		if h.NS == ns {
			return h.Role + "# "
		}
	}
	return "# "
}

// sh runs a command, in namespace ns if not empty, printing it and its
// output to the narration.
func (l *Lab) sh(ctx context.Context, ns string, args ...string) error {
	_, err := l.Output(ctx, ns, nil, args...)
	return err
}

// Output runs a command (in ns if not empty, with extra environment
// variables env), prints it and its output, and returns the output.
func (l *Lab) Output(ctx context.Context, ns string, env []string, args ...string) (string, error) {
	shown := strings.Join(args, " ")
	if len(env) > 0 {
		shown = strings.Join(env, " ") + " " + shown
	}
	if ns != "" {
		l.printf("%s%s\n", l.prompt(ns), shown)
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	} else {
		l.printf("# %s\n", shown)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if len(out) > 0 {
		l.printf("%s", indent(string(out)))
	}
	if err != nil {
		return string(out), fmt.Errorf("%s: %w", shown, err)
	}
	return string(out), nil
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
}

func (l *Lab) sysctlIfPresent(ctx context.Context, ns, key, value string) error {
	var present bool
	netns.Do(ns, func() error {
		_, err := os.Stat("/proc/sys/" + key)
		present = err == nil
		return nil
	})
	if !present {
		return nil
	}
	return l.sh(ctx, ns, "sysctl", "-qw", strings.ReplaceAll(key, "/", ".")+"="+value)
}

// StartServers starts an HTTP server on port 80 of each real server,
// answering GET / with "from <its address>". GET /bytes?n=N streams N
// bytes; POST /sum answers with the SHA-256 of the body. They run in this
// process, on sockets that live in the real servers' namespaces.
func (l *Lab) StartServers() error {
	l.step("node02, node03: start the web servers (the notes' httpd, answering \"from 192.168.150.1x\")")
	for _, h := range l.Reals {
		var ln net.Listener
		if err := netns.Do(h.NS, func() error {
			var err error
			ln, err = net.Listen("tcp4", ":80")
			return err
		}); err != nil {
			return fmt.Errorf("%s: listening on :80: %w", h.Role, err)
		}
		srv := &http.Server{Handler: handler("from " + h.Addr.String()), ReadHeaderTimeout: 10 * time.Second}
		l.mu.Lock()
		l.servers = append(l.servers, srv)
		l.mu.Unlock()
		go srv.Serve(ln)
		l.printf("%shttpd listening on *:80, index.html: from %s\n", l.prompt(h.NS), h.Addr)
	}
	return nil
}

// handler is a real server's web server.
func handler(name string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name+"\n")
	})
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 0 || n > 1<<30 {
			http.Error(w, "bad n", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Server", name)
		w.Header().Set("Content-Length", strconv.Itoa(n))
		io.Copy(w, io.LimitReader(&Pattern{}, int64(n)))
	})
	mux.HandleFunc("POST /sum", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%s %d %s\n", name, n, hex.EncodeToString(h.Sum(nil)))
	})
	return mux
}

// Pattern is an endless deterministic byte stream (byte i is i*7+i>>9
// mod 256): the bytes the web servers send and tests upload, so that both
// ends can check a transfer by its hash.
type Pattern struct{ off int64 }

func (p *Pattern) Read(b []byte) (int, error) {
	for i := range b {
		o := p.off + int64(i)
		b[i] = byte(o*7 + o>>9)
	}
	p.off += int64(len(b))
	return len(b), nil
}

// StartGvs starts gvs on node01's eth0 and waits until its control
// socket answers.
func (l *Lab) StartGvs(ctx context.Context, extra ...string) error {
	l.step("node01: start the director, gvs, on eth0")
	args := append([]string{"netns", "exec", l.Director.NS, l.cfg.Gvs, "-i", "eth0", "--socket", l.cfg.Socket}, extra...)
	l.printf("%s%s -i eth0 --socket %s %s&\n", l.prompt(l.Director.NS), l.cfg.Gvs, l.cfg.Socket, strings.Join(extra, " "))
	cmd := exec.Command("ip", args...)
	l.gvsLog = &bytes.Buffer{}
	logw := &lockedWriter{w: l.gvsLog, mu: &l.mu}
	cmd.Stdout, cmd.Stderr = logw, logw
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting gvs: %w", err)
	}
	l.mu.Lock()
	l.gvs = cmd
	l.mu.Unlock()
	done := make(chan struct{})
	l.gvsDone = done
	go func() {
		l.gvsErr = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("unix", l.cfg.Socket); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("gvs exited at start: %v\n%s", l.gvsErr, l.GvsLog())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gvs did not open %s within 15 s\n%s", l.cfg.Socket, l.GvsLog())
		}
	}
}

// GvsExited reports whether gvs has exited, and how.
func (l *Lab) GvsExited() (bool, error) {
	select {
	case <-l.gvsDone:
		return true, l.gvsErr
	default:
		return false, nil
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

// GvsLog returns what gvs has logged so far.
func (l *Lab) GvsLog() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gvsLog == nil {
		return ""
	}
	return l.gvsLog.String()
}

// Gvsadm runs gvsadm against the lab's gvs, printing the command as the
// notes print ipvsadm's, and returns its output.
func (l *Lab) Gvsadm(ctx context.Context, args ...string) (string, error) {
	l.printf("%sgvsadm %s\n", l.prompt(l.Director.NS), strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, l.cfg.Gvsadm, args...)
	cmd.Env = append(os.Environ(), "GVS_SOCKET="+l.cfg.Socket)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if out.Len() > 0 {
		l.printf("%s", indent(out.String()))
	}
	if err != nil {
		return out.String(), fmt.Errorf("gvsadm %s: %w", strings.Join(args, " "), err)
	}
	return out.String(), nil
}

// Dial opens a TCP connection from the client to addr (in the client's
// namespace).
func (l *Lab) Dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	err := netns.Do(l.Client.NS, func() error {
		var err error
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err = d.DialContext(ctx, "tcp", addr.String())
		return err
	})
	return c, err
}

// HTTPClient returns an HTTP client whose connections are made in the
// client's namespace. keepAlive keeps connections for reuse.
func (l *Lab) HTTPClient(keepAlive bool) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return nil, err
			}
			return l.Dial(ctx, ap)
		},
		DisableKeepAlives: !keepAlive,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Get fetches http://VIP/ from the client on a new connection and returns
// the answer's body.
func (l *Lab) Get(ctx context.Context) (string, error) {
	c := l.HTTPClient(false)
	defer c.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+VIP.String()+"/", nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

// Close stops gvs and the web servers and removes every namespace the
// lab created (their links go with them).
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	servers := l.servers
	gvs := l.gvs
	l.mu.Unlock()
	for _, s := range servers {
		s.Close()
	}
	var errs []error
	if gvs != nil && gvs.Process != nil {
		gvs.Process.Signal(syscall.SIGTERM)
		select {
		case <-l.gvsDone:
		case <-time.After(10 * time.Second):
			gvs.Process.Kill()
			<-l.gvsDone
			errs = append(errs, errors.New("gvs did not stop within 10 s of SIGTERM; killed"))
		}
	}
	for _, h := range l.hosts(false) {
		if h == nil {
			continue
		}
		for _, r := range l.Reals {
			if r == h {
				// Undo gvs realserver's state file (its sysctls and
				// address go with the namespace).
				exec.Command("ip", "netns", "exec", h.NS, l.cfg.Gvs, "realserver", "--vip", VIP.String(), "--undo", "--dev", "eth0").Run()
			}
		}
	}
	for _, ns := range l.made {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", ns, err, out))
		}
	}
	os.Remove(l.cfg.Socket)
	return errors.Join(errs...)
}
