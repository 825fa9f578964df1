//go:build linux

package realserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gvs-project/gvs/internal/hdr"
	"github.com/gvs-project/gvs/internal/nstest"
)

// Safety bounds on waits. Tests never pass or fail because of them unless
// something is broken: they only keep a broken test from hanging.
const (
	waitBound = 10 * time.Second
	pollEvery = 20 * time.Millisecond
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tunLab is an LVS-TUN lab: a client C, a director D and a real server R
// on one Ethernet segment (a bridge in a switch namespace S), as LVS-TUN
// real servers usually sit. C routes the VIP through D; D's kernel drops
// those packets silently (forwarding on, a blackhole route: no ICMP back
// to C), and the test's forwarder in D picks them up from an AF_PACKET
// socket, completes their checksums and sends them to R inside IPIP (a raw
// IPPROTO_IPIP socket: D's kernel builds the outer header and fragments
// it when it exceeds the MTU). R answers C directly from the VIP. R has
// strict reverse-path filtering on.
//
//	C 192.168.60.10 ---+
//	D 192.168.60.1  ---+-- br0 (in S)
//	R 192.168.60.20 ---+        VIP 192.168.150.100 on R's lo
type tunLab struct {
	c, d, r *nstest.NS
}

var (
	labClient   = netip.MustParseAddr("192.168.60.10")
	labDirector = netip.MustParseAddr("192.168.60.1")
	labRIP      = netip.MustParseAddr("192.168.60.20")
	labVIP      = netip.MustParseAddr("192.168.150.100")
	labVIP2     = netip.MustParseAddr("192.168.150.101")
)

func newTunLab(t *testing.T) *tunLab {
	t.Helper()
	nstest.Require(t)
	StateDir = t.TempDir()
	s := nstest.NewNS(t, "tls")
	l := &tunLab{c: nstest.NewNS(t, "tlc"), d: nstest.NewNS(t, "tld"), r: nstest.NewNS(t, "tlr")}
	s.MustRun(t, "ip", "link", "add", "br0", "type", "bridge")
	s.MustRun(t, "ip", "link", "set", "br0", "up")
	// The switch must not pass bridged frames to netfilter.
	s.MustRun(t, "sh", "-c", "p=/proc/sys/net/bridge/bridge-nf-call-iptables; [ ! -e $p ] || echo 0 > $p")
	for _, h := range []struct {
		ns   *nstest.NS
		port string
		addr netip.Addr
	}{{l.c, "c0", labClient}, {l.d, "d0", labDirector}, {l.r, "r0", labRIP}} {
		nstest.Veth(t, h.ns, "eth0", s, h.port)
		s.MustRun(t, "ip", "link", "set", h.port, "master", "br0")
		h.ns.MustRun(t, "ip", "addr", "add", h.addr.String()+"/24", "dev", "eth0")
	}
	l.c.MustRun(t, "ip", "route", "add", labVIP.String()+"/32", "via", labDirector.String())
	// R filters strictly, as many distributions do: the decapsulator must
	// turn that off for its device without weakening eth0.
	l.r.Sysctl(t, "net.ipv4.conf.all.rp_filter", "1")
	l.r.Sysctl(t, "net.ipv4.conf.default.rp_filter", "1")
	l.d.Sysctl(t, "net.ipv4.ip_forward", "1")
	l.d.MustRun(t, "ip", "route", "add", "blackhole", labVIP.String()+"/32")
	return l
}

// completeChecksum fills in the TCP or UDP checksum of an IPv4 packet
// whose checksum the sender's kernel left to offload (CHECKSUM_PARTIAL on
// veth), as a director must before encapsulating.
func completeChecksum(pkt []byte) {
	h := hdr.IPv4(pkt)
	if h.IsFragment() {
		return
	}
	seg := pkt[h.HeaderLen():h.TotalLen()]
	var off int
	switch h.Protocol() {
	case hdr.ProtoTCP:
		off = 16 // the TCP checksum field
	case hdr.ProtoUDP:
		off = 6 // the UDP checksum field
	default:
		return
	}
	binary.BigEndian.PutUint16(seg[off:], 0)
	c := hdr.TransportChecksum(h.Source(), h.Destination(), h.Protocol(), seg)
	if c == 0 && h.Protocol() == hdr.ProtoUDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(seg[off:], c)
}

// openIPIPSender opens, in ns, a raw IPPROTO_IPIP socket that lets the
// kernel fragment (IP_PMTUDISC_DONT). Sending an IPv4 packet to an
// address through it sends it wrapped in IPIP.
func openIPIPSender(t *testing.T, ns *nstest.NS) int {
	t.Helper()
	var fd int
	err := ns.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_IPIP)
		if err != nil {
			return err
		}
		return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func sendIPIP(t *testing.T, fd int, to netip.Addr, inner []byte) {
	t.Helper()
	if err := unix.Sendto(fd, inner, 0, &unix.SockaddrInet4{Addr: to.As4()}); err != nil {
		t.Fatalf("sending IPIP to %v: %v", to, err)
	}
}

// startForwarder plays the director in D: every IPv4 packet for the VIP
// that arrives on D's eth0 is sent to R inside IPIP. It returns the count
// of packets forwarded.
func (l *tunLab) startForwarder(t *testing.T) *atomic.Uint64 {
	t.Helper()
	out := openIPIPSender(t, l.d)
	var in int
	err := l.d.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_IP))
		in, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		// A receive timeout lets the loop see the stop flag.
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(in, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		return unix.Bind(in, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var n atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for !stop.Load() {
			m, from, err := unix.Recvfrom(in, buf, 0)
			if err != nil {
				continue // EAGAIN on the timeout, EINTR
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype != unix.PACKET_HOST {
				continue
			}
			pkt := buf[:m]
			if len(pkt) < hdr.IPv4MinLen || hdr.IPv4(pkt).Version() != 4 ||
				netip.AddrFrom4(hdr.IPv4(pkt).Destination()) != labVIP {
				continue
			}
			completeChecksum(pkt)
			if unix.Sendto(out, pkt, 0, &unix.SockaddrInet4{Addr: labRIP.As4()}) == nil {
				n.Add(1)
			}
		}
	}()
	t.Cleanup(func() {
		stop.Store(true)
		<-done
		unix.Close(in)
	})
	return &n
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// snmp returns a counter of /proc/net/snmp in ns, for example ("Icmp",
// "OutDestUnreachs").
func snmp(t *testing.T, ns *nstest.NS, group, name string) int {
	t.Helper()
	var head []string
	for _, line := range strings.Split(ns.MustRun(t, "cat", "/proc/net/snmp"), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != group+":" {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		for i, h := range head {
			if h == name && i < len(f) {
				v, err := strconv.Atoi(f[i])
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatalf("no %s %s in /proc/net/snmp", group, name)
	return 0
}

// waitFor polls cond until it holds, failing t after waitBound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(waitBound); !cond(); time.Sleep(pollEvery) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// rawIPIPOpen reports whether ns has a raw socket for protocol 4 (the
// decapsulator's), from /proc/net/raw.
func rawIPIPOpen(t *testing.T, ns *nstest.NS) bool {
	for _, line := range strings.Split(ns.MustRun(t, "cat", "/proc/net/raw"), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasSuffix(f[1], ":0004") {
			return true
		}
	}
	return false
}

func hasLink(t *testing.T, ns *nstest.NS, name string) bool {
	_, err := ns.Run("ip", "link", "show", "dev", name)
	return err == nil
}

// startServe runs Serve in R until the test ends (or stop is called), and
// waits until the decapsulator's socket is open.
func (l *tunLab) startServe(t *testing.T, cfg TunnelConfig) (stop func() error, out, logs *syncBuffer) {
	t.Helper()
	out, logs = &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- l.r.Do(func() error {
			return Serve(ctx, out, slog.New(slog.NewJSONHandler(logs, nil)), cfg)
		})
	}()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(waitBound):
				err = errors.New("Serve did not return")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	for end := time.Now().Add(waitBound); !rawIPIPOpen(t, l.r); time.Sleep(pollEvery) {
		select {
		case err := <-errc:
			t.Fatalf("Serve: %v\n%s", err, out)
		default:
		}
		if time.Now().After(end) {
			t.Fatal("timed out waiting for the decapsulator")
		}
	}
	return stop, out, logs
}

// finalStats returns the counters of Serve's last log line.
func finalStats(t *testing.T, logs string) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("last log line: %v\n%s", err, logs)
	}
	if m["msg"] != "tunnel stopped" {
		t.Fatalf("last log line is not the final counters:\n%s", logs)
	}
	return m
}

// TestTunnelEndToEnd runs a TCP connection and a UDP exchange from C to
// the VIP through D's IPIP tunnel and Serve's user-space decapsulator in
// R, with R answering C directly; and checks that R sent no ICMP
// destination-unreachable while the decapsulator ran, though it does
// without it.
func TestTunnelEndToEnd(t *testing.T) {
	l := newTunLab(t)
	kernelIPIP := hasLink(t, l.r, "tunl0")

	// Control: without the decapsulator, R's kernel answers IPIP with
	// protocol-unreachable (on this kernel, which has no ipip module).
	dfd := openIPIPSender(t, l.d)
	probe := udpPacket(labClient, 40000, labVIP, 9, 0, []byte("probe"))
	if kernelIPIP {
		t.Log("R has tunl0 (the kernel has ipip): skipping the protocol-unreachable control")
	} else {
		before := snmp(t, l.r, "Icmp", "OutDestUnreachs")
		sendIPIP(t, dfd, labRIP, probe)
		waitFor(t, "R's ICMP protocol-unreachable without the decapsulator", func() bool {
			return snmp(t, l.r, "Icmp", "OutDestUnreachs") > before
		})
	}

	stop, out, logs := l.startServe(t, TunnelConfig{
		VIPs:      []netip.Addr{labVIP},
		Dev:       "eth0",
		Directors: []netip.Addr{labDirector},
	})
	icmpBefore := snmp(t, l.r, "Icmp", "OutDestUnreachs")
	forwarded := l.startForwarder(t)

	// R's servers: TCP on any address (it answers from the address the
	// client connected to, the VIP), UDP bound to the VIP (an unbound UDP
	// socket would answer from the RIP).
	const respLen = 200_000
	var tcpLn net.Listener
	var udpConn net.PacketConn
	err := l.r.Do(func() (err error) {
		if tcpLn, err = net.Listen("tcp4", "0.0.0.0:8080"); err != nil {
			return err
		}
		udpConn, err = net.ListenPacket("udp4", netip.AddrPortFrom(labVIP, 9000).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcpLn.Close(); udpConn.Close() })
	pattern := func(i int) byte { return byte(i*7 + i>>8) }
	go func() {
		for {
			c, err := tcpLn.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(waitBound))
				var n [4]byte
				if _, err := io.ReadFull(c, n[:]); err != nil {
					return
				}
				req := make([]byte, binary.BigEndian.Uint32(n[:]))
				if _, err := io.ReadFull(c, req); err != nil {
					return
				}
				resp := make([]byte, respLen)
				for i := range resp {
					resp[i] = pattern(i)
				}
				c.Write(append(req, resp...))
			}()
		}
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := udpConn.ReadFrom(buf)
			if err != nil {
				return
			}
			udpConn.WriteTo(buf[:n], from)
		}
	}()

	// TCP: a request that spans several segments (some larger than the
	// tunnel MTU once wrapped, so D fragments and R's raw socket gets them
	// reassembled), and a response that R sends straight to C.
	req := make([]byte, 4000)
	rand.NewChaCha8([32]byte{1}).Read(req)
	var tcpC net.Conn
	if err := l.c.Do(func() (err error) {
		tcpC, err = (&net.Dialer{Timeout: waitBound}).Dial("tcp4", netip.AddrPortFrom(labVIP, 8080).String())
		return err
	}); err != nil {
		t.Fatalf("TCP connect to the VIP through the tunnel: %v", err)
	}
	defer tcpC.Close()
	tcpC.SetDeadline(time.Now().Add(waitBound))
	if got := tcpC.RemoteAddr().(*net.TCPAddr).AddrPort().Addr(); got != labVIP {
		t.Fatalf("connected to %v", got)
	}
	msg := binary.BigEndian.AppendUint32(nil, uint32(len(req)))
	if _, err := tcpC.Write(append(msg, req...)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(tcpC)
	if err != nil {
		t.Fatalf("reading the response: %v (%d bytes)", err, len(got))
	}
	if len(got) != len(req)+respLen || !bytes.Equal(got[:len(req)], req) {
		t.Fatalf("response: %d bytes, want %d, request echoed: %v", len(got), len(req)+respLen, bytes.Equal(got[:min(len(got), len(req))], req))
	}
	for i, b := range got[len(req):] {
		if b != pattern(i) {
			t.Fatalf("response byte %d = %d, want %d", i, b, pattern(i))
		}
	}

	// UDP: a datagram of a full 1500-byte packet (1520 bytes wrapped, so
	// fragmented in the tunnel), answered from the VIP (a connected socket
	// takes nothing else).
	var udpC net.Conn
	if err := l.c.Do(func() (err error) {
		udpC, err = net.Dial("udp4", netip.AddrPortFrom(labVIP, 9000).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer udpC.Close()
	dgram := bytes.Repeat([]byte("gvs-tun!"), 184) // 1472 bytes: 1500 with IP and UDP headers
	udpC.SetDeadline(time.Now().Add(waitBound))
	if _, err := udpC.Write(dgram); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	n, err := udpC.Read(buf)
	if err != nil {
		t.Fatalf("UDP reply from the VIP: %v", err)
	}
	if !bytes.Equal(buf[:n], dgram) {
		t.Fatalf("UDP reply: %d bytes, want the %d sent", n, len(dgram))
	}

	if got := snmp(t, l.r, "Icmp", "OutDestUnreachs"); got != icmpBefore {
		t.Errorf("R sent %d ICMP destination-unreachable while decapsulating", got-icmpBefore)
	}
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	st := finalStats(t, logs.String())
	if dec, _ := st["decapsulated"].(float64); dec == 0 || uint64(dec) > forwarded.Load() {
		t.Errorf("decapsulated %v packets, D forwarded %d", st["decapsulated"], forwarded.Load())
	}
	for r := range NumDropReasons {
		if v := st["dropped_"+r.String()]; v != 0.0 {
			t.Errorf("dropped_%v = %v, want 0", r, v)
		}
	}
	for _, want := range []string{
		"ip addr add 192.168.150.100/32 dev lo",
		"echo 1 > /proc/sys/net/ipv4/conf/eth0/arp_ignore",
		"ip tuntap add dev gvstun0 mode tun",
		"echo 0 > /proc/sys/net/ipv4/conf/gvstun0/rp_filter",
		"ip link set gvstun0 up",
		"ip link del gvstun0",
		"ip addr del 192.168.150.100/32 dev lo",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("Serve did not print %q:\n%s", want, out)
		}
	}
	if hasLink(t, l.r, "gvstun0") {
		t.Error("gvstun0 still there after Serve returned")
	}
	t.Logf("D forwarded %d packets; %s", forwarded.Load(), strings.TrimSpace(logs.String()))
}

// TestTunnelDropsSpoofed sends, through the tunnel, a packet whose inner
// destination is R's own address (not a VIP) and then one for the VIP, to
// a UDP socket that would take both: only the second arrives, and the
// first is counted as DropNotVIP. Packets from a host that is not a
// director, and with a corrupt inner header, are dropped too.
func TestTunnelDropsSpoofed(t *testing.T) {
	l := newTunLab(t)
	var tun *Tunnel
	var sock net.PacketConn
	err := l.r.Do(func() (err error) {
		if err := Setup(io.Discard, labVIP, "eth0"); err != nil {
			return err
		}
		tun, err = NewTunnel(io.Discard, TunnelConfig{VIPs: []netip.Addr{labVIP}, Directors: []netip.Addr{labDirector}})
		if err != nil {
			return err
		}
		sock, err = net.ListenPacket("udp4", "0.0.0.0:9001")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	closeTun := func() {
		if err := l.r.Do(tun.Close); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	t.Cleanup(func() { closeTun() })
	runErr := make(chan error, 1)
	go func() { runErr <- tun.Run() }()
	icmpBefore := snmp(t, l.r, "Icmp", "OutDestUnreachs")

	d := openIPIPSender(t, l.d)
	c := openIPIPSender(t, l.c) // C is no director
	spoof := udpPacket(labClient, 40000, labRIP, 9001, 0, []byte("spoofed"))
	corrupt := udpPacket(labClient, 40000, labVIP, 9001, 0, []byte("corrupt"))
	corrupt[8]-- // TTL changed, header checksum not
	sendIPIP(t, d, labRIP, spoof)
	sendIPIP(t, c, labRIP, udpPacket(labClient, 40000, labVIP, 9001, 0, []byte("from C")))
	sendIPIP(t, d, labRIP, corrupt)
	sendIPIP(t, d, labRIP, udpPacket(labClient, 40000, labVIP, 9001, 0, []byte("genuine")))

	// The decapsulator handles packets in order and a TUN write delivers
	// before it returns, so whatever of the first three got through would
	// be queued on the socket before "genuine".
	sock.SetReadDeadline(time.Now().Add(waitBound))
	buf := make([]byte, 2048)
	n, from, err := sock.ReadFrom(buf)
	if err != nil {
		t.Fatalf("the genuine packet did not arrive: %v", err)
	}
	if got := string(buf[:n]); got != "genuine" {
		t.Fatalf("first datagram received is %q (from %v), want \"genuine\"", got, from)
	}
	closeTun()
	if err := <-runErr; err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := tun.Stats()
	want := TunnelStats{Packets: 1, Bytes: uint64(len("genuine") + 28)}
	want.Dropped[DropNotVIP] = 1
	want.Dropped[DropDirector] = 1
	want.Dropped[DropInner] = 1
	if st != want {
		t.Fatalf("stats = %+v, want %+v", st, want)
	}
	if got := snmp(t, l.r, "Icmp", "OutDestUnreachs"); got != icmpBefore {
		t.Errorf("R sent %d ICMP destination-unreachable", got-icmpBefore)
	}
	if err := l.r.Do(func() error { return Undo(io.Discard, labVIP, "eth0") }); err != nil {
		t.Fatal(err)
	}
}

func readIn(t *testing.T, ns *nstest.NS, p string) string {
	t.Helper()
	return strings.TrimSpace(ns.MustRun(t, "cat", p))
}

func checkSysctls(t *testing.T, ns *nstest.NS, when string, want map[string]string) {
	t.Helper()
	for p, v := range want {
		if got := readIn(t, ns, p); got != v {
			t.Errorf("%s: %s = %s, want %s", when, p, got, v)
		}
	}
}

// TestTunnelRestores checks that Serve sets what a TUN real server needs
// and puts every value back when it stops: sysctls, VIPs on lo, the TUN
// device; and that a VIP a one-shot Setup had set up stays.
func TestTunnelRestores(t *testing.T) {
	nstest.Require(t)
	StateDir = t.TempDir()
	r, peer := nstest.NewNS(t, "trr"), nstest.NewNS(t, "trp")
	nstest.Veth(t, r, "eth0", peer, "eth0")
	// Values Serve must change and restore, and one it must leave.
	r.Sysctl(t, "net.ipv4.conf.all.rp_filter", "1")
	r.Sysctl(t, "net.ipv4.conf.default.rp_filter", "2")
	r.Sysctl(t, "net.ipv4.conf.eth0.rp_filter", "0")
	r.Sysctl(t, "net.ipv4.conf.lo.rp_filter", "0")
	r.Sysctl(t, "net.ipv4.conf.all.arp_announce", "1")
	const conf = "/proc/sys/net/ipv4/conf/"
	orig := map[string]string{
		conf + "all/rp_filter":     "1",
		conf + "default/rp_filter": "2",
		conf + "eth0/rp_filter":    "0",
		conf + "lo/rp_filter":      "0",
		conf + "all/arp_announce":  "1",
		conf + "eth0/arp_announce": "0",
		conf + "all/arp_ignore":    "0",
		conf + "eth0/arp_ignore":   "0",
	}
	checkSysctls(t, r, "before", orig)
	// VIP2 was set up by hand (gvs realserver --vip VIP2) before.
	if err := r.Do(func() error { return Setup(io.Discard, labVIP2, "eth0") }); err != nil {
		t.Fatal(err)
	}
	before := maps.Clone(orig)
	maps.Copy(before, map[string]string{
		conf + "all/arp_announce":  "2",
		conf + "eth0/arp_announce": "2",
		conf + "all/arp_ignore":    "1",
		conf + "eth0/arp_ignore":   "1",
	})
	checkSysctls(t, r, "after Setup(VIP2)", before)

	l := &tunLab{r: r}
	stop, out, _ := l.startServe(t, TunnelConfig{VIPs: []netip.Addr{labVIP, labVIP2}, Dev: "eth0"})
	checkSysctls(t, r, "while serving", map[string]string{
		conf + "all/rp_filter":                         "0",
		conf + "default/rp_filter":                     "2", // already filtering at least as much as all did
		conf + "eth0/rp_filter":                        "1", // raised: its effective value stays 1
		conf + "lo/rp_filter":                          "1",
		conf + "gvstun0/rp_filter":                     "0",
		conf + "all/arp_announce":                      "2",
		conf + "eth0/arp_ignore":                       "1",
		"/proc/sys/net/ipv6/conf/gvstun0/disable_ipv6": "1",
	})
	if link := r.MustRun(t, "ip", "link", "show", "dev", "gvstun0"); !strings.Contains(link, ",UP") {
		t.Errorf("gvstun0 not up:\n%s", link)
	}
	if addrs := r.MustRun(t, "ip", "-4", "addr", "show", "dev", "gvstun0"); strings.Contains(addrs, "inet ") {
		t.Errorf("gvstun0 has an address:\n%s", addrs)
	}
	lo := r.MustRun(t, "ip", "-4", "addr", "show", "dev", "lo")
	for _, v := range []netip.Addr{labVIP, labVIP2} {
		if !strings.Contains(lo, v.String()+"/32") {
			t.Errorf("%v not on lo:\n%s", v, lo)
		}
	}
	// A second one in the same namespace is refused.
	if err := r.Do(func() error {
		_, err := NewTunnel(io.Discard, TunnelConfig{VIPs: []netip.Addr{labVIP}})
		return err
	}); !errors.Is(err, ErrTunnelRunning) {
		t.Errorf("second NewTunnel: %v, want ErrTunnelRunning", err)
	}
	if err := r.Do(func() error { return UndoTunnel(io.Discard, "") }); !errors.Is(err, ErrTunnelRunning) {
		t.Errorf("UndoTunnel while running: %v, want ErrTunnelRunning", err)
	}

	if err := stop(); err != nil {
		t.Fatalf("Serve: %v\n%s", err, out)
	}
	// Everything is as before Serve, what Setup(VIP2) set included.
	checkSysctls(t, r, "after", before)
	lo = r.MustRun(t, "ip", "-4", "addr", "show", "dev", "lo")
	if strings.Contains(lo, labVIP.String()+"/") {
		t.Errorf("%v still on lo:\n%s", labVIP, lo)
	}
	if !strings.Contains(lo, labVIP2.String()+"/32") {
		t.Errorf("%v, set up before Serve, was removed:\n%s", labVIP2, lo)
	}
	if hasLink(t, r, "gvstun0") {
		t.Error("gvstun0 still there")
	}
	if _, err := os.Stat(StateDir); err == nil {
		ents, _ := os.ReadDir(StateDir)
		if len(ents) != 1 { // VIP2's
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("state files left: %v", names)
		}
	}
	t.Logf("Serve printed:\n%s", out)

	if err := r.Do(func() error { return Undo(io.Discard, labVIP2, "eth0") }); err != nil {
		t.Fatal(err)
	}
	checkSysctls(t, r, "after Undo(VIP2)", orig)
}

// TestTunnelKilled checks that UndoTunnel restores what a Tunnel whose
// process died left behind, and that a new Tunnel started over such
// leftovers restores the values from before the first.
func TestTunnelKilled(t *testing.T) {
	nstest.Require(t)
	StateDir = t.TempDir()
	r := nstest.NewNS(t, "tkr")
	r.Sysctl(t, "net.ipv4.conf.all.rp_filter", "2")
	r.Sysctl(t, "net.ipv4.conf.default.rp_filter", "0")
	r.Sysctl(t, "net.ipv4.conf.lo.rp_filter", "0")
	const conf = "/proc/sys/net/ipv4/conf/"
	before := map[string]string{conf + "all/rp_filter": "2", conf + "default/rp_filter": "0", conf + "lo/rp_filter": "0"}
	cfg := TunnelConfig{VIPs: []netip.Addr{labVIP}, Name: "gvskill0"}

	// kill opens a Tunnel and "kills" it: its files close (the device
	// goes), nothing is restored.
	kill := func() {
		t.Helper()
		if err := r.Do(func() error {
			tun, err := NewTunnel(io.Discard, cfg)
			if err != nil {
				return err
			}
			return tun.closeFiles()
		}); err != nil {
			t.Fatal(err)
		}
		if hasLink(t, r, cfg.Name) {
			t.Fatal("the device outlived its file descriptor")
		}
		checkSysctls(t, r, "after the kill", map[string]string{
			conf + "all/rp_filter": "0", conf + "default/rp_filter": "2", conf + "lo/rp_filter": "2"})
	}
	kill()
	kill() // started again over the leftovers, killed again
	var out bytes.Buffer
	if err := r.Do(func() error { return UndoTunnel(&out, cfg.Name) }); err != nil {
		t.Fatal(err)
	}
	checkSysctls(t, r, "after UndoTunnel", before)
	if !strings.Contains(out.String(), "echo 2 > "+conf+"all/rp_filter") {
		t.Errorf("UndoTunnel printed:\n%s", out.String())
	}
	// Nothing left to undo.
	if err := r.Do(func() error { return UndoTunnel(io.Discard, cfg.Name) }); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(StateDir); len(ents) != 0 {
		t.Errorf("%d state files left", len(ents))
	}
}

// TestHandleAllocs checks that the per-packet path, decapsulation and the
// write to the device (here /dev/null), allocates nothing.
func TestHandleAllocs(t *testing.T) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tun := &Tunnel{d: testDecapsulator(t), tunFD: int(f.Fd())}
	pkt := ipip(testDirector, testRIP, 0, udpPacket(testClient, 40000, testVIP, 53, 0, make([]byte, 1400)))
	spoof := ipip(testDirector, testRIP, 0, udpPacket(testClient, 40000, testRIP, 53, 0, nil))
	if n := testing.AllocsPerRun(1000, func() {
		tun.handle(pkt)
		tun.handle(spoof)
	}); n != 0 {
		t.Fatalf("handle allocates %v times per packet pair, want 0", n)
	}
	st := tun.Stats()
	if st.Packets != 1001 || st.Dropped[DropNotVIP] != 1001 || st.Dropped[DropWrite] != 0 {
		t.Fatalf("stats = %+v", st)
	}
	if st.Bytes != 1001*uint64(len(pkt)-20) {
		t.Fatalf("bytes = %d", st.Bytes)
	}
}

func BenchmarkHandle(b *testing.B) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	tun := &Tunnel{d: testDecapsulator(b), tunFD: int(f.Fd())}
	for _, size := range []int{64, 1400, 9000} {
		pkt := ipip(testDirector, testRIP, 0, udpPacket(testClient, 40000, testVIP, 53, 0, make([]byte, size)))
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(pkt)))
			for b.Loop() {
				tun.handle(pkt)
			}
		})
	}
}
