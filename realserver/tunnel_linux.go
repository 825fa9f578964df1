//go:build linux

package realserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const (
	// batchSize is the most datagrams one recvmmsg takes. A real server
	// decapsulates at the rate its own stack consumes, so the batch only
	// has to amortise the syscall under bursts; 32 buffers of maxDatagram
	// are 2 MiB of address space, touched only as far as packets fill them.
	batchSize = 32
	// maxDatagram is the largest IPv4 datagram (the total length field is
	// 16 bits), hence the largest a raw socket delivers after reassembly:
	// a buffer this size is never truncated.
	maxDatagram = 65535
	// rcvBuf is the receive buffer asked for the raw socket (SO_RCVBUFFORCE,
	// else SO_RCVBUF capped by net.core.rmem_max): room for a burst of
	// reassembled 64 KB datagrams while the loop is writing to the TUN.
	rcvBuf = 4 << 20
)

// Tunnel decapsulates IPIP (IPv4 in IPv4, RFC 2003) in user space: it
// reads the packets a director tunnels to this host from a raw
// IPPROTO_IPIP socket and writes the inner packets, if addressed to a VIP,
// to a TUN device, from which the kernel receives them as if they had
// arrived on an interface. See the package documentation.
//
// NewTunnel, Close and UndoTunnel change sysctls of the network namespace
// of the calling OS thread, so call them from the same namespace. Run may
// be called from any goroutine, once. Stats may be called at any time
// from any goroutine. Close may be called concurrently with Run, and more
// than once.
type Tunnel struct {
	d    decapsulator
	name string
	w    io.Writer

	raw   *os.File        // the IPPROTO_IPIP socket, non-blocking, in the netpoller
	rc    syscall.RawConn // raw's
	tunFD int             // /dev/net/tun, blocking (a TUN write never blocks)

	// Receive state, touched only by Run.
	slab  []byte
	iovs  [batchSize]unix.Iovec
	msgs  [batchSize]unix.Mmsghdr
	n     int
	errno unix.Errno
	recv  func(fd uintptr) bool // RawConn.Read callback, made once

	c counters

	st      tunState // the sysctls set and their earlier values
	closing atomic.Bool
	mu      sync.Mutex // guards running and closed
	running bool
	closed  bool
	done    chan struct{} // closed when Run returns

	closeOnce sync.Once
	closeErr  error
}

// sysctlChange is one sysctl a Tunnel set: Path had Old, now has New.
type sysctlChange struct {
	Path string `json:"path"`
	Old  string `json:"old"`
	New  string `json:"new"`
}

// tunState is what a Tunnel changed, kept in a state file so that
// UndoTunnel can put it back if the process was killed.
type tunState struct {
	Name    string         `json:"name"`
	Sysctls []sysctlChange `json:"sysctls"` // in the order applied
}

func tunStatePath(name string) string {
	return filepath.Join(StateDir, "realserver-"+nsID()+"-tun-"+name+".json")
}

func readTunState(name string) (*tunState, error) {
	b, err := os.ReadFile(tunStatePath(name))
	if err != nil {
		return nil, err
	}
	var st tunState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("state file %s: %w", tunStatePath(name), err)
	}
	return &st, nil
}

func writeTunState(st *tunState) error {
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	return os.WriteFile(tunStatePath(st.Name), b, 0o644)
}

func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

func readSysctl(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func writeSysctl(w io.Writer, p, v string) error {
	fmt.Fprintf(w, "echo %s > %s\n", v, p)
	if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// NewTunnel creates the TUN device, sets the sysctls the kernel needs to
// accept the inner packets from it, and opens the raw IPIP socket, logging
// each step to w as the shell command it replaces. It does not put the
// VIPs on lo nor set the ARP sysctls: Setup does (and Serve does both).
// Call Run to start decapsulating and Close to undo.
//
// The sysctls: rp_filter=0 on the TUN device and on conf/all, because the
// inner source is a client whose route goes out another interface, so
// strict (1) or, without a route, loose (2) reverse-path filtering would
// drop the packet. The kernel applies the larger of conf/all and the
// interface's own value, so where conf/all was above zero NewTunnel first
// raises conf/default and every other interface to it: their filtering
// stays what it was. accept_local is not needed (clients are not local
// addresses). IPv6 is disabled on the device so that it sends nothing.
func NewTunnel(w io.Writer, cfg TunnelConfig) (_ *Tunnel, err error) {
	if w == nil {
		w = io.Discard
	}
	d, err := cfg.check()
	if err != nil {
		return nil, err
	}
	if cfg.Dev != "" {
		if _, err := net.InterfaceByName(cfg.Dev); err != nil {
			return nil, fmt.Errorf("interface %s: %w", cfg.Dev, err)
		}
	}
	if ifi, err := net.InterfaceByName("tunl0"); err == nil && ifi.Flags&net.FlagUp != 0 {
		return nil, ErrKernelTunnel
	}
	name := cfg.name()
	if linkExists(name) {
		return nil, fmt.Errorf("%w: %s", ErrTunnelRunning, name)
	}
	t := &Tunnel{d: d, name: name, w: w, tunFD: -1, done: make(chan struct{})}
	// A state file left by a killed run holds the values from before it:
	// keep those, so that Close restores the host's own.
	if old, err := readTunState(name); err == nil {
		t.st = *old
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	t.st.Name = name
	defer func() {
		if err != nil {
			t.closeFiles()
			err = errors.Join(err, t.restore())
		}
	}()

	if err := t.openTun(); err != nil {
		return nil, err
	}
	if err := t.setSysctls(); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "ip link set %s up\n", name)
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("tunnel device %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("setting %s up: %w", name, err)
	}
	// The raw socket comes last: from now on the kernel hands IPIP to it
	// (and stops answering protocol-unreachable), and the device is ready.
	if err := t.openRaw(cfg.Dev); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "# IPIP to this host: inner packets for %s decapsulated in user space into %s\n",
		joinVIPs(cfg), name)
	t.slab = make([]byte, batchSize*maxDatagram)
	for i := range t.msgs {
		t.iovs[i].Base = &t.slab[i*maxDatagram]
		t.iovs[i].SetLen(maxDatagram)
		t.msgs[i].Hdr.Iov = &t.iovs[i]
		t.msgs[i].Hdr.SetIovlen(1)
	}
	t.recv = t.recvmmsg
	return t, nil
}

// openTun creates the TUN device: IFF_TUN (IP packets, no Ethernet header)
// and IFF_NO_PI (no 4-byte packet-information prefix; the kernel takes the
// protocol from the IP version nibble). The device lives as long as the
// file descriptor: closing it, or the process dying, removes it.
func (t *Tunnel) openTun() error {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening /dev/net/tun: %w", os.NewSyscallError("open", err))
	}
	t.tunFD = fd
	ifr, err := unix.NewIfreq(t.name)
	if err != nil {
		return fmt.Errorf("tunnel device %s: %w", t.name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	fmt.Fprintf(t.w, "ip tuntap add dev %s mode tun\n", t.name)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return fmt.Errorf("creating tunnel device %s: %w", t.name, os.NewSyscallError("ioctl TUNSETIFF", err))
	}
	return nil
}

// setSysctls sets rp_filter (see NewTunnel) and disables IPv6 on the
// device, recording the old values in the state file before changing
// anything.
func (t *Tunnel) setSysctls() error {
	const conf = "/proc/sys/net/ipv4/conf"
	var plan []sysctlChange
	add := func(p, v string) error {
		old, err := readSysctl(p)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if old != v {
			plan = append(plan, sysctlChange{Path: p, Old: old, New: v})
		}
		return nil
	}
	allPath := filepath.Join(conf, "all", "rp_filter")
	all, err := readSysctl(allPath)
	if err != nil {
		return fmt.Errorf("reading %s: %w", allPath, err)
	}
	if a, _ := strconv.Atoi(all); a > 0 {
		ents, err := os.ReadDir(conf)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if n := e.Name(); n == "all" || n == t.name {
				continue
			}
			p := filepath.Join(conf, e.Name(), "rp_filter")
			v, err := readSysctl(p)
			if err != nil {
				return fmt.Errorf("reading %s: %w", p, err)
			}
			if n, _ := strconv.Atoi(v); n < a {
				if err := add(p, all); err != nil {
					return err
				}
			}
		}
		if err := add(allPath, "0"); err != nil {
			return err
		}
	}
	// The device's own values need no restoring: they go with it.
	own := []sysctlChange{{Path: filepath.Join(conf, t.name, "rp_filter"), New: "0"}}
	if p := filepath.Join("/proc/sys/net/ipv6/conf", t.name, "disable_ipv6"); fileExists(p) {
		own = append(own, sysctlChange{Path: p, New: "1"})
	}

	// Record first, so that a crash in between leaves nothing unrecorded.
	// Values already recorded by a killed run keep their older Old.
	recorded := map[string]bool{}
	for _, c := range t.st.Sysctls {
		recorded[c.Path] = true
	}
	for _, c := range plan {
		if !recorded[c.Path] {
			t.st.Sysctls = append(t.st.Sysctls, c)
		}
	}
	if err := writeTunState(&t.st); err != nil {
		return fmt.Errorf("writing tunnel state: %w", err)
	}
	for _, c := range append(plan, own...) {
		if err := writeSysctl(t.w, c.Path, c.New); err != nil {
			return err
		}
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// restore puts back the sysctls recorded in t.st, in the reverse order of
// setting (conf/all first, so that filtering is never weaker than before),
// and removes the state file.
func (t *Tunnel) restore() error {
	var errs []error
	for i := len(t.st.Sysctls) - 1; i >= 0; i-- {
		c := t.st.Sysctls[i]
		if err := writeSysctl(t.w, c.Path, c.Old); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := os.Remove(tunStatePath(t.st.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// openRaw opens the raw IPPROTO_IPIP socket, non-blocking so that Run can
// wait in the netpoller and Close can wake it. A raw socket receives every
// locally delivered IPv4 datagram of its protocol with the IP header,
// after reassembly (ip_local_deliver defragments first); and while one is
// open, ip_protocol_deliver_rcu sends no ICMP protocol-unreachable for a
// protocol the kernel has no handler for.
func (t *Tunnel) openRaw(dev string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_IPIP)
	if err != nil {
		return fmt.Errorf("opening the IPIP socket: %w", os.NewSyscallError("socket", err))
	}
	if dev != "" {
		if err := unix.BindToDevice(fd, dev); err != nil {
			unix.Close(fd)
			return fmt.Errorf("binding the IPIP socket to %s: %w", dev, os.NewSyscallError("setsockopt SO_BINDTODEVICE", err))
		}
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
		// Without CAP_NET_ADMIN: as much as net.core.rmem_max allows.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	t.raw = os.NewFile(uintptr(fd), "ipip")
	rc, err := t.raw.SyscallConn()
	if err != nil {
		return err
	}
	t.rc = rc
	return nil
}

// Name returns the TUN device's name.
func (t *Tunnel) Name() string { return t.name }

// Stats returns the counters so far.
func (t *Tunnel) Stats() TunnelStats { return t.c.snapshot() }

// recvmmsg is the RawConn.Read callback: one recvmmsg(2) into the batch.
// It reports false (wait for readiness) only on EAGAIN.
func (t *Tunnel) recvmmsg(fd uintptr) bool {
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&t.msgs[0])), batchSize, 0, 0, 0)
	if e == unix.EAGAIN {
		return false
	}
	t.n, t.errno = int(n), e
	if e != 0 {
		t.n = 0
	}
	return true
}

// Run decapsulates until Close, then returns nil. It returns an error only
// if it cannot wait for the socket, or when called twice or after Close.
func (t *Tunnel) Run() error {
	t.mu.Lock()
	if t.closed || t.running {
		t.mu.Unlock()
		return &net.OpError{Op: "run", Net: "ipip", Err: net.ErrClosed}
	}
	t.running = true
	t.mu.Unlock()
	defer close(t.done)
	for {
		err := t.rc.Read(t.recv)
		if t.closing.Load() {
			return nil
		}
		if err != nil {
			return &net.OpError{Op: "receive", Net: "ipip", Err: err}
		}
		if t.errno != 0 {
			if t.errno != unix.EINTR {
				// For example an ICMP error queued on the socket
				// (sk_err): reported once, then reading goes on.
				t.c.readErrors.Add(1)
			}
			continue
		}
		for i := range t.n {
			m := &t.msgs[i]
			if m.Hdr.Flags&unix.MSG_TRUNC != 0 {
				t.c.dropped[DropOuter].Add(1) // cannot happen with maxDatagram buffers
				continue
			}
			t.handle(t.slab[i*maxDatagram : i*maxDatagram+int(m.Len)])
		}
	}
}

// handle decapsulates one outer datagram and writes the inner packet to
// the TUN device. It allocates nothing.
func (t *Tunnel) handle(pkt []byte) {
	inner, why, ok := t.d.decap(pkt)
	if !ok {
		t.c.dropped[why].Add(1)
		return
	}
	// A write to a TUN device is one packet, handed to the stack
	// (netif_receive_skb) before the write returns; it does not block.
	// With IFF_NO_PI and no virtio-net header the skb is CHECKSUM_NONE, so
	// the kernel verifies the transport checksum itself.
	_, _, e := unix.Syscall(unix.SYS_WRITE, uintptr(t.tunFD), uintptr(unsafe.Pointer(&inner[0])), uintptr(len(inner)))
	if e != 0 {
		t.c.dropped[DropWrite].Add(1)
		return
	}
	t.c.packets.Add(1)
	t.c.bytes.Add(uint64(len(inner)))
}

func (t *Tunnel) closeFiles() error {
	var errs []error
	if t.raw != nil {
		errs = append(errs, t.raw.Close())
	}
	if t.tunFD >= 0 {
		errs = append(errs, unix.Close(t.tunFD))
		t.tunFD = -1
	}
	return errors.Join(errs...)
}

// Close stops Run (waiting until it has returned), removes the TUN device
// and restores the sysctls NewTunnel changed, logging each step to w.
func (t *Tunnel) Close() error {
	t.closeOnce.Do(func() {
		t.closing.Store(true)
		t.mu.Lock()
		t.closed = true
		running := t.running
		t.mu.Unlock()
		// Closing the file evicts it from the netpoller and wakes Run.
		var errs []error
		if err := t.raw.Close(); err != nil {
			errs = append(errs, err)
		}
		t.raw = nil
		if running {
			<-t.done
		}
		fmt.Fprintf(t.w, "ip link del %s\n", t.name)
		errs = append(errs, t.closeFiles(), t.restore())
		t.closeErr = errors.Join(errs...)
	})
	return t.closeErr
}

// UndoTunnel restores what a Tunnel named name (empty: DefaultTunName)
// changed and could not restore because its process was killed: the
// sysctls recorded in its state file. The device itself went with the
// process. It returns ErrTunnelRunning if the device still exists, and
// nil if there is nothing to undo.
func UndoTunnel(w io.Writer, name string) error {
	if w == nil {
		w = io.Discard
	}
	if name == "" {
		name = DefaultTunName
	}
	st, err := readTunState(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if linkExists(name) {
		return fmt.Errorf("%w: %s (stop the gvs realserver --tun that runs it)", ErrTunnelRunning, name)
	}
	t := &Tunnel{name: name, w: w, st: *st}
	return t.restore()
}
