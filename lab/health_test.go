package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-project/gvs/internal/nstest"
)

// healthEvent is one of gvs's health log lines (gvs --log-format json).
type healthEvent struct {
	Msg       string `json:"msg"`
	Seq       uint64 `json:"seq"`
	Real      string `json:"real"`
	OK        *bool  `json:"ok"`
	Successes int    `json:"successes"`
	Failures  int    `json:"failures"`
	Applied   *bool  `json:"applied"`
	Reason    string `json:"reason"`
	Err       string `json:"err"`
}

// Messages of director/health.go.
const (
	evProbe = "health probe"
	evDown  = "real server down"
	evUp    = "real server up"
	evStop  = "health check stopped"
)

// healthEvents returns gvs's health events so far, in log order.
func healthEvents(t *testing.T, l *Lab) []healthEvent {
	t.Helper()
	var out []healthEvent
	for _, line := range strings.Split(l.GvsLog(), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var e healthEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("gvs log line %q: %v", line, err)
		}
		switch e.Msg {
		case evProbe, evDown, evUp, evStop:
			out = append(out, e)
		}
	}
	return out
}

// waitHealthEvent waits until gvs logs an event msg about real after
// sequence number after, and returns it with all events up to then.
// The deadline is a safety net: the test's verdicts are on the events.
func waitHealthEvent(t *testing.T, l *Lab, msg, real string, after uint64) (healthEvent, []healthEvent) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		evs := healthEvents(t, l)
		for _, e := range evs {
			if e.Msg == msg && e.Real == real && e.Seq > after {
				return e, evs
			}
		}
		if exited, err := l.GvsExited(); exited {
			t.Fatalf("gvs exited: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %q event for %s after #%d within 60 s", msg, real, after)
	return healthEvent{}, nil
}

// waitProbeOK waits for a successful probe of real after sequence
// number after.
func waitProbeOK(t *testing.T, l *Lab, real string, after uint64) uint64 {
	t.Helper()
	for {
		e, _ := waitHealthEvent(t, l, evProbe, real, after)
		if *e.OK {
			return e.Seq
		}
		after = e.Seq
	}
}

// lastSeq is the sequence number of gvs's latest health event.
func lastSeq(t *testing.T, l *Lab) uint64 {
	t.Helper()
	evs := healthEvents(t, l)
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}

// checkRun checks that transition tr of real was caused by exactly n
// consecutive probe results of the kind it needs (failures for down,
// successes for up), the last of them right before it in the sequence,
// with the result before the run (if any, after seq from) of the other
// kind.
func checkRun(t *testing.T, evs []healthEvent, tr healthEvent, n int, from uint64) {
	t.Helper()
	wantOK := tr.Msg == evUp
	var probes []healthEvent
	for _, e := range evs {
		if e.Msg == evProbe && e.Real == tr.Real && e.Seq > from && e.Seq < tr.Seq {
			probes = append(probes, e)
		}
	}
	run := 0
	for i := len(probes) - 1; i >= 0 && *probes[i].OK == wantOK; i-- {
		run++
	}
	if run != n {
		t.Fatalf("%s of %s (#%d) after %d %s probes in a row, want exactly %d; probes: %+v",
			tr.Msg, tr.Real, tr.Seq, run, map[bool]string{true: "successful", false: "failed"}[wantOK], n, probes)
	}
	if last := probes[len(probes)-1]; last.Seq != tr.Seq-1 {
		t.Fatalf("%s (#%d) does not follow its probe (#%d)", tr.Msg, tr.Seq, last.Seq)
	}
	if wantOK && tr.Successes != n || !wantOK && tr.Failures != n || tr.Applied == nil || !*tr.Applied {
		t.Fatalf("transition %+v", tr)
	}
	t.Logf("%s of %s (#%d) after %d %s probes (%d probes of it since #%d)", tr.Msg, tr.Real, tr.Seq, n,
		map[bool]string{true: "successful", false: "failed"}[wantOK], len(probes), from)
}

// connResult is one connection of the client's stream.
type connResult struct {
	phase  int32 // what the test had seen of gvs's events when the connection was opened
	answer string
	err    error
}

// Phases of the stream.
const (
	phaseBefore  = iota // before the down event
	phaseDown           // after the down event, before the server restarts
	phaseRestart        // after the restart, before the up event
	phaseUp             // after the up event
	// The stream's bounds, safety nets: a test tells it when to stop.
	maxStreamConn = 20000
	maxStreamTime = 2 * time.Minute
)

// connStream opens new connections from the client one after another,
// each tagged with the phase when it was opened.
type connStream struct {
	phase   atomic.Int32
	mu      sync.Mutex
	results []connResult
	stop    chan struct{}
	once    sync.Once
	done    chan struct{}
}

// startStream starts the stream; it ends with the test at the latest.
func startStream(t *testing.T, l *Lab) *connStream {
	s := &connStream{stop: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(func() { s.finish() })
	deadline := time.Now().Add(maxStreamTime)
	go func() {
		defer close(s.done)
		for range maxStreamConn {
			if time.Now().After(deadline) {
				return
			}
			select {
			case <-s.stop:
				return
			default:
			}
			ph := s.phase.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ans, err := l.Get(ctx)
			cancel()
			s.mu.Lock()
			s.results = append(s.results, connResult{phase: ph, answer: ans, err: err})
			s.mu.Unlock()
		}
	}()
	return s
}

// waitCount waits until n connections opened in phase ph have finished.
func (s *connStream) waitCount(t *testing.T, ph int32, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		c := 0
		for _, r := range s.results {
			if r.phase == ph {
				c++
			}
		}
		s.mu.Unlock()
		if c >= n {
			return
		}
		select {
		case <-s.done:
			t.Fatal("the connection stream ended early")
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("fewer than %d connections in phase %d within 60 s", n, ph)
}

func (s *connStream) finish() []connResult {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	return s.results
}

// newHealthLab is a DR lab with the web servers and gvs, logging JSON at
// debug level (every probe).
func newHealthLab(t *testing.T, gvsArgs ...string) *Lab {
	t.Helper()
	nstest.Require(t)
	l := buildLab(t, Config{Mode: DR}, "gvh")
	if err := l.StartServers(); err != nil {
		t.Fatal(err)
	}
	if gvsArgs != nil {
		if err := l.StartGvs(context.Background(), gvsArgs...); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// TestHealthChecks is the end-to-end test, in both modes: HTTP
// checks (fall 3, rise 2) on both real servers of the DR lab, a stream
// of new connections from the client, and node02's web server killed.
// On gvs's own events, not the clock: node02's down event comes after
// exactly 3 failed probes in a row; every connection opened after it
// succeeds, on node03; node02's server is restarted and its up event
// comes after exactly 2 successful probes; connections opened after that
// succeed and node02 answers some. gvsadm -Ln shows node02 at weight 0
// (quiesce) or not at all (remove) while it is down; -S keeps it; the
// events' sequence numbers run 1, 2, 3, ... without a gap.
func TestHealthChecks(t *testing.T) {
	for _, mode := range []string{"quiesce", "remove"} {
		t.Run(mode, func(t *testing.T) {
			l := newHealthLab(t, "--log-level", "debug", "--log-format", "json")
			ctx := context.Background()
			svc := VIP.String() + ":80"
			add := []string{"-A", "-t", svc, "-s", "rr"}
			if mode == "remove" {
				add = append(add, "--on-failure", "remove") // quiesce is the default
			}
			// Probes every 500 ms, each allowed as long: the verdicts
			// come from the events, the times only pace the test.
			check := []string{"--check", "http", "--check-url", "/", "--check-interval", "500ms", "--check-fall", "3", "--check-rise", "2"}
			for _, args := range [][]string{
				add,
				append([]string{"-a", "-t", svc, "-r", RIPs[0].String(), "-g", "-w", "1"}, check...),
				append([]string{"-a", "-t", svc, "-r", RIPs[1].String(), "-g", "-w", "1"}, check...),
			} {
				if _, err := l.Gvsadm(ctx, args...); err != nil {
					t.Fatal(err)
				}
			}
			dead, live := RIPs[0].String()+":80", RIPs[1].String()+":80"
			// Both checks run and see their servers up.
			waitProbeOK(t, l, dead, 0)
			waitProbeOK(t, l, live, 0)
			saved, err := l.Gvsadm(ctx, "-S", "-n")
			if err != nil {
				t.Fatal(err)
			}

			stream := startStream(t, l)
			stream.waitCount(t, phaseBefore, 10)
			killed := lastSeq(t, l)
			if err := l.StopHTTP(l.Reals[0]); err != nil {
				t.Fatal(err)
			}
			down, evs := waitHealthEvent(t, l, evDown, dead, killed)
			stream.phase.Store(phaseDown)
			checkRun(t, evs, down, 3, 0)
			for _, e := range evs {
				if e.Msg == evDown && e.Seq < down.Seq {
					t.Fatalf("a server went down before node02's server was killed: %+v", e)
				}
			}

			stream.waitCount(t, phaseDown, 30)
			out, err := l.Gvsadm(ctx, "-Ln")
			if err != nil {
				t.Fatal(err)
			}
			switch mode {
			case "quiesce":
				if !regexpLine(out, dead, "Route", "0 ") {
					t.Errorf("-Ln while %s is quiesced:\n%s", dead, out)
				}
			case "remove":
				if strings.Contains(out, dead) {
					t.Errorf("-Ln lists %s, which is out:\n%s", dead, out)
				}
			}
			if out, err := l.Gvsadm(ctx, "-L", "--checks", "-n"); err != nil || !regexpLine(out, dead, "http", "DOWN", "0 ") ||
				!regexpLine(out, live, "http", "UP", "1 ") || !strings.Contains(out, mode) {
				t.Errorf("--checks while %s is down: %v\n%s", dead, err, out)
			}
			if now, err := l.Gvsadm(ctx, "-S", "-n"); err != nil || now != saved {
				t.Errorf("-S while %s is down: %v\n%s\nwas:\n%s", dead, err, now, saved)
			}

			stream.phase.Store(phaseRestart)
			if err := l.StartHTTP(l.Reals[0]); err != nil {
				t.Fatal(err)
			}
			up, evs := waitHealthEvent(t, l, evUp, dead, down.Seq)
			stream.phase.Store(phaseUp)
			checkRun(t, evs, up, 2, down.Seq)
			stream.waitCount(t, phaseUp, 30)
			results := stream.finish()

			byPhase := map[int32]map[string]int{phaseBefore: {}, phaseDown: {}, phaseRestart: {}, phaseUp: {}}
			for _, r := range results {
				if r.err != nil {
					if r.phase != phaseBefore {
						t.Errorf("a connection opened in phase %d failed: %v", r.phase, r.err)
					}
					byPhase[r.phase]["failed"]++
					continue
				}
				byPhase[r.phase][r.answer]++
			}
			t.Logf("connections: before the down event %v; after it %v; after the restart %v; after the up event %v",
				byPhase[phaseBefore], byPhase[phaseDown], byPhase[phaseRestart], byPhase[phaseUp])
			if n := byPhase[phaseDown]["from "+RIPs[0].String()]; n != 0 {
				t.Errorf("%d connections opened after the down event went to %s", n, dead)
			}
			if byPhase[phaseUp]["from "+RIPs[0].String()] == 0 {
				t.Errorf("no connection opened after the up event went to %s", dead)
			}

			// One sequence, no gap, in log order.
			for i, e := range healthEvents(t, l) {
				if e.Seq != uint64(i+1) {
					t.Fatalf("health event %d has sequence number %d: %+v", i, e.Seq, e)
				}
			}
			cn := counters(t, l)
			if cn["health.down"] != 1 || cn["health.up"] != 1 || cn["health.probe_failures"] < 3 || cn["health.probes"] <= cn["health.probe_failures"] {
				t.Errorf("health counters %v", cn)
			}
		})
	}
}

// TestHealthBadInput: check options gvsadm or gvs refuse, and restores
// with a bad gvs-check line, change nothing and name what is wrong; gvs
// --rules loads the checks -S saves, and refuses a file with a bad one,
// naming the line.
func TestHealthBadInput(t *testing.T) {
	l := newHealthLab(t)
	ctx := context.Background()
	svc := VIP.String() + ":80"
	rs0, rs1 := RIPs[0].String(), RIPs[1].String()
	dir := t.TempDir()
	rules := fmt.Sprintf("-A -t %[1]s -s rr\n# gvs-check -t %[1]s --on-failure remove\n"+
		"-a -t %[1]s -r %[2]s:80 -g -w 2\n"+
		"# gvs-check -t %[1]s -r %[2]s:80 --check http --check-interval 300ms --check-timeout 300ms --check-rise 2 --check-fall 3 --check-url / --check-status 200\n"+
		"-a -t %[1]s -r %[3]s:80 -g -w 1\n"+
		"# gvs-check -t %[1]s -r %[3]s:80 --check tcp --check-interval 5s --check-timeout 2s --check-rise 1 --check-fall 1\n", svc, rs0, rs1)
	bad := strings.Replace(rules, "--check-fall 1\n", "--check-fall 1 --check-url /\n", 1)
	goodFile, badFile := filepath.Join(dir, "good.rules"), filepath.Join(dir, "bad.rules")
	os.WriteFile(goodFile, []byte(rules), 0o644)
	os.WriteFile(badFile, []byte(bad), 0o644)

	err := l.StartGvs(ctx, "--rules", badFile)
	if err == nil || !strings.Contains(err.Error(), "line 6") || !strings.Contains(err.Error(), "--check-url is for http checks, not tcp") {
		t.Fatalf("gvs with a bad gvs-check line: %v", err)
	}
	if err := l.StartGvs(ctx, "--rules", goodFile); err != nil {
		t.Fatal(err)
	}
	save := func() string {
		out, err := l.Gvsadm(ctx, "-S", "-n")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := save()
	if before != rules {
		t.Fatalf("-S after --rules:\n%s\nthe file:\n%s", before, rules)
	}
	// The checks run: wait for a probe of each (on the counters).
	for deadline := time.Now().Add(60 * time.Second); counters(t, l)["health.probes"] < 2; {
		if time.Now().After(deadline) {
			t.Fatal("no probes within 60 s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-e", "-t", svc, "-r", rs0, "--check", "http", "--check-fall", "0"}, "illegal check fall specified (1..100)"},
		{[]string{"-e", "-t", svc, "-r", rs0, "--check", "tcp", "--check-url", "/"}, "--check-url is for http checks, not tcp"},
		{[]string{"-e", "-t", svc, "-r", rs0, "--check-interval", "1s"}, "the 'check-interval' option needs the 'check' option"},
		{[]string{"-a", "-t", svc, "-r", "192.168.150.20", "--check", "icmp"}, "illegal check `icmp' specified"},
		{[]string{"-a", "-t", svc, "-r", "192.168.150.20", "--check", "cmd", "--check-cmd", "check.sh"}, "the program must be an absolute path"},
		{[]string{"-E", "-t", svc, "-s", "rr", "--on-failure", "drain"}, "illegal on-failure `drain' specified"},
		{[]string{"-A", "-t", VIP.String() + ":81", "--check", "tcp"}, "Illegal 'check' option with the 'add-service' command"},
	} {
		out, err := l.Gvsadm(ctx, tc.args...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("gvsadm %v: %v, said %q, want %q", tc.args, err, out, tc.want)
		}
	}
	for _, tc := range []struct {
		in, want string
	}{
		// The line is bad, or matches no -a line, or a port-0 service's
		// server has no port to probe.
		{fmt.Sprintf("-A -t %s:0 -s rr -p\n-a -t %s:0 -r %s -g -w 1\n# gvs-check -t %s:0 -r %s:0 --check http\n", VIP, VIP, rs0, VIP, rs0),
			"line 3: a real server of a port-0 service has no port to check: give --check-port"},
		{fmt.Sprintf("-A -t %s:81 -s rr\n-a -t %s:81 -r %s -g\n# gvs-check -t %s:81 -r %s --check http --check-digest 00\n", VIP, VIP, rs0, VIP, rs0),
			"line 3: --check-digest \"00\" is neither an MD5"},
		{fmt.Sprintf("-A -t %s:81 -s rr\n# gvs-check -t %s:81 -r %s --check http\n", VIP, VIP, rs0),
			"line 2: gvs-check: no -a or -e line of real server " + rs0 + ":81 before it"},
	} {
		cmd := exec.Command(gvsadmBin, "-R")
		cmd.Env = append(os.Environ(), "GVS_SOCKET="+l.Socket())
		cmd.Stdin = strings.NewReader(tc.in)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("restore of\n%s: %v, said %q, want %q", tc.in, err, out, tc.want)
		}
	}
	if after := save(); after != before {
		t.Fatalf("configuration changed:\n%s\nwas:\n%s", after, before)
	}
	// --check none removes a check; the listing says so.
	if _, err := l.Gvsadm(ctx, "-e", "-t", svc, "-r", rs1, "-g", "-w", "1", "--check", "none"); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Gvsadm(ctx, "-L", "--checks", "-n", "-t", svc); err != nil || !regexpLine(out, rs1+":80", "none", "-", "1") ||
		!regexpLine(out, rs0+":80", "http", "UP", "2") {
		t.Fatalf("--checks after --check none: %v\n%s", err, out)
	}

	// SIGHUP reloads the file's checks and on-failure, replacing what
	// gvsadm changed; a bad gvs-check line keeps the configuration.
	before = save()
	os.WriteFile(goodFile, []byte(bad), 0o644)
	signalGvs(t, l, syscall.SIGHUP)
	if line := waitLog(t, l, "rules not reloaded", 1); !strings.Contains(line, "line 6") {
		t.Fatalf("reload of a bad file: %s", line)
	}
	if after := save(); after != before {
		t.Fatalf("a bad reload changed the configuration:\n%s\nwas:\n%s", after, before)
	}
	reloaded := fmt.Sprintf("-A -t %[1]s -s rr\n"+
		"-a -t %[1]s -r %[2]s:80 -g -w 2\n"+
		"# gvs-check -t %[1]s -r %[2]s:80 --check tcp --check-interval 1s --check-timeout 1s --check-rise 2 --check-fall 2\n"+
		"-a -t %[1]s -r %[3]s:80 -g -w 1\n", svc, rs0, rs1)
	os.WriteFile(goodFile, []byte(reloaded), 0o644)
	signalGvs(t, l, syscall.SIGHUP)
	waitLog(t, l, "rules reloaded", 1)
	if after := save(); after != reloaded {
		t.Fatalf("-S after the reload:\n%s\nthe file:\n%s", after, reloaded)
	}
	if out, err := l.Gvsadm(ctx, "-L", "--checks", "-n"); err != nil || !regexpLine(out, rs0+":80", "tcp", "UP", "2") ||
		!regexpLine(out, rs1+":80", "none") || !strings.Contains(out, "quiesce") {
		t.Fatalf("--checks after the reload: %v\n%s", err, out)
	}
}
