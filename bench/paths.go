package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gvs-project/gvs/bench/cpustat"
	"github.com/gvs-project/gvs/bench/topo"
)

// A path is one way of getting the generator's frames from the director's
// eth0 to the sinks: one forwarder, configured in the director's namespace.
// New paths (NAT, TUN, FULLNAT, other load balancers) implement it and are
// added to allPaths.
type path interface {
	// Name is the path's short name, as --paths and the table show it.
	Name() string
	// Describe says what the path is, in one line.
	Describe() string
	// Skip returns why the path cannot run on this machine, or "".
	Skip() string
	// Start configures the forwarder. The returned setup says where the
	// generator must send and how to read the forwarder's CPU time.
	Start(ctx context.Context, e *env) (*setup, error)
}

// setup is a started path.
type setup struct {
	// Dsts are the generator's destination addresses (flows alternate).
	Dsts []netip.Addr
	// CPU returns the forwarder's CPU time so far.
	CPU func() (time.Duration, error)
	// CPUSource says what CPU measures.
	CPUSource string
	// Pid is the forwarder's process, if it is one (0: the kernel).
	Pid int
	// Pinning says where the forwarder runs.
	Pinning string
	// Stop undoes Start. It must be safe to call once after any Start
	// that succeeded.
	Stop func() error
	// Exited reports an error if the forwarder died (nil: still fine).
	Exited func() error
}

// env is what paths work with.
type env struct {
	topo   *topo.Topology
	tmp    string // a private temporary directory
	genCPU int
	fwdCPU int
	log    func(format string, args ...any) // verbose narration

	// gvs binaries: built once, on first use (or given by flags).
	gvsOnce      sync.Once
	gvs, gvsadm  string
	gvsErr       error
	moduleRoot   string
	gvsPrebuilt  bool
	gvsBuildTime time.Duration
}

// allPaths are the paths in the order they are measured. kernel comes
// first: the others are compared with it.
func allPaths() []path { return []path{kernelPath{}, nftPath{}, gvsDRPath{}} }

// sinkAddrs returns the sinks' addresses.
func sinkAddrs(t *topo.Topology) []netip.Addr {
	var a []netip.Addr
	for _, s := range t.Sinks {
		a = append(a, s.Addr.Addr())
	}
	return a
}

// softirqCPU reads the machine's softirq time: where the kernel's own
// forwarding runs.
func softirqCPU() (time.Duration, error) {
	s, err := cpustat.ReadStat()
	if err != nil {
		return 0, err
	}
	return cpustat.Duration(s.Total.SoftIRQ), nil
}

// kernelPath is the kernel's own IPv4 forwarding: ip_forward=1 in the
// director, the generator's flows alternating between the sinks' addresses.
type kernelPath struct{}

func (kernelPath) Name() string { return "kernel" }
func (kernelPath) Describe() string {
	return "Linux IPv4 forwarding (ip_forward=1), flows alternating between the two sinks' addresses"
}
func (kernelPath) Skip() string { return "" }

func (kernelPath) Start(ctx context.Context, e *env) (*setup, error) {
	if err := e.topo.Sysctl(e.topo.DirIn.NS, "net/ipv4/ip_forward", "1"); err != nil {
		return nil, err
	}
	return &setup{
		Dsts:      sinkAddrs(e.topo),
		CPU:       softirqCPU,
		CPUSource: "softirq time of all CPUs (/proc/stat)",
		Pinning:   fmt.Sprintf("softirq on the generator's CPU %d (veth)", e.genCPU),
		Stop: func() error {
			return e.topo.Sysctl(e.topo.DirIn.NS, "net/ipv4/ip_forward", "0")
		},
	}, nil
}

// nftTable is the table nftPath creates in the director's namespace.
const nftTable = "gvsbench"

// nftPath is load balancing with nftables DNAT: a numgen inc mod 2 map
// over the two sinks, per connection (conntrack keeps a flow on its
// first choice), as people use nftables instead of IPVS.
type nftPath struct{}

func (nftPath) Name() string { return "nft-dnat" }
func (nftPath) Describe() string {
	return "nftables DNAT of VIP:9 to the two sinks (numgen inc mod 2 map, per conntrack flow), ip_forward=1"
}

func (nftPath) Skip() string {
	if _, err := exec.LookPath("nft"); err != nil {
		return "the nft command is not installed"
	}
	return ""
}

func (nftPath) Start(ctx context.Context, e *env) (_ *setup, err error) {
	ns := e.topo.DirIn.NS
	script := fmt.Sprintf(`table ip %s {
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		ip daddr %s udp dport %d dnat to numgen inc mod 2 map { 0 : %s, 1 : %s }
	}
}
`, nftTable, topo.VIP, servicePort, e.topo.Sinks[0].Addr.Addr(), e.topo.Sinks[1].Addr.Addr())
	file := filepath.Join(e.tmp, "nft-dnat.nft")
	if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
		return nil, err
	}
	e.log("nft script %s:\n%s", file, script)
	if _, err := e.topo.Run(ctx, ns, "nft", "-f", file); err != nil {
		return nil, err
	}
	stop := func() error {
		_, err1 := e.topo.Run(context.Background(), ns, "nft", "delete", "table", "ip", nftTable)
		err2 := e.topo.Sysctl(ns, "net/ipv4/ip_forward", "0")
		return errors.Join(err1, err2)
	}
	if err := e.topo.Sysctl(ns, "net/ipv4/ip_forward", "1"); err != nil {
		stop()
		return nil, err
	}
	return &setup{
		Dsts:      []netip.Addr{topo.VIP},
		CPU:       softirqCPU,
		CPUSource: "softirq time of all CPUs (/proc/stat)",
		Pinning:   fmt.Sprintf("softirq on the generator's CPU %d (veth)", e.genCPU),
		Stop:      stop,
	}, nil
}

// servicePort is the virtual service's UDP port (discard).
const servicePort = 9

// maxComm is the longest command name the kernel keeps (TASK_COMM_LEN 16,
// with the terminating NUL).
const maxComm = 15

// gvsDRPath is gvs in direct-routing mode: gvs serves the director's eth0
// (where the generator's frames arrive) and eth1 (where the sinks, its real
// servers, are on-link), with a round-robin UDP service on VIP:9.
type gvsDRPath struct{}

func (gvsDRPath) Name() string { return "gvs-dr" }
func (gvsDRPath) Describe() string {
	return "gvs -i eth0 -i eth1, gvsadm -A -u VIP:9 -s rr, -a -r SINK -g -w 1 per sink (ip_forward=0)"
}
func (gvsDRPath) Skip() string { return "" }

func (gvsDRPath) Start(ctx context.Context, e *env) (_ *setup, err error) {
	if err := e.buildGvs(ctx); err != nil {
		return nil, err
	}
	ns := e.topo.DirIn.NS
	if err := e.topo.Sysctl(ns, "net/ipv4/ip_forward", "0"); err != nil {
		return nil, err
	}
	sock := filepath.Join(e.tmp, "gvs.sock")
	args := []string{e.gvs, "-i", e.topo.DirIn.Name, "-i", e.topo.DirOut.Name, "--socket", sock, "--log-level", "warn"}
	taskset, terr := exec.LookPath("taskset")
	if terr == nil {
		args = append([]string{taskset, "-c", strconv.Itoa(e.fwdCPU)}, args...)
	}
	cmd := topo.Command(context.Background(), ns, args...)
	e.log("%s# %s &", ns, strings.Join(args, " "))
	var logBuf lockedBuffer
	cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting gvs: %w", err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	exited := func() error {
		select {
		case <-done:
			return fmt.Errorf("gvs exited: %v\n%s", waitErr, logBuf.String())
		default:
			return nil
		}
	}
	stop := func() error {
		defer os.Remove(sock)
		defer func() {
			if l := logBuf.String(); l != "" {
				e.log("gvs's log:\n%s", strings.TrimRight(l, "\n"))
			}
		}()
		select {
		case <-done:
			return exited()
		default:
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
			return nil
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("gvs did not stop within 10 s of SIGTERM; killed\n%s", logBuf.String())
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	if err := waitSocket(ctx, sock, done, 15*time.Second); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, logBuf.String())
	}
	// ip netns exec and taskset exec: the pid is gvs's own.
	pid := cmd.Process.Pid
	want := filepath.Base(e.gvs)
	want = want[:min(len(want), maxComm)]
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != want {
		return nil, fmt.Errorf("pid %d is %q, not gvs: cannot account its CPU time", pid, strings.TrimSpace(string(comm)))
	}
	if terr != nil {
		if err := pinAll(pid, e.fwdCPU); err != nil {
			return nil, err
		}
	}
	for _, a := range [][]string{
		{"-A", "-u", fmt.Sprintf("%s:%d", topo.VIP, servicePort), "-s", "rr"},
		{"-a", "-u", fmt.Sprintf("%s:%d", topo.VIP, servicePort), "-r", e.topo.Sinks[0].Addr.Addr().String(), "-g", "-w", "1"},
		{"-a", "-u", fmt.Sprintf("%s:%d", topo.VIP, servicePort), "-r", e.topo.Sinks[1].Addr.Addr().String(), "-g", "-w", "1"},
	} {
		if err := e.runGvsadm(ctx, sock, a...); err != nil {
			return nil, err
		}
	}
	allowed := cpusAllowed(pid)
	return &setup{
		Dsts: []netip.Addr{topo.VIP},
		CPU: func() (time.Duration, error) {
			p, err := cpustat.ReadProc(pid)
			return cpustat.Duration(p.Total()), err
		},
		CPUSource: "gvs process utime+stime (/proc/<pid>/stat)",
		Pid:       pid,
		Pinning:   fmt.Sprintf("gvs pinned to CPU %d (Cpus_allowed_list %s)", e.fwdCPU, allowed),
		Stop:      stop,
		Exited:    exited,
	}, nil
}

// gvsadm runs gvsadm against the socket.
func (e *env) runGvsadm(ctx context.Context, sock string, args ...string) error {
	e.log("# GVS_SOCKET=%s gvsadm %s", sock, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, e.gvsadm, args...)
	cmd.Env = append(os.Environ(), "GVS_SOCKET="+sock)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("gvsadm %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// waitSocket waits until the unix socket accepts a connection.
func waitSocket(ctx context.Context, sock string, done <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			return errors.New("gvs exited at start")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gvs did not open %s within %v", sock, limit)
		}
	}
}

// pinAll pins every thread of pid to cpu (sched_setaffinity works per
// thread). Threads the process creates later inherit the mask of the
// thread that creates them, so two passes catch one created meanwhile.
func pinAll(pid, cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	for range 2 {
		tids, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return err
		}
		for _, t := range tids {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("pinning gvs thread %d to CPU %d: %w", tid, cpu, err)
			}
		}
	}
	return nil
}

// cpusAllowed returns the process's Cpus_allowed_list, or "?".
func cpusAllowed(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// buildGvs builds gvs and gvsadm into the temporary directory from the
// module's source (once), unless --gvs and --gvsadm were given.
func (e *env) buildGvs(ctx context.Context) error {
	e.gvsOnce.Do(func() {
		if e.gvsPrebuilt {
			return
		}
		start := time.Now()
		goBin, err := goTool()
		if err != nil {
			e.gvsErr = err
			return
		}
		out := filepath.Join(e.tmp, "bin")
		if err := os.MkdirAll(out, 0o755); err != nil {
			e.gvsErr = err
			return
		}
		e.log("%s$ go build -o %s/ ./cmd/gvs ./cmd/gvsadm", e.moduleRoot, out)
		cmd := exec.CommandContext(ctx, goBin, "build", "-o", out+"/", "./cmd/gvs", "./cmd/gvsadm")
		cmd.Dir = e.moduleRoot
		if b, err := cmd.CombinedOutput(); err != nil {
			e.gvsErr = fmt.Errorf("building gvs: %w: %s", err, bytes.TrimSpace(b))
			return
		}
		e.gvs, e.gvsadm = filepath.Join(out, "gvs"), filepath.Join(out, "gvsadm")
		e.gvsBuildTime = time.Since(start)
	})
	return e.gvsErr
}

// goTool finds the go command: on $PATH, else in the toolchain that built
// this program (sudo often resets $PATH).
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	for _, p := range []string{filepath.Join(goroot(), "bin", "go"), "/usr/local/go/bin/go"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("the go command is not on $PATH: give --gvs and --gvsadm, or run with PATH including go")
}

// moduleRoot finds the gvs module's root from dir upwards.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/gvs-project/gvs\n")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no gvs module (go.mod of github.com/gvs-project/gvs) above %s: run from the source tree, or give --gvs and --gvsadm", dir)
		}
	}
}

// lockedBuffer collects a child's output from two pipes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
