package topo

import (
	"context"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gvs-project/gvs/internal/netns"
	"github.com/gvs-project/gvs/internal/nstest"
)

// TestNewClose builds the topology, checks its wiring through the kernel's
// own view (addresses, neighbours, bridge entries, counters), and checks that
// Close leaves nothing behind.
func TestNewClose(t *testing.T) {
	nstest.Require(t)
	prefix := nstest.Name("gvsbt")
	top, err := New(context.Background(), Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer top.Close()
	if got := len(top.Namespaces()); got != 5 {
		t.Errorf("%d namespaces, want 5", got)
	}
	ctx := context.Background()
	check := func(ns string, args []string, wants ...string) {
		t.Helper()
		out, err := top.Run(ctx, ns, args...)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("%s: %s lacks %q:\n%s", ns, strings.Join(args, " "), w, out)
			}
		}
	}
	check(top.DirIn.NS, []string{"ip", "-4", "addr"}, "198.18.0.2/24", "198.18.1.1/24")
	if top.SinkDrop != SinkDropIngress {
		t.Errorf("SinkDrop = %q, want the ingress drop (nf_tables is available here)", top.SinkDrop)
	}
	check(top.DirIn.NS, []string{"ip", "neigh"}, "198.18.1.11 dev eth1 lladdr 02:b0:c6:12:01:0b PERMANENT")
	check(top.Switch, []string{"bridge", "fdb", "show", "br", Bridge}, "02:b0:c6:12:01:0b dev psink1", "02:b0:c6:12:01:01 dev pdir")
	check(top.Sinks[1].NS, []string{"cat", "/sys/class/net/eth0/queues/rx-0/rps_cpus"}, "0")
	for _, ns := range top.Namespaces() {
		out, err := top.Run(ctx, ns, "ip", "-6", "addr")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out) != "" {
			t.Errorf("%s has IPv6 addresses:\n%s", ns, out)
		}
	}
	for _, i := range append([]Iface{top.Gen, top.DirIn, top.DirOut}, top.Sinks...) {
		if _, err := top.Counters(i); err != nil {
			t.Error(err)
		}
		if idx, err := top.Ifindex(i); err != nil || idx <= 0 {
			t.Errorf("Ifindex(%s) = %d, %v", i, idx, err)
		}
	}
	if err := top.Close(); err != nil {
		t.Fatal(err)
	}
	if err := top.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	if strings.Contains(string(out), prefix) {
		t.Errorf("namespaces left after Close:\n%s", out)
	}
	if _, err := top.Counters(top.Gen); err == nil {
		t.Error("Counters after Close: no error")
	}
}

// TestTCP builds the TCP variant and checks, with real TCP between the
// namespaces, that the client reaches a sink's server through the
// director's forwarding and gets its answer back, that the sinks hold the
// VIP on lo and the sinks' side has SinkMTU, and that offloads are read.
func TestTCP(t *testing.T) {
	nstest.Require(t)
	prefix := nstest.Name("gvsbt")
	top, err := New(context.Background(), Config{Prefix: prefix, TCP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer top.Close()
	if top.SinkDrop != SinkKeep {
		t.Errorf("SinkDrop = %q, want SinkKeep", top.SinkDrop)
	}
	var ln net.Listener
	if err := netns.Do(top.Sinks[1].NS, func() error {
		var err error
		ln, err = net.Listen("tcp4", ":7777")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "hello from sink2\n")
	}()
	var c net.Conn
	if err := netns.Do(top.Gen.NS, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", top.Sinks[1].Addr.Addr().String()+":7777", 5*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(b) != "hello from sink2\n" {
		t.Errorf("read %q, %v", b, err)
	}
	out, err := top.Run(context.Background(), top.Sinks[0].NS, "ip", "addr", "show", "dev", "lo")
	if err != nil || !strings.Contains(out, VIP.String()+"/32") {
		t.Errorf("sink1's lo lacks the VIP: %v\n%s", err, out)
	}
	out, err = top.Run(context.Background(), top.Sinks[0].NS, "ip", "link", "show", "dev", "eth0")
	if err != nil || !strings.Contains(out, "mtu 1600") {
		t.Errorf("sink1's eth0 MTU is not %d: %v\n%s", SinkMTU, err, out)
	}
	off, err := top.Offloads(top.Gen)
	if err != nil || !strings.Contains(off, "tso ") || strings.Contains(off, "?") {
		t.Errorf("Offloads = %q, %v", off, err)
	}
}
