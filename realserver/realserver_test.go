package realserver

import (
	"bytes"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/gvs-project/gvs/internal/nstest"
)

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestSetupUndo prepares a namespace as a DR real server and undoes it.
func TestSetupUndo(t *testing.T) {
	nstest.Require(t)
	a, b := nstest.NewNS(t, "rsa"), nstest.NewNS(t, "rsb")
	nstest.Veth(t, a, "eth0", b, "eth0")
	StateDir = t.TempDir()
	vip := netip.MustParseAddr("192.168.150.100")
	a.Sysctl(t, "net.ipv4.conf.all.arp_announce", "1") // a value Undo must restore

	var out bytes.Buffer
	err := a.Do(func() error {
		if err := Setup(&out, vip, "eth0"); err != nil {
			return err
		}
		// Twice is harmless and keeps the values from before the first.
		return Setup(&bytes.Buffer{}, vip, "eth0")
	})
	if err != nil {
		t.Fatal(err)
	}
	a.Do(func() error {
		for p, want := range map[string]string{
			"/proc/sys/net/ipv4/conf/all/arp_ignore":    "1",
			"/proc/sys/net/ipv4/conf/all/arp_announce":  "2",
			"/proc/sys/net/ipv4/conf/eth0/arp_ignore":   "1",
			"/proc/sys/net/ipv4/conf/eth0/arp_announce": "2",
		} {
			if got := read(t, p); got != want {
				t.Errorf("%s = %s, want %s", p, got, want)
			}
		}
		return nil
	})
	if lo := a.MustRun(t, "ip", "-4", "addr", "show", "dev", "lo"); !strings.Contains(lo, "192.168.150.100/32") {
		t.Fatalf("VIP not on lo:\n%s", lo)
	}
	for _, want := range []string{"echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore", "ip addr add 192.168.150.100/32 dev lo"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("Setup did not print %q:\n%s", want, out.String())
		}
	}
	// Another namespace's real server has its own state.
	if err := b.Do(func() error { return Setup(&bytes.Buffer{}, vip, "eth0") }); err != nil {
		t.Fatal(err)
	}

	if err := a.Do(func() error { return Undo(&bytes.Buffer{}, vip, "eth0") }); err != nil {
		t.Fatal(err)
	}
	a.Do(func() error {
		if got := read(t, "/proc/sys/net/ipv4/conf/all/arp_announce"); got != "1" {
			t.Errorf("arp_announce restored to %s, want 1", got)
		}
		if got := read(t, "/proc/sys/net/ipv4/conf/eth0/arp_ignore"); got != "0" {
			t.Errorf("eth0 arp_ignore restored to %s, want 0", got)
		}
		return nil
	})
	if lo := a.MustRun(t, "ip", "-4", "addr", "show", "dev", "lo"); strings.Contains(lo, "192.168.150.100") {
		t.Fatalf("VIP still on lo after Undo:\n%s", lo)
	}
	if lo := b.MustRun(t, "ip", "-4", "addr", "show", "dev", "lo"); !strings.Contains(lo, "192.168.150.100/32") {
		t.Fatalf("Undo in one namespace removed the other's VIP:\n%s", lo)
	}
}

func TestRejectsIPv6(t *testing.T) {
	if err := Setup(&bytes.Buffer{}, netip.MustParseAddr("2001:db8::1"), ""); err == nil {
		t.Fatal("Setup accepted an IPv6 VIP")
	}
}
