package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// opRecorder is a Handler that records the requests it was given.
type opRecorder struct {
	mu   sync.Mutex
	reqs []Op
}

func (h *opRecorder) Handle(r *Request) *Reply {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reqs = append(h.reqs, r.Op)
	if r.Op == OpInfo {
		return &Reply{Info: &Info{Version: "test"}}
	}
	return &Reply{}
}

func (h *opRecorder) ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Op(nil), h.reqs...)
}

// stillServing fails unless a fresh client gets an answer to info.
func stillServing(t *testing.T, path string) {
	t.Helper()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r, err := c.Do(&Request{Op: OpInfo}); err != nil || r.Error != nil || r.Info == nil {
		t.Fatalf("info after the attack: %+v %v", r, err)
	}
}

func dialRaw(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// readReply reads one reply line from c (with a safety deadline).
func readReply(t *testing.T, r *bufio.Reader, c net.Conn) *Reply {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	l, err := readLine(r, MaxMessageSize)
	if err != nil {
		t.Fatalf("no reply: %v", err)
	}
	var rep Reply
	if err := json.Unmarshal(l, &rep); err != nil {
		t.Fatalf("reply %q: %v", l, err)
	}
	return &rep
}

var addSvc = `{"version":1,"op":"add-service","service":{"protocol":"tcp","addr":"192.168.150.100","port":80,"scheduler":"rr"}}`

// TestDisconnectMidCommand: a client that goes away in the middle of a
// request (or of a large batch) has nothing applied; one that goes away
// after a whole request but before the reply has it applied once, as if
// it had waited. The server serves on.
func TestDisconnectMidCommand(t *testing.T) {
	h := &opRecorder{}
	s := serve(t, nil, h)
	batch, _ := json.Marshal(&Request{Version: Version, Op: OpBatch, Commands: func() []Request {
		var cs []Request
		for i := range 20000 {
			cs = append(cs, Request{Op: OpAddService, Service: &Service{Protocol: TCP, Addr: netip.MustParseAddr("10.0.0.1"), Port: uint16(i + 1), Scheduler: "rr"}})
		}
		return cs
	}()})
	for _, part := range []string{addSvc[:10], addSvc[:len(addSvc)-1], addSvc, string(batch[:len(batch)/2]), string(batch)} {
		c := dialRaw(t, s.Path())
		if _, err := c.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	stillServing(t, s.Path())
	// Only the info above: no unterminated line was a command.
	if ops := h.ops(); len(ops) != 1 || ops[0] != OpInfo {
		t.Fatalf("handler saw %v", ops)
	}
	c := dialRaw(t, s.Path())
	c.Write([]byte(addSvc + "\n"))
	c.Close()                                    // before the reply
	deadline := time.Now().Add(10 * time.Second) // safety bound only
	for len(h.ops()) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	stillServing(t, s.Path())
	if ops := h.ops(); len(ops) != 3 || ops[1] != OpAddService {
		t.Fatalf("handler saw %v, want info, add-service, info", ops)
	}
}

// TestGarbage: lines of random bytes, binary zeros, invalid UTF-8 and
// JSON of the wrong shape each get an EINVAL (or EPROTONOSUPPORT) reply on
// the same connection, none reaches the handler, and a line over
// MaxMessageSize gets EMSGSIZE and ends the connection.
func TestGarbage(t *testing.T) {
	h := &opRecorder{}
	s := serve(t, nil, h)
	c := dialRaw(t, s.Path())
	defer c.Close()
	r := bufio.NewReader(c)
	rnd := rand.New(rand.NewPCG(1, 2))
	var lines [][]byte
	for i := range 200 {
		b := make([]byte, rnd.IntN(3000))
		for j := range b {
			b[j] = byte(rnd.Uint32())
			if b[j] == '\n' {
				b[j] = 0
			}
		}
		if i%10 == 0 {
			b = append([]byte(`{"version":1,"op":"add-service","service":`), b...)
		}
		lines = append(lines, b)
	}
	lines = append(lines, bytes.Repeat([]byte{0}, 100), []byte("\xff\xfe{}"), []byte(`{"version":1,"op":"batch","commands":[`+strings.Repeat(`{"op":"clear"},`, 10)+`]}`))
	for i, l := range lines {
		c.Write(append(l, '\n'))
		rep := readReply(t, r, c)
		if rep.Error == nil || (rep.Error.Code != CodeInvalid && rep.Error.Code != CodeVersion) || rep.Error.Message == "" {
			t.Fatalf("line %d: reply %+v", i, rep.Error)
		}
	}
	// Too large: the reply comes as soon as the limit is passed.
	go c.Write(bytes.Repeat([]byte("x"), MaxMessageSize+100<<10))
	if rep := readReply(t, r, c); rep.Error == nil || rep.Error.Code != CodeTooLarge {
		t.Fatalf("oversized: %+v", rep.Error)
	}
	stillServing(t, s.Path())
	if ops := h.ops(); len(ops) != 1 {
		t.Fatalf("handler saw %v", ops)
	}
}

// TestConnectionFlood: connections beyond MaxConns are answered EBUSY and
// closed at once; those within are served all along, and once the flood
// ends the server takes new ones again, with no goroutine left behind.
func TestConnectionFlood(t *testing.T) {
	base := runtime.NumGoroutine()
	h := &opRecorder{}
	s := serve(t, &ServerConfig{MaxConns: 16}, h)
	var held []net.Conn
	for range 16 {
		c := dialRaw(t, s.Path())
		held = append(held, c)
	}
	// Make sure the server has taken all 16 (each answers a request).
	for _, c := range held {
		c.Write([]byte(`{"version":1,"op":"info"}` + "\n"))
		readReply(t, bufio.NewReader(c), c)
	}
	var busy atomic.Int32
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("unix", s.Path())
			if err != nil {
				return // the listen backlog overflowed: also refused
			}
			defer c.Close()
			c.Write([]byte(addSvc + "\n"))
			rep := readReply(t, bufio.NewReader(c), c)
			if rep.Error == nil || rep.Error.Code != CodeBusy || !strings.Contains(rep.Error.Message, "16 control connections") {
				t.Errorf("reply over the bound: %+v", rep.Error)
				return
			}
			busy.Add(1)
		}()
	}
	wg.Wait()
	if busy.Load() == 0 {
		t.Fatal("no connection was refused")
	}
	// The held connections are still served.
	for _, c := range held {
		c.Write([]byte(`{"version":1,"op":"info"}` + "\n"))
		if rep := readReply(t, bufio.NewReader(c), c); rep.Info == nil {
			t.Fatalf("held connection: %+v", rep)
		}
	}
	for _, op := range h.ops() {
		if op != OpInfo {
			t.Fatalf("a refused connection reached the handler: %v", op)
		}
	}
	for _, c := range held {
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second) // safety bound only
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open", n)
		}
		time.Sleep(time.Millisecond)
	}
	stillServing(t, s.Path())
	if g := runtime.NumGoroutine(); g > base+5 {
		t.Fatalf("%d goroutines, %d before the flood", g, base)
	}
}

// TestLargeRequestsBounded: at most bigLines connections read a request
// longer than their buffer at once; another waits for a turn and gets
// EBUSY if none comes within bigWait; small requests are served
// meanwhile, and a large one gets its turn when one ends.
func TestLargeRequestsBounded(t *testing.T) {
	old := bigWait
	bigWait = 300 * time.Millisecond
	t.Cleanup(func() { bigWait = old })
	s := serve(t, nil, &opRecorder{})
	big := func() net.Conn {
		c := dialRaw(t, s.Path())
		// Longer than the 64 KiB buffer, unterminated: it holds a permit.
		if _, err := c.Write([]byte(`{"version":1,"op":"info","x":"` + strings.Repeat("y", 200<<10))); err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := big(), big()
	defer a.Close()
	defer b.Close()
	time.Sleep(50 * time.Millisecond) // let the server take both (no effect on the outcome: c waits either way)
	c := big()
	defer c.Close()
	if rep := readReply(t, bufio.NewReader(c), c); rep.Error == nil || rep.Error.Code != CodeBusy {
		t.Fatalf("third large request: %+v", rep.Error)
	}
	stillServing(t, s.Path())
	// One ends: the next large request is read (and refused for its
	// unknown field, which takes reading it whole).
	a.Write([]byte("\"}\n"))
	readReply(t, bufio.NewReader(a), a)
	d := big()
	defer d.Close()
	d.Write([]byte("\"}\n"))
	if rep := readReply(t, bufio.NewReader(d), d); rep.Error == nil || rep.Error.Code != CodeInvalid {
		t.Fatalf("large request after a permit freed: %+v", rep.Error)
	}
}

// TestClientReadsTheAnswerOfAClosedConnection: a server that answers and
// closes before it reads the request (as a busy gvs does) leaves the
// client's write with a broken pipe; Do returns the answer, not the pipe.
func TestClientReadsTheAnswerOfAClosedConnection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gvs.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		writeReply(c, errReply(CodeBusy, "busy: gvs serves at most 1 control connections at once; try again"))
		c.Close()
	}()
	cl, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	<-closed
	rep, err := cl.Do(&Request{Op: "list"})
	if err != nil {
		t.Fatalf("Do: %v, want the server's answer", err)
	}
	if rep.Error == nil || rep.Error.Code != CodeBusy {
		t.Fatalf("reply %+v, want the busy error", rep)
	}
}
