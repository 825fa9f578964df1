package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gvs-project/gvs/control"
)

// TestControlUnderAttack: the running gvs's control socket is abused the
// ways a broken or hostile client can (a command cut off by a
// disconnect, a large restore cut off, an oversized message, garbage, a
// flood of connections held open, a storm of connections opened and
// closed); after each, the configuration is exactly what it was (gvsadm
// -S), gvs still forwards (a request through the VIP), still answers
// gvsadm, and holds no more open files than before.
func TestControlUnderAttack(t *testing.T) {
	l := newLab(t, Config{Mode: DR})
	ctx := context.Background()
	save := func() string {
		t.Helper()
		out, err := l.Gvsadm(ctx, "-S", "-n")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return out
	}
	before := save()
	pid := gvsProcess(t, l).Pid
	fds := countDir(t, fmt.Sprintf("/proc/%d/fd", pid))
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("unix", l.Socket())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	batch := func(n int) []byte {
		var cs []control.Request
		for i := range n {
			cs = append(cs, control.Request{Op: control.OpAddService,
				Service: &control.Service{Protocol: control.TCP, Addr: netip.MustParseAddr("192.168.150.100"), Port: uint16(10000 + i), Scheduler: "rr"}})
		}
		b, _ := json.Marshal(&control.Request{Version: control.Version, Op: control.OpBatch, Commands: cs})
		return b
	}
	big := batch(5000)
	rnd := rand.New(rand.NewPCG(3, 4))

	attacks := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"a command cut off by a disconnect", func(t *testing.T) {
			c := dial()
			c.Write([]byte(`{"version":1,"op":"clear"`))
			c.Close()
		}},
		{"a restore of 5000 services cut off halfway", func(t *testing.T) {
			c := dial()
			c.Write(big[:len(big)/2])
			c.Close()
		}},
		{"an oversized message", func(t *testing.T) {
			c := dial()
			defer c.Close()
			go c.Write([]byte(strings.Repeat(" ", control.MaxMessageSize+100<<10)))
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			var rep control.Reply
			line, err := bufio.NewReader(c).ReadBytes('\n')
			if err != nil || json.Unmarshal(line, &rep) != nil || rep.Error == nil || rep.Error.Code != control.CodeTooLarge {
				t.Fatalf("oversized message: reply %q, %v", line, err)
			}
		}},
		{"garbage", func(t *testing.T) {
			c := dial()
			defer c.Close()
			r := bufio.NewReader(c)
			for i := range 50 {
				b := make([]byte, 1+rnd.IntN(2000))
				for j := range b {
					if b[j] = byte(rnd.Uint32()); b[j] == '\n' {
						b[j] = '{'
					}
				}
				c.Write(append(b, '\n'))
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				var rep control.Reply
				line, err := r.ReadBytes('\n')
				if err != nil || json.Unmarshal(line, &rep) != nil || rep.Error == nil || rep.Error.Message == "" {
					t.Fatalf("garbage line %d: reply %q, %v", i, line, err)
				}
			}
		}},
		{"500 connections held open", func(t *testing.T) {
			var held []net.Conn
			defer func() {
				// Closed even when the test fails, or the later attacks
				// would find every slot taken.
				for _, c := range held {
					c.Close()
				}
			}()
			for range 500 {
				c, err := net.Dial("unix", l.Socket())
				if err != nil {
					break // the listen backlog is full: refused too
				}
				held = append(held, c)
			}
			// While they are held, gvsadm gets an answer: the listing, or
			// a clear "busy".
			out, err := l.Gvsadm(ctx, "-L", "-n")
			if err != nil && !strings.Contains(out, "busy") {
				t.Fatalf("gvsadm during the flood: %v\n%s", err, out)
			}
			t.Logf("%d connections held; gvsadm -L -n said: %s", len(held), strings.SplitN(out, "\n", 2)[0])
		}},
		{"2000 connections opened and closed", func(t *testing.T) {
			for range 2000 {
				if c, err := net.Dial("unix", l.Socket()); err == nil {
					c.Close()
				}
			}
		}},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			a.run(t)
			// The held connections take a moment to be closed on gvs's
			// side: retry the first command briefly (a safety net).
			var after string
			for range 50 {
				out, err := l.Gvsadm(ctx, "-S", "-n")
				if err == nil {
					after = out
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if after != before {
				t.Fatalf("configuration changed:\n%s\nwas:\n%s", after, before)
			}
			if ans, err := l.Get(ctx); err != nil || !strings.HasPrefix(ans, "from 192.168.150.1") {
				t.Fatalf("a request through the VIP: %q %v", ans, err)
			}
			if exited, err := l.GvsExited(); exited {
				t.Fatalf("gvs exited: %v\n%s", err, l.GvsLog())
			}
		})
	}
	// Every connection gvs took is closed again (a safety-net wait).
	n := 0
	for range 100 {
		if n = countDir(t, fmt.Sprintf("/proc/%d/fd", pid)); n <= fds {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n > fds {
		t.Fatalf("gvs has %d open files, %d before the attacks", n, fds)
	}
}
