package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

func serve(t *testing.T, cfg *ServerConfig, h Handler) *Server {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gvs.sock")
	s, err := Listen(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(h) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func echo(r *Request) *Reply {
	switch r.Op {
	case OpZero:
		panic("boom")
	case OpInfo:
		return &Reply{Info: &Info{Version: "test", ConnTableSize: 4096}}
	}
	return &Reply{Services: []Service{*r.Service}}
}

func TestRoundTrip(t *testing.T) {
	s := serve(t, nil, HandlerFunc(echo))
	if fi, err := os.Stat(s.Path()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v (err %v), want 0600", fi.Mode().Perm(), err)
	}
	c, err := Dial(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	svc := &Service{Protocol: TCP, Addr: netip.MustParseAddr("192.168.150.100"), Port: 80, Scheduler: "rr"}
	for range 3 { // several requests on one connection
		reply, err := c.Do(&Request{Op: OpAddService, Service: svc})
		if err != nil {
			t.Fatal(err)
		}
		if reply.Error != nil || len(reply.Services) != 1 || reply.Services[0].Addr != svc.Addr || reply.Version != Version {
			t.Fatalf("reply %+v", reply)
		}
	}
	reply, err := c.Do(&Request{Op: OpZero})
	if err != nil || reply.Error == nil || reply.Error.Code != CodeInternal {
		t.Fatalf("handler panic: reply %+v err %v, want an EIO error and a live server", reply, err)
	}
	if reply, err := c.Do(&Request{Op: OpInfo}); err != nil || reply.Info == nil {
		t.Fatalf("after a panic: %+v %v", reply, err)
	}
}

func rawExchange(t *testing.T, path, line string) *Reply {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(line)); err != nil {
		t.Fatal(err)
	}
	l, err := readLine(bufio.NewReader(c), MaxMessageSize)
	if err != nil {
		t.Fatal(err)
	}
	var r Reply
	if err := jsonUnmarshal(l, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func TestBadRequests(t *testing.T) {
	var calls atomic.Int32
	s := serve(t, nil, HandlerFunc(func(r *Request) *Reply { calls.Add(1); return &Reply{} }))
	tests := []struct {
		name, line, code string
		index            int
	}{
		{"not json", "hello\n", CodeInvalid, -1},
		{"empty line", "\n", CodeInvalid, -1},
		{"null", "null\n", CodeInvalid, -1},
		{"array", `[{"version":1,"op":"list"}]` + "\n", CodeInvalid, -1},
		{"truncated json", `{"version":1,"op":"list"` + "\n", CodeInvalid, -1},
		{"unknown field", `{"version":1,"op":"list","bogus":true}` + "\n", CodeInvalid, -1},
		{"wrong type", `{"version":1,"op":"add-service","service":{"port":"80"}}` + "\n", CodeInvalid, -1},
		{"wrong version", `{"version":2,"op":"list"}` + "\n", CodeVersion, -1},
		{"newer version with new fields", `{"version":2,"op":"list","shiny":1}` + "\n", CodeVersion, -1},
		{"version as a string", `{"version":"1","op":"list"}` + "\n", CodeInvalid, -1},
		{"version 1.0", `{"version":1.0,"op":"list"}` + "\n", CodeVersion, -1},
		{"no version", `{"op":"list"}` + "\n", CodeVersion, -1},
		{"trailing data", `{"version":1,"op":"list"} {}` + "\n", CodeInvalid, -1},
		{"trailing brace", `{"version":1,"op":"list"}}` + "\n", CodeInvalid, -1},
		{"unknown op", `{"version":1,"op":"reboot"}` + "\n", CodeInvalid, -1},
		{"no op", `{"version":1}` + "\n", CodeInvalid, -1},
		{"commands outside a batch", `{"version":1,"op":"clear","commands":[]}` + "\n", CodeInvalid, -1},
		{"list in a batch", `{"version":1,"op":"batch","commands":[{"op":"clear"},{"op":"list"}]}` + "\n", CodeInvalid, 1},
		{"nested batch", `{"version":1,"op":"batch","commands":[{"op":"batch"}]}` + "\n", CodeInvalid, 0},
		{"commands inside a command", `{"version":1,"op":"batch","commands":[{"op":"clear","commands":[{"op":"clear"}]}]}` + "\n", CodeInvalid, 0},
		{"command of another version", `{"version":1,"op":"batch","commands":[{"op":"clear"},{"version":3,"op":"clear"}]}` + "\n", CodeVersion, 1},
		{"too large", strings.Repeat("x", MaxMessageSize+10) + "\n", CodeTooLarge, -1},
		{"too large but valid json", `{"version":1,"op":"clear","service":{"scheduler":"` +
			strings.Repeat("x", MaxMessageSize) + `"}}` + "\n", CodeTooLarge, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rawExchange(t, s.Path(), tt.line)
			if r.Error == nil || r.Error.Code != tt.code || r.Error.Index != tt.index || r.Version != Version {
				t.Fatalf("reply %+v %+v, want error %s index %d", r, r.Error, tt.code, tt.index)
			}
		})
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("handler called %d times for bad requests", n)
	}
}

func TestRefusedPeer(t *testing.T) {
	var calls atomic.Int32
	s := serve(t, &ServerConfig{Authorize: func(p Peer) error {
		if p.PID == 0 {
			return errors.New("no credentials")
		}
		return errors.New("permission denied: test refuses everyone")
	}}, HandlerFunc(func(r *Request) *Reply { calls.Add(1); return &Reply{} }))
	c, err := Dial(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reply, err := c.Do(&Request{Op: OpClear})
	if err != nil {
		t.Fatal(err)
	}
	if reply.Error == nil || reply.Error.Code != CodePermission || !strings.Contains(reply.Error.Message, "permission denied") {
		t.Fatalf("reply %+v, want permission denied", reply.Error)
	}
	if calls.Load() != 0 {
		t.Fatal("a refused peer reached the handler")
	}
}

func TestStaleAndLiveSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gvs.sock")
	// A stale socket file: bound, then its listener gone without unlinking.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	s, err := Listen(path, nil)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	go s.Serve(HandlerFunc(echo))
	defer s.Close()
	if _, err := Listen(path, nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen on a live socket: %v, want ErrInUse", err)
	}
}

func TestSocketPath(t *testing.T) {
	t.Setenv("GVS_SOCKET", "")
	if p := SocketPath(""); p != DefaultSocket {
		t.Errorf("default %q", p)
	}
	t.Setenv("GVS_SOCKET", "/tmp/x.sock")
	if p := SocketPath(""); p != "/tmp/x.sock" {
		t.Errorf("env %q", p)
	}
	if p := SocketPath("/run/y.sock"); p != "/run/y.sock" {
		t.Errorf("flag %q", p)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func TestDialErrorsNameTheSocket(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.sock")
	_, err := Dial(missing)
	if err == nil || !strings.Contains(err.Error(), "cannot reach gvs at "+missing) ||
		!strings.Contains(err.Error(), "no such file or directory") || !strings.Contains(err.Error(), "GVS_SOCKET") {
		t.Fatalf("missing socket: %v", err)
	}
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := Dial(stale); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("stale socket: %v", err)
	}
}

func TestOldVersionClientRefused(t *testing.T) {
	s := serve(t, nil, HandlerFunc(echo))
	r := rawExchange(t, s.Path(), `{"version":0,"op":"info"}`+"\n")
	if r.Error == nil || r.Error.Code != CodeVersion || !strings.Contains(r.Error.Message, "version 0") {
		t.Fatalf("reply %+v", r.Error)
	}
}

func TestReadLine(t *testing.T) {
	const max = 40
	line := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name, in string
		want     []string // lines read, then the final error
		wantErr  error
	}{
		{"exactly the limit", line(max) + "\n" + "b\n", []string{line(max), "b"}, io.EOF},
		{"one byte over", line(max+1) + "\n", nil, errTooLarge},
		{"over, unterminated", line(max + 1), nil, errTooLarge},
		{"at the limit, unterminated", line(max), nil, io.ErrUnexpectedEOF},
		{"empty lines", "\n\n", []string{"", ""}, io.EOF},
		{"long after short", "x\n" + line(3*max) + "\n", []string{"x"}, errTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReaderSize(strings.NewReader(tt.in), 16) // lines span reads
			var got []string
			for {
				l, err := readLine(r, max)
				if err != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("error %v, want %v", err, tt.wantErr)
					}
					break
				}
				got = append(got, string(l))
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("lines %q, want %q", got, tt.want)
			}
		})
	}
}
