package control

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/gvs-project/gvs/internal/nstest"
)

// These tests connect with real credentials: the client is this test
// binary run again (TestCredentialClient) as another user, with the
// uid, gid and supplementary groups set by the kernel on exec
// (SysProcAttr.Credential), so that SO_PEERCRED and SO_PEERGROUPS report
// them. The ids need no passwd or group entries.

const (
	clientEnv     = "GVS_CONTROL_TEST_CLIENT" // socket path for the client
	clientResult  = "GVS-CLIENT-RESULT: "
	testUID       = 4242
	testGID       = 4242 // the user's own primary group
	testGroup     = 4343 // the group the socket is opened to
	testGroupName = "4343"
)

// TestCredentialClient is the client half: it does nothing unless run by
// runClient. It dials the socket, sends one configuration request and
// prints the outcome.
func TestCredentialClient(t *testing.T) {
	path := os.Getenv(clientEnv)
	if path == "" {
		return
	}
	var res clientOutcome
	c, err := Dial(path)
	if err != nil {
		res.DialError = err.Error()
	} else {
		defer c.Close()
		reply, err := c.Do(&Request{Op: OpClear})
		if err != nil {
			res.DoError = err.Error()
		} else {
			res.Reply = reply
		}
	}
	b, _ := json.Marshal(res)
	os.Stdout.Write([]byte("\n" + clientResult + string(b) + "\n"))
}

type clientOutcome struct {
	DialError string `json:"dial_error,omitempty"`
	DoError   string `json:"do_error,omitempty"`
	Reply     *Reply `json:"reply,omitempty"`
}

// clientBinary copies the test binary where any user may run it, next to
// where the tests put their sockets, and returns its path.
func clientBinary(t *testing.T) (bin string, dir string) {
	t.Helper()
	dir = t.TempDir()
	// t.TempDir's directories are 0700; the other users need to reach
	// the binary and the sockets.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin = filepath.Join(dir, "client.test")
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin, dir
}

// runClient runs the client half as uid:gid with the supplementary
// groups (none if empty).
func runClient(t *testing.T, bin, sock string, uid, gid uint32, groups []uint32) clientOutcome {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^TestCredentialClient$", "-test.count=1", "-test.timeout=60s")
	cmd.Dir = filepath.Dir(bin)
	// GORACE: a -race binary otherwise sleeps a second at exit.
	cmd.Env = []string{clientEnv + "=" + sock, "PATH=/usr/bin:/bin", "GORACE=atexit_sleep_ms=0"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("client as %d:%d %v: %v\nstdout:\n%s\nstderr:\n%s", uid, gid, groups, err, out.String(), errb.String())
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if s, ok := strings.CutPrefix(l, clientResult); ok {
			var res clientOutcome
			if err := json.Unmarshal([]byte(s), &res); err != nil {
				t.Fatal(err)
			}
			return res
		}
	}
	t.Fatalf("client printed no result:\n%s\n%s", out.String(), errb.String())
	return clientOutcome{}
}

// recorder is a handler that counts the requests it is given.
type recorder struct {
	mu   sync.Mutex
	reqs []Op
}

func (r *recorder) Handle(req *Request) *Reply {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req.Op)
	return &Reply{}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

func TestCredentials(t *testing.T) {
	nstest.Require(t)
	bin, dir := clientBinary(t)

	// 40 supplementary groups, more than peerGroups first makes room
	// for, with the socket's group last: served only if the ERANGE retry
	// works.
	var many []uint32
	for g := uint32(5000); g < 5000+peerGroupsGuess+8; g++ {
		many = append(many, g)
	}
	many = append(many, testGroup)

	tests := []struct {
		name   string
		group  string      // ServerConfig.Group
		mode   os.FileMode // socket mode set after Listen (0: as Listen left it)
		gid    uint32
		groups []uint32
		// want: "served", "refused" (by the credential check) or
		// "no access" (by the file mode, at connect).
		want    string
		wantMsg string
	}{
		{name: "supplementary member", group: testGroupName, gid: testGID, groups: []uint32{4000, testGroup}, want: "served"},
		{name: "supplementary member of many groups", group: testGroupName, gid: testGID, groups: many, want: "served"},
		{name: "primary member", group: testGroupName, gid: testGroup, want: "served"},
		{name: "outsider, socket open to everyone", group: testGroupName, mode: 0o666, gid: testGID,
			groups: []uint32{4000, 4344}, want: "refused",
			wantMsg: "permission denied: uid 4242 is neither root nor a member of group 4343"},
		{name: "outsider with no groups, socket open to everyone", group: testGroupName, mode: 0o666, gid: testGID,
			want: "refused", wantMsg: "permission denied: uid 4242 is neither root nor a member of group 4343"},
		{name: "member, no group configured, socket open to everyone", mode: 0o666, gid: testGroup,
			groups: []uint32{testGroup}, want: "refused",
			wantMsg: "permission denied: uid 4242 is not root, and the gvs control socket admits no group"},
		{name: "outsider, socket mode 0660", group: testGroupName, gid: testGID, want: "no access"},
		{name: "member, socket mode 0600", mode: 0o600, gid: testGroup, want: "no access"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(dir, "gvs"+string(rune('a'+i))+".sock")
			h := &recorder{}
			s, err := Listen(sock, &ServerConfig{Group: tt.group})
			if err != nil {
				t.Fatal(err)
			}
			var peers []Peer
			var mu sync.Mutex
			s.cfg.Authorize = func(p Peer) error {
				mu.Lock()
				peers = append(peers, p)
				mu.Unlock()
				return s.defaultAuthorize(p)
			}
			done := make(chan error, 1)
			go func() { done <- s.Serve(h) }()
			t.Cleanup(func() { s.Close(); <-done })
			if tt.mode != 0 {
				if err := os.Chmod(sock, tt.mode); err != nil {
					t.Fatal(err)
				}
			}

			res := runClient(t, bin, sock, testUID, tt.gid, tt.groups)
			switch tt.want {
			case "served":
				if res.DialError != "" || res.DoError != "" || res.Reply == nil || res.Reply.Error != nil {
					t.Fatalf("not served: %+v %+v", res, res.Reply)
				}
				if h.count() != 1 {
					t.Fatalf("handler saw %d requests, want 1", h.count())
				}
			case "refused":
				if res.Reply == nil || res.Reply.Error == nil || res.Reply.Error.Code != CodePermission ||
					res.Reply.Error.Message != tt.wantMsg {
					t.Fatalf("outcome %+v %+v, want %s %q", res, res.Reply, CodePermission, tt.wantMsg)
				}
				if h.count() != 0 {
					t.Fatalf("a refused peer reached the handler (%d requests)", h.count())
				}
			case "no access":
				if !strings.Contains(res.DialError, "permission denied") || !strings.Contains(res.DialError, "--socket-group") {
					t.Fatalf("dial error %q, want permission denied", res.DialError)
				}
				if h.count() != 0 {
					t.Fatalf("handler saw %d requests", h.count())
				}
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if len(peers) != 1 {
				t.Fatalf("%d peers", len(peers))
			}
			p := peers[0]
			gotGroups := slices.Sorted(slices.Values(p.Groups))
			wantGroups := slices.Sorted(slices.Values(tt.groups))
			if p.UID != testUID || p.GID != tt.gid || !slices.Equal(gotGroups, wantGroups) || p.PID <= 0 {
				t.Fatalf("peer %+v, want uid %d gid %d groups %v", p, testUID, tt.gid, tt.groups)
			}
		})
	}

	t.Run("root", func(t *testing.T) {
		h := &recorder{}
		s := serve(t, &ServerConfig{Group: testGroupName}, h)
		if err := os.Chmod(s.Path(), 0o666); err != nil {
			t.Fatal(err)
		}
		res := runClient(t, bin, s.Path(), 0, 0, nil)
		if res.Reply == nil || res.Reply.Error != nil || h.count() != 1 {
			t.Fatalf("root not served: %+v %+v", res, res.Reply)
		}
	})
}
