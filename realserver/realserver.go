package realserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
)

// StateDir is where Setup keeps what Undo needs.
var StateDir = "/run/gvs"

// sysctl names Setup sets, with the value it sets.
var settings = []struct {
	key   string
	value string
}{
	{"arp_ignore", "1"},
	{"arp_announce", "2"},
}

type state struct {
	VIP     string            `json:"vip"`
	Sysctls map[string]string `json:"sysctls"` // path -> previous value
	Added   bool              `json:"added"`   // the VIP was added by Setup
	// Tunnel is set when Serve made the state (and will undo it when it
	// stops), unset when a one-shot Setup did (and Serve leaves it alone).
	Tunnel bool `json:"tunnel,omitempty"`
}

// statePath names the state file of vip in this network namespace: /run
// is shared by every namespace of the host (the seed's lab runs two real
// servers with the same VIP on one machine), so the namespace's inode is
// part of the name.
func statePath(vip netip.Addr) string {
	return filepath.Join(StateDir, "realserver-"+nsID()+"-"+vip.String()+".json")
}

// nsID names the network namespace of the calling thread: its inode.
func nsID() string {
	if fi, err := os.Stat("/proc/thread-self/ns/net"); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			return fmt.Sprint(st.Ino)
		}
	}
	return "host"
}

// devices returns the interfaces to set: the one named, or every
// interface other than the loopback.
func devices(dev string) ([]string, error) {
	if dev != "" {
		if _, err := net.InterfaceByName(dev); err != nil {
			return nil, fmt.Errorf("interface %s: %w", dev, err)
		}
		return []string{dev}, nil
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagLoopback == 0 {
			out = append(out, ifi.Name)
		}
	}
	return out, nil
}

func sysctlPath(dev, key string) string {
	return filepath.Join("/proc/sys/net/ipv4/conf", dev, key)
}

// Setup configures the host as a real server for vip, logging each step
// to w as the shell command it replaces. dev names the interface facing
// the director; empty means every non-loopback interface (conf/all is set
// in any case, and the kernel uses the larger of all and the interface's
// value for both settings).
func Setup(w io.Writer, vip netip.Addr, dev string) error {
	return setup(w, vip, dev, false)
}

// setup is Setup; tunnel marks the state as Serve's. Whatever it changed
// is recorded in the state file even if it fails half-way, so that Undo
// can put it back.
func setup(w io.Writer, vip netip.Addr, dev string, tunnel bool) (err error) {
	if !vip.Is4() {
		return fmt.Errorf("VIP %v: only IPv4 VIPs are supported", vip)
	}
	devs, err := devices(dev)
	if err != nil {
		return err
	}
	st := state{VIP: vip.String(), Sysctls: map[string]string{}, Tunnel: tunnel}
	if old, err := readState(vip); err == nil {
		// Setup twice: keep the values from before the first Setup.
		st = *old
	}
	defer func() {
		if werr := writeState(vip, &st); werr != nil {
			err = errors.Join(err, fmt.Errorf("writing state: %w", werr))
		}
	}()
	for _, d := range append([]string{"all"}, devs...) {
		for _, s := range settings {
			p := sysctlPath(d, s.key)
			old, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("reading %s: %w", p, err)
			}
			if _, ok := st.Sysctls[p]; !ok {
				st.Sysctls[p] = strings.TrimSpace(string(old))
			}
			fmt.Fprintf(w, "echo %s > %s\n", s.value, p)
			if err := os.WriteFile(p, []byte(s.value), 0o644); err != nil {
				return fmt.Errorf("writing %s: %w", p, err)
			}
		}
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: vip.AsSlice(), Mask: net.CIDRMask(32, 32)}}
	fmt.Fprintf(w, "ip addr add %s/32 dev lo\n", vip)
	if err := netlink.AddrAdd(lo, addr); err != nil {
		if !errors.Is(err, os.ErrExist) && !strings.Contains(err.Error(), "file exists") {
			return fmt.Errorf("adding %s/32 to lo: %w", vip, err)
		}
	} else {
		st.Added = true
	}
	return nil
}

// Undo removes what Setup did for vip: the VIP from the loopback (if
// Setup added it) and the sysctls back to their earlier values (or to the
// kernel's defaults, 0, without a state file).
func Undo(w io.Writer, vip netip.Addr, dev string) error {
	st, err := readState(vip)
	if err != nil {
		devs, derr := devices(dev)
		if derr != nil {
			return derr
		}
		st = &state{Sysctls: map[string]string{}, Added: true}
		for _, d := range append([]string{"all"}, devs...) {
			for _, s := range settings {
				st.Sysctls[sysctlPath(d, s.key)] = "0"
			}
		}
	}
	var errs []error
	for p, v := range st.Sysctls {
		fmt.Fprintf(w, "echo %s > %s\n", v, p)
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("writing %s: %w", p, err))
		}
	}
	if st.Added {
		fmt.Fprintf(w, "ip addr del %s/32 dev lo\n", vip)
		if lo, err := netlink.LinkByName("lo"); err == nil {
			addr := &netlink.Addr{IPNet: &net.IPNet{IP: vip.AsSlice(), Mask: net.CIDRMask(32, 32)}}
			if err := netlink.AddrDel(lo, addr); err != nil && !strings.Contains(err.Error(), "cannot assign") {
				errs = append(errs, fmt.Errorf("removing %s/32 from lo: %w", vip, err))
			}
		}
	}
	os.Remove(statePath(vip))
	return errors.Join(errs...)
}

func readState(vip netip.Addr) (*state, error) {
	b, err := os.ReadFile(statePath(vip))
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("state file %s: %w", statePath(vip), err)
	}
	return &st, nil
}

func writeState(vip netip.Addr, st *state) error {
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	return os.WriteFile(statePath(vip), b, 0o644)
}
