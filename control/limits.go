package control

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"time"
)

// The server's bounds on what clients can make it hold, so that a client
// that opens connections without end, or sends huge requests on many of
// them, cannot exhaust gvs's memory or goroutines. A connection costs a
// goroutine and a 64 KiB read buffer; a request line up to MaxMessageSize
// (8 MiB), and several times that while it is decoded.
const (
	// DefaultMaxConns is how many connections the server serves at once
	// by default. gvsadm uses one per command; more at once come only
	// from scripts running many in parallel. One more is answered
	// CodeBusy and closed at once.
	DefaultMaxConns = 64
	// bigLines is how many connections may read a request longer than
	// their 64 KiB buffer at once (a large restore or batch); others wait
	// up to bigWait (30 s) for a turn, then get CodeBusy. With it, requests in
	// flight hold at most about bigLines*MaxMessageSize (and their
	// decoding) whatever the number of connections.
	bigLines = 2
	// busyLogEvery bounds the log of refused connections to one line per
	// interval.
	busyLogEvery = 10 * time.Second
	// busyWriteTimeout bounds the write of a refusal, which never blocks
	// the accept loop for longer.
	busyWriteTimeout = 100 * time.Millisecond
)

// bigWait is how long a large request waits for a permit (a variable for
// the tests).
var bigWait = 30 * time.Second

// errBusy: no permit to read a large request within bigWait.
var errBusy = errors.New("busy: other large requests are being read; try again")

// refuseBusy answers a connection over MaxConns with CodeBusy and closes
// it.
func (s *Server) refuseBusy(c *net.UnixConn) {
	msg := fmt.Sprintf("busy: gvs serves at most %d control connections at once; try again", s.cfg.MaxConns)
	c.SetWriteDeadline(time.Now().Add(busyWriteTimeout))
	writeReply(c, errReply(CodeBusy, msg))
	c.Close()
	s.busyMu.Lock()
	defer s.busyMu.Unlock()
	if now := time.Now(); now.Sub(s.busyLogs) >= busyLogEvery {
		s.busyLogs = now
		s.cfg.Logf("control: refused a connection: %s", msg)
	}
}

// readRequest is readLine for a request: a line longer than the reader's
// buffer is read on only with one of the server's bigLines permits.
func (s *Server) readRequest(r *bufio.Reader, max int) ([]byte, error) {
	if s.big == nil {
		return readLine(r, max)
	}
	held := false
	defer func() {
		if held {
			<-s.big
		}
	}()
	return readLineGated(r, max, func() error {
		t := time.NewTimer(bigWait)
		defer t.Stop()
		select {
		case s.big <- struct{}{}:
			held = true
			return nil
		case <-t.C:
			return errBusy
		}
	})
}
