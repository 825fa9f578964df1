package control

import (
	"os"
	"testing"
)

type peerEcho struct{ peers chan Peer }

func (h peerEcho) Handle(*Request) *Reply {
	return &Reply{Error: &Error{Code: CodeInternal, Message: "Handle called"}}
}

func (h peerEcho) HandlePeer(p Peer, r *Request) *Reply {
	h.peers <- p
	return &Reply{}
}

// TestPeerHandler: a handler with HandlePeer is told each request's peer.
func TestPeerHandler(t *testing.T) {
	h := peerEcho{peers: make(chan Peer, 2)}
	s := serve(t, nil, h)
	c, err := Dial(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 2 {
		rep, err := c.Do(&Request{Op: OpInfo})
		if err != nil || rep.Error != nil {
			t.Fatalf("%+v %v", rep, err)
		}
		if p := <-h.peers; p.UID != uint32(os.Getuid()) || p.PID != int32(os.Getpid()) {
			t.Fatalf("peer %+v, want uid %d pid %d", p, os.Getuid(), os.Getpid())
		}
	}
}
