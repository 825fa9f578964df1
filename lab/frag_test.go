package lab

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gvs-project/gvs/internal/netns"
)

// TestFragmentedUDP: UDP datagrams larger than the MTU, which the client's
// kernel sends as IPv4 fragments, reach a real server whole in every mode
// (gvs sends a datagram's later fragments where its first fragment went),
// and the real server's answers, as large and also fragmented, reach the
// client whole (for NAT and FULLNAT through gvs's reply path).
func TestFragmentedUDP(t *testing.T) {
	for _, mode := range Modes {
		t.Run(string(mode), func(t *testing.T) {
			l := newLab(t, Config{Mode: mode})
			buf := make([]byte, 65536)
			servers := map[string]bool{}
			for i := range 6 {
				// A socket (a flow) per datagram: rr alternates them.
				var c net.Conn
				if err := netns.Do(l.Client.NS, func() error {
					var err error
					c, err = net.Dial("udp4", VIP.String()+":80")
					return err
				}); err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				msg := bytes.Repeat([]byte(fmt.Sprintf("datagram %d ", i)), 400) // about 4.8 kB: 4 fragments
				var got []byte
				// UDP: a datagram may be lost while ARP settles; ask again.
				for range 5 {
					c.Write(msg)
					c.SetReadDeadline(time.Now().Add(2 * time.Second))
					n, err := c.Read(buf)
					if err == nil {
						got = buf[:n]
						break
					}
				}
				name, body, ok := bytes.Cut(got, []byte(": "))
				if !ok || !bytes.Equal(body, msg) {
					t.Fatalf("datagram %d of %d bytes: answered %d bytes %.60q\n%s", i, len(msg), len(got), got, l.GvsLog())
				}
				servers[string(name)] = true
			}
			if len(servers) != 2 {
				t.Fatalf("answers came from %v, want both real servers", servers)
			}
			cn := counters(t, l)
			if cn["frags.placed"] == 0 {
				t.Fatalf("no fragment was placed: %v", cn)
			}
			t.Logf("%s: %d later fragments placed, %d dropped without their first", mode, cn["frags.placed"], cn["verdict.frag_no_first"])
		})
	}
}
