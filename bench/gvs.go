package bench

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

// maxComm is the longest command name the kernel keeps (TASK_COMM_LEN 16,
// with the terminating NUL).
const maxComm = 15

// gvsMode is one of gvs's forwarding methods, as gvsadm selects it.
type gvsMode struct {
	name string // dr, nat, tun, fullnat
	flag string // gvsadm's option for a real server
	// withPort: the real server is given as RIP:PORT (NAT, FULLNAT
	// translate the port too); DR and TUN keep the VIP's port.
	withPort bool
}

var (
	modeDR      = gvsMode{"dr", "-g", false}
	modeNAT     = gvsMode{"nat", "-m", true}
	modeTUN     = gvsMode{"tun", "-i", false}
	modeFullNAT = gvsMode{"fullnat", "--fullnat", true}
)

// serviceCommands are the gvsadm commands of one round-robin service on
// VIP:port over the sinks in mode m; proto is "-u" or "-t". FULLNAT gets
// topo.LocalAddr as its local address.
func serviceCommands(proto string, port uint16, sinks []netip.Addr, m gvsMode) [][]string {
	svc := netip.AddrPortFrom(topo.VIP, port).String()
	cmds := [][]string{{"-A", proto, svc, "-s", "rr"}}
	for _, s := range sinks {
		r := s.String()
		if m.withPort {
			r = netip.AddrPortFrom(s, port).String()
		}
		cmds = append(cmds, []string{"-a", proto, svc, "-r", r, m.flag, "-w", "1"})
	}
	if m == modeFullNAT {
		cmds = append(cmds, []string{"-P", proto, svc, "-z", topo.LocalAddr.String()})
	}
	return cmds
}

// gvsProc is a running gvs.
type gvsProc struct {
	Pid     int
	Sock    string
	Pinning string
	// Profile takes CPU profiles of gvs (nil without --profile).
	Profile *profiler
	// Stop stops gvs (SIGTERM, then SIGKILL after 10 s).
	Stop func() error
	// Exited reports an error if gvs died (nil: still running).
	Exited func() error
}

// CPU returns gvs's CPU time so far.
func (g *gvsProc) CPU() (time.Duration, error) {
	p, err := cpustat.ReadProc(g.Pid)
	return cpustat.Duration(p.Total()), err
}

// startGvs starts gvs in the director's namespace ns on the director's
// two interfaces, pinned to the forwarder's CPU, and configures it with
// the gvsadm commands.
func (e *env) startGvs(ctx context.Context, ns string, t *topo.Topology, cmds [][]string) (_ *gvsProc, err error) {
	if err := e.buildGvs(ctx); err != nil {
		return nil, err
	}
	e.gvsRuns++
	sock := filepath.Join(e.tmp, fmt.Sprintf("gvs%d.sock", e.gvsRuns))
	args := []string{e.gvs, "-i", t.DirIn.Name, "-i", t.DirOut.Name, "--socket", sock, "--log-level", "warn"}
	args = append(args, e.gvsFlags...)
	if e.profileDir != "" {
		args = append(args, gvsProfileFlags()...)
	}
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
	for _, a := range cmds {
		if err := e.runGvsadm(ctx, sock, a...); err != nil {
			return nil, err
		}
	}
	var prof *profiler
	if e.profileDir != "" {
		prof = &profiler{ns: ns, dir: e.profileDir}
	}
	return &gvsProc{
		Pid:     pid,
		Sock:    sock,
		Profile: prof,
		Pinning: fmt.Sprintf("gvs pinned to CPU %d (Cpus_allowed_list %s)", e.fwdCPU, cpusAllowed(pid)),
		Stop:    stop,
		Exited:  exited,
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
