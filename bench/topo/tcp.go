package topo

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gvs-project/gvs/internal/netns"
)

// SinkKeep: in the TCP variant the sinks keep what they receive; their
// servers answer.
const SinkKeep = "nothing (TCP variant: the sinks' servers receive and answer)"

// tcp sets up the TCP variant on the built topology:
//
//   - the generator (the client) routes everything through the director
//     (default via 198.18.0.2), and may use ports 1024-65535 for its
//     connections;
//   - the director forwards (ip_forward=1): it routes the client straight
//     to the servers' addresses (the "direct" baseline), carries the
//     servers' answers back for direct routing and tunnelling (the
//     return path a router would be), and nftables DNAT needs it;
//   - the sinks (the servers) route through the director (default via
//     198.18.1.1: NAT needs their answers to come back through it), hold
//     the VIP on lo with arp_ignore=1 and arp_announce=2 (what
//     `gvs realserver --vip` does, by hand so that no state file outlives
//     the namespaces), and accept deep listen backlogs.
func (t *Topology) tcp(ctx context.Context) error {
	if err := t.run(ctx, t.Gen.NS, "ip", "route", "add", "default", "via", t.DirIn.Addr.Addr().String()); err != nil {
		return err
	}
	for _, kv := range [][2]string{
		{"net/ipv4/ip_local_port_range", "1024 65535"},
		{"net/ipv4/tcp_tw_reuse", "1"},
	} {
		if err := t.Sysctl(t.Gen.NS, kv[0], kv[1]); err != nil {
			return err
		}
	}
	if err := t.Sysctl(t.DirIn.NS, "net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	for _, s := range t.Sinks {
		if err := t.runAll(ctx, s.NS,
			[]string{"ip", "route", "add", "default", "via", t.DirOut.Addr.Addr().String()},
			[]string{"ip", "addr", "add", VIP.String() + "/32", "dev", "lo"},
		); err != nil {
			return err
		}
		for _, kv := range [][2]string{
			{"net/ipv4/conf/all/arp_ignore", "1"},
			{"net/ipv4/conf/" + s.Name + "/arp_ignore", "1"},
			{"net/ipv4/conf/all/arp_announce", "2"},
			{"net/ipv4/conf/" + s.Name + "/arp_announce", "2"},
			{"net/core/somaxconn", "8192"},
			{"net/ipv4/tcp_max_syn_backlog", "8192"},
		} {
			if err := t.Sysctl(s.NS, kv[0], kv[1]); err != nil {
				return err
			}
		}
	}
	return nil
}

// The legacy ethtool ioctls that read one offload each (struct
// ethtool_value), from linux/ethtool.h: older than the features bitmap,
// still answered by every driver, veth included.
var offloadCmds = []struct {
	name string
	cmd  uint32
}{
	{"rx-checksum", 0x14},    // ETHTOOL_GRXCSUM
	{"tx-checksum", 0x16},    // ETHTOOL_GTXCSUM
	{"scatter-gather", 0x18}, // ETHTOOL_GSG
	{"tso", 0x1e},            // ETHTOOL_GTSO
	{"gso", 0x23},            // ETHTOOL_GGSO
	{"gro", 0x2b},            // ETHTOOL_GGRO
}

// Offloads reads the interface's offload settings through the SIOCETHTOOL
// ioctl (there is no ethtool command here), as "rx-checksum on, ...".
func (t *Topology) Offloads(i Iface) (string, error) {
	var out []string
	err := netns.Do(i.NS, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return os.NewSyscallError("socket", err)
		}
		defer unix.Close(fd)
		for _, c := range offloadCmds {
			v := struct{ cmd, data uint32 }{cmd: c.cmd}
			var ifr struct {
				name [unix.IFNAMSIZ]byte
				data uintptr
				_    [16]byte // the rest of struct ifreq's union
			}
			copy(ifr.name[:], i.Name)
			ifr.data = uintptr(unsafe.Pointer(&v))
			_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
			runtime.KeepAlive(&v)
			if errno != 0 {
				out = append(out, c.name+" ?")
				continue
			}
			state := "off"
			if v.data != 0 {
				state = "on"
			}
			out = append(out, c.name+" "+state)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("offloads of %s: %w", i, err)
	}
	return strings.Join(out, ", "), nil
}
