package lab

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// This file is what the labs need of gvs --trace and --pcap: the demo's
// trace of the first connection (gvs demo --trace), and stopping gvs so
// that its capture file is complete.

// StopGvs stops gvs with SIGTERM, as Close does, and waits until it has
// exited, so that what it writes on the way out (the end of a --pcap
// file) is on disk. The rest of the lab stays up.
func (l *Lab) StopGvs() error {
	l.mu.Lock()
	gvs := l.gvs
	l.mu.Unlock()
	if gvs == nil || gvs.Process == nil {
		return errors.New("gvs is not running")
	}
	gvs.Process.Signal(syscall.SIGTERM)
	select {
	case <-l.gvsDone:
		return l.gvsErr
	case <-time.After(10 * time.Second):
		gvs.Process.Kill()
		<-l.gvsDone
		return errors.New("gvs did not stop within 10 s of SIGTERM; killed")
	}
}

// traceArgs are the gvs options the demo's --trace adds.
var traceArgs = []string{"--trace"}

// traceHeader matches the first line of a trace block and captures the
// client's address and port, on either side of the ">".
var traceHeader = regexp.MustCompile(`^trace \S+ \S+ #\d+: (?:TCP|UDP) (\S+) > (\S+) `)

// TraceBlocks splits gvs's output into its trace blocks (see package
// trace), in order; other lines (gvs's log, summaries) are left out.
func TraceBlocks(out string) []string {
	var blocks []string
	in := false
	for _, line := range strings.SplitAfter(out, "\n") {
		switch {
		case traceHeader.MatchString(line):
			blocks = append(blocks, line)
			in = true
		case in && strings.HasPrefix(line, "  "):
			blocks[len(blocks)-1] += line
		default:
			in = false
		}
	}
	return blocks
}

// demoTraceFrames is how many of the first connection's frames the demo
// shows: its SYN, the answer (NAT and FULLNAT see it) and the ACK.
const demoTraceFrames = 3

// localLine finds FULLNAT's local address and port in a trace block.
var localLine = regexp.MustCompile(`(?m)^  local  (\S+) `)

// firstConnTrace returns the trace blocks of the first connection the
// trace shows: those with its client's address and port, or (FULLNAT's
// replies) its local address and port, on either side.
func firstConnTrace(out string) []string {
	blocks := TraceBlocks(out)
	if len(blocks) == 0 {
		return nil
	}
	ends := map[string]bool{traceHeader.FindStringSubmatch(blocks[0])[1]: true}
	if m := localLine.FindStringSubmatch(blocks[0]); m != nil {
		ends[m[1]] = true
	}
	var conn []string
	for _, b := range blocks {
		if m := traceHeader.FindStringSubmatch(b); m != nil && (ends[m[1]] || ends[m[2]]) {
			conn = append(conn, b)
		}
	}
	return conn
}

// showTrace prints what gvs --trace printed for the first connection's
// first frames.
func (l *Lab) showTrace(ctx context.Context) error {
	l.step("node01: what gvs did to the first connection's first frames (gvs --trace: each frame as it came in, " +
		"the decision, and exactly the header fields gvs changed)")
	// The trace is written by its own goroutine: give it a moment.
	var conn []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		conn = firstConnTrace(l.GvsLog())
		if len(conn) >= demoTraceFrames || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if len(conn) == 0 {
		return fmt.Errorf("gvs --trace printed nothing\n%s", l.GvsLog())
	}
	for _, b := range conn[:min(len(conn), demoTraceFrames)] {
		l.printf("%s", b)
	}
	l.printf("=> gvsadm --trace on|off [-t|-u service] switches the trace while gvs runs; gvs --pcap FILE writes every frame, before and after, for Wireshark.\n")
	return nil
}
