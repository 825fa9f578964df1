package control

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestDefaultAuthorize(t *testing.T) {
	me := uint32(os.Getuid())
	other := uint32(4242)
	if me == other {
		other = 4243
	}
	named := &Server{group: &socketGroup{gid: 4343, name: "gvsadm"}}
	numeric := &Server{group: &socketGroup{gid: 4343}}
	none := &Server{}
	tests := []struct {
		name    string
		s       *Server
		peer    Peer
		wantErr string // "" admits
	}{
		{"root", none, Peer{UID: 0, GID: 0}, ""},
		{"root with a group", named, Peer{UID: 0, GID: 7}, ""},
		{"the daemon's user", none, Peer{UID: me, GID: 4242}, ""},
		{"outsider, no group", none, Peer{UID: other, GID: 4343, Groups: []uint32{4343}},
			"permission denied: uid " + strconv.Itoa(int(other)) + " is not root, and the gvs control socket admits no group"},
		{"primary member", named, Peer{UID: other, GID: 4343}, ""},
		{"supplementary member", named, Peer{UID: other, GID: 100, Groups: []uint32{10, 4343, 20}}, ""},
		{"outsider", named, Peer{UID: other, GID: 100, Groups: []uint32{10, 20}},
			"permission denied: uid " + strconv.Itoa(int(other)) + " is neither root nor a member of group gvsadm (gid 4343)"},
		{"outsider, unnamed group", numeric, Peer{UID: other, GID: 4344, Groups: []uint32{4342}},
			"permission denied: uid " + strconv.Itoa(int(other)) + " is neither root nor a member of group 4343"},
		{"outsider whose groups are unknown", numeric, Peer{UID: other, GID: 100},
			"permission denied: uid " + strconv.Itoa(int(other)) + " is neither root nor a member of group 4343"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.defaultAuthorize(tt.peer)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.wantErr {
				t.Fatalf("defaultAuthorize(%+v) = %q, want %q", tt.peer, got, tt.wantErr)
			}
		})
	}
}

func TestLookupGroup(t *testing.T) {
	tests := []struct {
		in      string
		wantGID uint32
		wantErr bool
	}{
		{"4343", 4343, false},
		{"0", 0, false},
		{"4294967294", 4294967294, false},
		{"4294967295", 0, true}, // (gid_t)-1
		{"4294967296", 0, true},
		{"-1", 0, true},
		{"", 0, true},
		{"no-such-group-gvs-test", 0, true},
	}
	for _, tt := range tests {
		g, err := lookupGroup(tt.in)
		if tt.wantErr {
			if !errors.Is(err, ErrUnknownGroup) || !strings.Contains(err.Error(), strconv.Quote(tt.in)) {
				t.Errorf("lookupGroup(%q) = %v, %v; want an ErrUnknownGroup naming it", tt.in, g, err)
			}
			continue
		}
		if err != nil || g.gid != tt.wantGID {
			t.Errorf("lookupGroup(%q) = %+v, %v; want gid %d", tt.in, g, err, tt.wantGID)
		}
	}
	// A name from the group database, if this system has one for our gid.
	gid := strconv.Itoa(os.Getgid())
	if g, err := lookupGroup(gid); err == nil && g.name != "" {
		byName, err := lookupGroup(g.name)
		if err != nil || byName.gid != g.gid || byName.name != g.name {
			t.Errorf("lookupGroup(%q) = %+v, %v; want gid %s", g.name, byName, err, gid)
		}
	}
}

func TestListenUnknownGroup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gvs.sock")
	_, err := Listen(path, &ServerConfig{Group: "no-such-group-gvs-test"})
	if !errors.Is(err, ErrUnknownGroup) || !strings.Contains(err.Error(), `unknown group "no-such-group-gvs-test"`) {
		t.Fatalf("Listen with an unknown group: %v", err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("the socket was created anyway (%v)", err)
	}
}

// TestListenGroup opens the socket to our own primary group, which any
// user may give a file it owns.
func TestListenGroup(t *testing.T) {
	gid := os.Getgid()
	s := serve(t, &ServerConfig{Group: strconv.Itoa(gid)}, HandlerFunc(echo))
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o660 || int(st.Gid) != gid || int(st.Uid) != os.Getuid() {
		t.Fatalf("socket mode %v owner %d:%d, want 0660 %d:%d", fi.Mode().Perm(), st.Uid, st.Gid, os.Getuid(), gid)
	}
	c, err := Dial(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r, err := c.Do(&Request{Op: OpInfo}); err != nil || r.Error != nil {
		t.Fatalf("info: %+v %v", r, err)
	}
}

// TestPeerGroups checks SO_PEERGROUPS against our own groups.
func TestPeerGroups(t *testing.T) {
	var got Peer
	s := serve(t, &ServerConfig{Authorize: func(p Peer) error { got = p; return nil }}, HandlerFunc(echo))
	c, err := Dial(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r, err := c.Do(&Request{Op: OpInfo}); err != nil || r.Error != nil {
		t.Fatalf("info: %+v %v", r, err)
	}
	want, err := os.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	var gotInts []int
	for _, g := range got.Groups {
		gotInts = append(gotInts, int(g))
	}
	slices.Sort(want)
	slices.Sort(gotInts)
	if !slices.Equal(want, gotInts) || got.Groups == nil {
		t.Errorf("peer groups %v (nil: %v), want %v", gotInts, got.Groups == nil, want)
	}
	if got.UID != uint32(os.Getuid()) || got.GID != uint32(os.Getgid()) || got.PID != int32(os.Getpid()) {
		t.Errorf("peer %+v, want uid %d gid %d pid %d", got, os.Getuid(), os.Getgid(), os.Getpid())
	}
}
