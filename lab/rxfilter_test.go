package lab

import (
	"net"
	"testing"

	"github.com/gvs-project/gvs/internal/netns"
)

// TestReceiveFilter sends datagrams from the client to the director's own
// address, which gvs leaves to the kernel: with gvs's receive filter (the
// default) they never reach its rings, without it (--receive-filter=false)
// each one does and is counted not_ours. A request to the VIP afterwards is
// answered either way, and, as the ring keeps the order of arrival, shows
// that gvs has looked at everything sent before it.
func TestReceiveFilter(t *testing.T) {
	const n = 20
	for _, tc := range []struct {
		name    string
		args    []string
		wantAll bool
	}{
		{"default", nil, false},
		{"off", []string{"--receive-filter=false"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, Config{Mode: DR, GvsArgs: tc.args})
			udpAsk(t, l, "before")
			before := counters(t, l)
			// An unconnected socket: the director's kernel answers with
			// ICMP port unreachable, which would fail a connected
			// socket's next write.
			if err := netns.Do(l.Client.NS, func() error {
				c, err := net.ListenPacket("udp4", ":0")
				if err != nil {
					return err
				}
				defer c.Close()
				to := &net.UDPAddr{IP: l.Director.Addr.AsSlice(), Port: 9}
				for range n {
					if _, err := c.WriteTo([]byte("not for gvs"), to); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			udpAsk(t, l, "after")
			after := counters(t, l)
			notOurs := after["verdict.not_ours"] - before["verdict.not_ours"]
			if tc.wantAll && notOurs < n {
				t.Errorf("without the filter: %d frames counted not_ours, want at least the %d datagrams to the director", notOurs, n)
			}
			if !tc.wantAll && notOurs != 0 {
				t.Errorf("with the filter: %d frames counted not_ours, want none (the datagrams to the director stay out of the ring)", notOurs)
			}
			t.Logf("frames received by gvs between the two requests: %d, not_ours %d", after["frames"]-before["frames"], notOurs)
		})
	}
}
