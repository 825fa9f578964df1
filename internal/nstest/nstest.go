// Package nstest gives tests their own network namespaces, veth pairs and
// commands run inside them, and removes everything they created when the
// test ends, also when it fails.
//
// Tests that need root call Require first. Outside CI a missing privilege
// skips the test with a hint; under CI=true it fails it, because CI runs as
// root and a skip there would hide a regression.
//
// Names are unique per test (a prefix, the process id and a counter), so
// tests may run in parallel and never touch the host's own interfaces.
package nstest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gvs-project/gvs/internal/netns"
)

// InCI reports whether the tests run in CI, where a privileged test that
// cannot get its privileges must fail rather than skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require skips (or under CI=true fails) t unless the process may create
// network namespaces and the ip command is there.
func Require(t testing.TB) {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "not running as root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)"
	default:
		if _, err := exec.LookPath("ip"); err != nil {
			why = "the ip command (iproute2) is missing"
		}
	}
	if why == "" {
		return
	}
	if InCI() {
		t.Fatalf("CI=true but %s: this test must run in CI", why)
	}
	t.Skipf("skipping: %s; run as root, or in CI", why)
}

var seq atomic.Uint32

// Name returns a name unique among the processes running, at most 15 bytes
// (the limit of an interface name), starting with prefix (shortened if
// needed). The process ID has a fixed width, so that the names of two
// processes (tests running at the same time) never meet: "1a2b"+"3" and
// "1a2"+"b3" would.
func Name(prefix string) string {
	suffix := fmt.Sprintf("%06x%x", os.Getpid()&0xffffff, seq.Add(1))
	if max := 15 - len(suffix); len(prefix) > max {
		prefix = prefix[:max]
	}
	return prefix + suffix
}

// NS is a named network namespace (as `ip netns` names them).
type NS struct {
	Name string
}

// NewNS creates a network namespace whose name starts with prefix, brings
// its loopback up, and deletes it (with everything in it) when t ends.
func NewNS(t testing.TB, prefix string) *NS {
	t.Helper()
	ns := &NS{Name: Name(prefix)}
	if out, err := exec.Command("ip", "netns", "add", ns.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns.Name, err, out)
	}
	t.Cleanup(func() {
		// Deleting the namespace destroys its interfaces; veth peers
		// elsewhere go with them.
		if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
			t.Logf("ip netns del %s: %v: %s", ns.Name, err, out)
		}
	})
	ns.MustRun(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Run runs a command inside the namespace and returns its combined output.
func (ns *NS) Run(args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("in %s: %s: %w: %s", ns.Name, strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// MustRun is Run that fails the test on error.
func (ns *NS) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := ns.Run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Sysctl sets a sysctl (for example "net.ipv4.ip_forward") in the namespace.
func (ns *NS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	ns.MustRun(t, "sh", "-c", fmt.Sprintf("echo %s > %s", value, path))
}

// Do runs fn on an OS thread that has entered the namespace. Sockets that
// fn creates belong to the namespace for their whole life and may be used
// from any goroutine afterwards.
func (ns *NS) Do(fn func() error) error { return netns.Do(ns.Name, fn) }

// Veth creates a veth pair with one end named aName in a and the other
// named bName in b, both up. Deleting either namespace removes the pair.
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string) {
	t.Helper()
	tmp := Name("vt")
	if out, err := exec.Command("ip", "link", "add", tmp, "netns", a.Name, "type", "veth",
		"peer", "name", bName, "netns", b.Name).CombinedOutput(); err != nil {
		t.Fatalf("creating veth %s/%s: %v: %s", aName, bName, err, out)
	}
	a.MustRun(t, "ip", "link", "set", tmp, "name", aName)
	a.MustRun(t, "ip", "link", "set", aName, "up")
	b.MustRun(t, "ip", "link", "set", bName, "up")
}
