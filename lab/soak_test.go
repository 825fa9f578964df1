package lab

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// soakFor is how long TestSoak runs: a few minutes in CI, longer by hand
// (go test -run TestSoak -soak=10m ./lab).
var soakFor = flag.Duration("soak", 2*time.Minute, "how long TestSoak runs")

// soakSample is what TestSoak watches of the gvs process.
type soakSample struct {
	goroutines, fds, threads int
	rssKB                    uint64
}

func (s soakSample) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, %d threads, %d kB resident", s.goroutines, s.fds, s.threads, s.rssKB)
}

func sampleGvs(t *testing.T, fl *floodLab, pid int) soakSample {
	t.Helper()
	fams := scrape(t, fl.Lab)
	g := fams["go_goroutines"]
	if g == nil || len(g.Metric) != 1 {
		t.Fatal("no go_goroutines in gvs's metrics")
	}
	return soakSample{
		goroutines: int(g.Metric[0].GetGauge().GetValue()),
		fds:        countDir(t, fmt.Sprintf("/proc/%d/fd", pid)),
		threads:    countDir(t, fmt.Sprintf("/proc/%d/task", pid)),
		rssKB:      procStatus(t, pid, "VmRSS"),
	}
}

// TestSoak runs the flood lab for soakFor (2 minutes by default; 20 s
// with -short) with everything at once: real clients opening connections
// all along, SYN floods from new spoofed sources in bursts, configuration
// changes through gvsadm (services and real servers added, edited and
// removed, schedulers and timeouts changed, counters zeroed, listings) and
// abuse of the control socket (garbage, commands cut off, a burst of
// connections). At the end every real connection has completed, gvs has
// as many goroutines and open files as after its warm-up (a small
// tolerance for connections still closing), its memory is within the
// flood test's bound, and its configuration is the one the last changes
// left.
func TestSoak(t *testing.T) {
	dur := *soakFor
	if testing.Short() {
		dur = 20 * time.Second
	}
	// At most 10 connections a second from each of 20 clients leave at
	// most 24 000 finished connections in the table (2 minutes of
	// TIME_WAIT); the floods fill the rest of it, and are evicted.
	fl := newFloodLab(t, 20, "--conn-max", "60000", "--metrics-addr", metricsAddr)
	ctx := context.Background()
	gvsadm := func(args ...string) string {
		t.Helper()
		out, err := fl.Gvsadm(ctx, args...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return out
	}
	// Short FIN timeouts keep the finished real connections from filling
	// the table over a long soak.
	gvsadm("--set", "900", "10", "300")
	initial := gvsadm("-S", "-n")
	warm := fl.startClients(ctx, fl.clients, 2, 0, closedChan())
	warm.check(t)
	pid := gvsProcess(t, fl.Lab).Pid
	before := sampleGvs(t, fl, pid)

	stop := make(chan struct{})
	clients := fl.startClients(ctx, fl.clients, 1, 100*time.Millisecond, stop)
	floodDone := make(chan error, 1)
	floods, floodSent := 0, 0
	go func() {
		// Bursts of 20 000 SYNs at 10 000 a second, each from new sources,
		// with pauses between them.
		var err error
		defer func() { floodDone <- err }()
		for off := 0; ; off += 20000 {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Second):
			}
			f := &SYNFlood{NS: fl.Flooder.Name, Dev: "eth0", DstMAC: fl.routerMAC, Sources: floodSources, Offset: off,
				Count: 20000, Dst: netip.AddrPortFrom(VIP, 80), Rate: 10000}
			var n int
			if n, err = f.Run(ctx); err != nil {
				return
			}
			floods++
			floodSent += n
		}
	}()

	svc, other := VIP.String()+":80", VIP.String()+":8080"
	rip0, rip1 := RIPs[0].String(), RIPs[1].String()
	changes := [][][]string{
		{{"-A", "-t", other, "-s", "wlc"}, {"-a", "-t", other, "-r", rip0, "-g", "-w", "2"}},
		{{"-e", "-t", svc, "-r", rip0, "-g", "-w", "3"}},
		{{"-E", "-t", svc, "-s", "wrr"}},
		{{"-d", "-t", svc, "-r", rip1}},
		{{"-a", "-t", svc, "-r", rip1, "-g", "-w", "1"}},
		{{"--set", "900", "10", "300"}},
		{{"-D", "-t", other}},
		{{"-e", "-t", svc, "-r", rip0, "-g", "-w", "1"}, {"-E", "-t", svc, "-s", "rr"}},
		{{"-Z"}},
		{{"-L", "-n", "--stats"}},
	}
	rounds := 0
	deadline := time.Now().Add(dur)
	for i := 0; time.Now().Before(deadline) || i%len(changes) != 0; i++ {
		for _, args := range changes[i%len(changes)] {
			gvsadm(args...)
		}
		if i%len(changes) == len(changes)-1 {
			rounds++
			abuseControl(t, fl.Socket())
		}
		time.Sleep(time.Second)
	}
	close(stop)
	if err := <-floodDone; err != nil {
		t.Fatal(err)
	}
	if clients.failed.Load() > 0 {
		if cc, err := info(fl.Socket()); err == nil {
			t.Logf("counters: %v", cc)
		}
	}
	n := clients.check(t)
	if floods == 0 {
		t.Fatal("no flood ran")
	}
	if after := gvsadm("-S", "-n"); after != initial {
		t.Fatalf("the configuration after %d rounds of changes:\n%s\nwant:\n%s", rounds, after, initial)
	}
	c, err := info(fl.Socket())
	if err != nil {
		t.Fatal(err)
	}
	// Connections the test made (gvsadm's, the scrapes') close
	// asynchronously: give them a moment, as a safety net only.
	var after soakSample
	for range 50 {
		if after = sampleGvs(t, fl, pid); after.goroutines <= before.goroutines+5 && after.fds <= before.fds+5 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("soak %v: %d rounds of changes, %d floods (%d SYNs), %d real connections, evicted %d, table %d of %d; before: %v; after: %v",
		dur, rounds, floods, floodSent, n, c["conns.evicted"], c["conns.entries"], c["conns.max"], before, after)
	if after.goroutines > before.goroutines+5 {
		t.Errorf("goroutines grew from %d to %d", before.goroutines, after.goroutines)
	}
	if after.fds > before.fds+5 {
		t.Errorf("open files grew from %d to %d", before.fds, after.fds)
	}
	if after.rssKB > rssLimitKB() {
		t.Errorf("resident memory %d kB, bound %d kB", after.rssKB, rssLimitKB())
	}
	if c["conns.entries"] > c["conns.max"] {
		t.Errorf("table holds %d entries, bound %d", c["conns.entries"], c["conns.max"])
	}
}

// abuseControl does to the control socket what a broken or hostile
// client might: garbage, a command cut off, a burst of connections that
// send nothing and go. Each must leave the configuration as it was (the
// soak compares it at the end).
func abuseControl(t *testing.T, socket string) {
	t.Helper()
	for _, msg := range []string{
		"\x00\x01garbage\xff\n",
		`{"version":1,"op":"add-service","service":{"protocol":"tcp","addr":"` + VIP.String() + `","port":9999,"scheduler":"rr"}`, // no newline
		`{"version":1,"op":"clear"` + "\n",
		strings.Repeat("{", 100000) + "\n",
	} {
		c, err := net.Dial("unix", socket)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(msg))
		c.Close()
	}
	var conns []net.Conn
	for range 100 {
		c, err := net.Dial("unix", socket)
		if err != nil {
			break // the backlog is full: as good as refused
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Close()
	}
}
