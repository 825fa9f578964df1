package lab

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/gvs-project/gvs/internal/netns"
)

// realIndex returns h's position among the real servers.
func (l *Lab) realIndex(h *Host) (int, error) {
	for i, r := range l.Reals {
		if r == h {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%s is not a real server of the lab", h.Role)
}

// StopHTTP stops real server h's web server, as a crashed httpd would
// be: its port refuses connections from then on (the kernel answers
// SYNs with RST) and its open connections are closed. StartServers must
// have run.
func (l *Lab) StopHTTP(h *Host) error {
	i, err := l.realIndex(h)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if i >= len(l.servers) || l.servers[i] == nil {
		return fmt.Errorf("%s: no web server running", h.Role)
	}
	l.printf("%skill httpd\n", l.prompt(h.NS))
	err = l.servers[i].Close()
	l.servers[i] = nil
	return err
}

// StartHTTP starts real server h's web server again after StopHTTP.
func (l *Lab) StartHTTP(h *Host) error {
	i, err := l.realIndex(h)
	if err != nil {
		return err
	}
	port := l.cfg.Mode.RealPort()
	l.mu.Lock()
	defer l.mu.Unlock()
	if i >= len(l.servers) || l.servers[i] != nil {
		return fmt.Errorf("%s: the web server is running, or StartServers did not run", h.Role)
	}
	var ln net.Listener
	if err := netns.Do(h.NS, func() error {
		var err error
		ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		return fmt.Errorf("%s: listening on :%d: %w", h.Role, port, err)
	}
	srv := &http.Server{Handler: handler("from " + h.Addr.String()), ReadHeaderTimeout: 10 * time.Second}
	l.servers[i] = srv
	go srv.Serve(ln)
	l.printf("%shttpd listening on *:%d again\n", l.prompt(h.NS), port)
	return nil
}
