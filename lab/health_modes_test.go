package lab

import (
	"context"
	"strings"
	"testing"

	"github.com/gvs-project/gvs/internal/nstest"
)

// TestHealthChecksModes: in every forwarding mode's lab, HTTP checks of
// both real servers (on the port they serve, seen from the director)
// succeed, and a killed web server is taken down. In NAT mode the
// probes' answers come from the same address and port as the NAT
// replies gvs rewrites: its ingress filter must still let them reach
// the director's own kernel.
func TestHealthChecksModes(t *testing.T) {
	for _, mode := range []Mode{NAT, TUN, FullNAT} {
		t.Run(string(mode), func(t *testing.T) {
			nstest.Require(t)
			l := buildLab(t, Config{Mode: mode}, "gvh")
			if err := l.StartServers(); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := l.StartGvs(ctx, "--log-level", "debug", "--log-format", "json"); err != nil {
				t.Fatal(err)
			}
			for _, args := range l.ServiceCommands("-t", "rr") {
				if args[0] == "-a" {
					args = append(args, "--check", "http", "--check-interval", "500ms", "--check-fall", "2", "--check-rise", "1")
				}
				if _, err := l.Gvsadm(ctx, args...); err != nil {
					t.Fatal(err)
				}
			}
			port := map[Mode]string{NAT: ":8080"}[mode]
			if port == "" {
				port = ":80"
			}
			live, dead := l.Reals[1].Addr.String()+port, l.Reals[0].Addr.String()+port
			// Both servers' probes succeed (without the fix of the
			// ingress filter for NAT, none would).
			waitProbeOK(t, l, live, 0)
			waitProbeOK(t, l, dead, 0)
			killed := lastSeq(t, l)
			if err := l.StopHTTP(l.Reals[0]); err != nil {
				t.Fatal(err)
			}
			down, evs := waitHealthEvent(t, l, evDown, dead, killed)
			checkRun(t, evs, down, 2, 0)
			for i := range 6 {
				ans, err := l.Get(ctx)
				if err != nil || !strings.Contains(ans, l.Reals[1].Addr.String()) {
					t.Fatalf("request %d after the down event: %q %v", i, ans, err)
				}
			}
		})
	}
}
