package realserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// StatsInterval is the shortest time between two counter logs of Serve; it
// logs only if a counter changed.
const StatsInterval = 10 * time.Second

// Serve is `gvs realserver --tun`: it sets the host up as a real server
// for cfg.VIPs (Setup: the VIPs on lo, arp_ignore, arp_announce), creates
// a Tunnel (the TUN device, rp_filter) and decapsulates until ctx is done,
// logging the counters to log at most every StatsInterval when they
// changed. Then it undoes everything it set, restoring the previous
// values, and returns nil (or what went wrong). Each step is written to w
// as the shell command it replaces.
//
// A VIP that a one-shot Setup (`gvs realserver --vip VIP`) had already set
// up is left set up at exit. Serve changes the network namespace of the
// calling OS thread; the caller must not move it elsewhere meanwhile.
func Serve(ctx context.Context, w io.Writer, log *slog.Logger, cfg TunnelConfig) (err error) {
	if w == nil {
		w = io.Discard
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, err := cfg.check(); err != nil {
		return err
	}
	var mine []int // indexes in cfg.VIPs of the VIPs to undo at exit
	defer func() {
		for i := len(mine) - 1; i >= 0; i-- {
			if uerr := Undo(w, cfg.VIPs[mine[i]], cfg.Dev); uerr != nil {
				err = errors.Join(err, fmt.Errorf("undoing %v: %w", cfg.VIPs[mine[i]], uerr))
			}
		}
	}()
	for i, vip := range cfg.VIPs {
		old, rerr := readState(vip)
		prior := rerr == nil && !old.Tunnel
		serr := setup(w, vip, cfg.Dev, true)
		if !prior {
			// Undo also what a failed setup did half-way.
			mine = append(mine, i)
		} else {
			log.Info("VIP was set up before; it stays set up at exit", "vip", vip)
		}
		if serr != nil {
			return serr
		}
	}
	t, err := NewTunnel(w, cfg)
	if err != nil {
		return err
	}
	log.Info("decapsulating IPIP", "vips", joinVIPs(cfg), "dev", t.Name())
	done := make(chan error, 1)
	go func() { done <- t.Run() }()

	tick := time.NewTicker(StatsInterval)
	defer tick.Stop()
	var logged TunnelStats
	var runErr error
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case runErr = <-done:
			done = nil
			break wait
		case <-tick.C:
			if s := t.Stats(); s != logged {
				logStats(log, "tunnel counters", s)
				logged = s
			}
		}
	}
	cerr := t.Close()
	if done != nil {
		runErr = <-done
	}
	logStats(log, "tunnel stopped", t.Stats())
	return errors.Join(runErr, cerr)
}

func logStats(log *slog.Logger, msg string, s TunnelStats) {
	attrs := []any{"decapsulated", s.Packets, "bytes", s.Bytes}
	for r, n := range s.Dropped {
		attrs = append(attrs, "dropped_"+DropReason(r).String(), n)
	}
	attrs = append(attrs, "read_errors", s.ReadErrors)
	log.Info(msg, attrs...)
}

func joinVIPs(cfg TunnelConfig) string {
	s := ""
	for i, v := range cfg.VIPs {
		if i > 0 {
			s += ","
		}
		s += v.String()
	}
	return s
}
