package director

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"

	"github.com/gvs-project/gvs/arp"
	"github.com/gvs-project/gvs/forward"
	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/metrics"
	"github.com/gvs-project/gvs/service"
)

// MetricsPath is where the metrics endpoint serves Prometheus's format.
const MetricsPath = "/metrics"

// PprofPath is where the metrics endpoint serves the Go runtime's profiles
// with Config.Pprof: PprofPath+"profile?seconds=N" is N seconds of CPU
// profile, as `go tool pprof` fetches it.
const PprofPath = "/debug/pprof/"

// pprofWriteTimeout bounds an answer of the endpoint with Config.Pprof,
// and so the longest CPU profile or trace it serves (pprof checks).
const pprofWriteTimeout = 5 * time.Minute

// metricsServer is the HTTP server of gvs --metrics-addr.
type metricsServer struct {
	ln  net.Listener
	srv *http.Server
	// rxs are the workers' receive rings, in the engine's order of
	// workers, for their drop counters. Set before the server starts and
	// never changed, so scrapes read them without a lock (Run clears
	// Director.rxs while stopping).
	rxs []*afpacket.RX
}

// openMetrics listens on Config.MetricsAddr, if set. It runs early in New,
// so that an address gvs cannot listen on stops it before it changes
// anything.
func (d *Director) openMetrics() error {
	addr := d.cfg.MetricsAddr
	if addr == "" {
		if d.cfg.Pprof {
			return errors.New("profiles (--pprof) are served on the metrics endpoint: give --metrics-addr too")
		}
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-addr %q: %w", addr, err)
	}
	m := &metricsServer{ln: ln}
	mux := http.NewServeMux()
	mux.Handle("GET "+MetricsPath, metrics.Handler(metrics.SourceFunc(func() *metrics.Snapshot {
		return d.metricsSnapshot(m.rxs)
	})))
	writeTimeout := 30 * time.Second
	if d.cfg.Pprof {
		// The handlers of net/http/pprof, on this mux rather than
		// http.DefaultServeMux. Index serves every named profile
		// (heap, goroutine, ...) below the path.
		mux.HandleFunc("GET "+PprofPath, pprof.Index)
		mux.HandleFunc("GET "+PprofPath+"cmdline", pprof.Cmdline)
		mux.HandleFunc("GET "+PprofPath+"profile", pprof.Profile)
		mux.HandleFunc("GET "+PprofPath+"symbol", pprof.Symbol)
		mux.HandleFunc("POST "+PprofPath+"symbol", pprof.Symbol)
		mux.HandleFunc("GET "+PprofPath+"trace", pprof.Trace)
		// A CPU profile or trace answers after its ?seconds=N:
		// pprof refuses N beyond the write timeout.
		writeTimeout = pprofWriteTimeout
	}
	m.srv = &http.Server{
		Handler: mux,
		// A scrape is one small request: a slow or stuck client must
		// not hold a connection open.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      writeTimeout,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
	}
	d.metrics = m
	return nil
}

// MetricsAddr returns the address the metrics endpoint listens on (with
// the port the kernel chose for port 0), or nil without one.
func (d *Director) MetricsAddr() net.Addr {
	if d.metrics == nil {
		return nil
	}
	return d.metrics.ln.Addr()
}

// serveMetrics serves the endpoint until closeMetrics; an error that stops
// it goes to errc.
func (d *Director) serveMetrics(errc chan<- error) {
	m := d.metrics
	if m == nil {
		return
	}
	m.rxs = append([]*afpacket.RX(nil), d.rxs...)
	attrs := []any{"addr", m.ln.Addr().String(), "path", MetricsPath}
	if d.cfg.Pprof {
		attrs = append(attrs, "profiles", PprofPath)
	}
	d.log.Info("metrics serving", attrs...)
	go func() {
		if err := m.srv.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("metrics endpoint: %w", err)
		}
	}()
}

// closeMetrics stops the endpoint (its listener too, if it never served).
func (d *Director) closeMetrics() {
	if d.metrics == nil {
		return
	}
	d.metrics.srv.Close()
	d.metrics.ln.Close()
	d.metrics = nil
}

// metricsSnapshot reads gvs's counters for one scrape: the services' and
// real servers' are read as gvsadm -L --stats reads them (stats), so the
// two show the same numbers.
func (d *Director) metricsSnapshot(rxs []*afpacket.RX) *metrics.Snapshot {
	s := &metrics.Snapshot{Version: Version, IPVSVersion: IPVSVersion}
	for _, sv := range d.services.Services() {
		ms := metrics.Service{Protocol: sv.Key.ProtocolName(), Addr: netip.AddrFrom4(sv.Key.Addr), Port: sv.Key.Port,
			Traffic: traffic(&sv.Counters)}
		for _, r := range sv.Reals() {
			ms.Reals = append(ms.Reals, metrics.Real{Addr: r.Addr, Port: r.Port, Weight: int(r.Weight()),
				ConfigWeight: int(r.ConfigWeight()), Checked: r.Check() != nil, Up: !r.Failed(),
				Active: int(r.Active()), Inactive: int(r.Inactive()), Persistent: int(r.Persistent()),
				Traffic: traffic(&r.Counters)})
		}
		s.Services = append(s.Services, ms)
	}

	hs := d.checks.mon.Stats()
	s.Health = metrics.Health{Probes: hs.Probes, Failures: hs.Failed, Downs: hs.Downs, Ups: hs.Ups}

	cs := d.conns.Stats()
	s.Conntrack = metrics.Conntrack{Entries: cs.Entries, HalfOpen: cs.HalfOpen, Max: d.conns.Max(),
		Created: cs.Created, Expired: cs.Expired, Evicted: cs.Evicted, Refused: cs.Full}

	for i, w := range d.engine.Workers() {
		ws := w.Stats()
		var ringDrops uint64
		if i < len(rxs) {
			// After an error, the drops counted until then.
			_, ringDrops, _ = rxs[i].Stats()
		}
		mw := metrics.Worker{Name: w.Name, Frames: ws.Frames, Batches: ws.Batches, RingDrops: ringDrops, TXDrops: ws.TXDrops,
			Forwarded: ws.Verdicts[forward.Forwarded], ICMPSent: ws.ICMPSent, ICMPRelayed: ws.ICMPRelayed,
			Fragmented: ws.Fragmented, Segmented: ws.Segmented}
		for i, n := range ws.BatchSizes {
			mw.BatchSizes = append(mw.BatchSizes, metrics.Bucket{UpTo: forward.BatchBucketBound(i), Count: n})
		}
		for _, r := range forward.Reasons() {
			c := metrics.Count{Reason: r.String(), Frames: ws.Verdicts[r]}
			switch {
			case r == forward.Forwarded:
			case r.Dropped():
				mw.Dropped = append(mw.Dropped, c)
			default:
				mw.Passed = append(mw.Passed, c)
			}
		}
		s.Workers = append(s.Workers, mw)
	}

	as := d.resolver.Stats()
	s.ARP = metrics.ARP{RequestsSent: as.RequestsSent, AnswersSent: as.AnswersSent, GratuitousSent: as.GratuitousSent,
		Learned: as.Learned, Failures: as.Failures, Unresolved: as.Drops, Received: as.Received, Ignored: as.Ignored,
		Malformed: as.Malformed, Conflicts: as.Conflicts, SendErrors: as.SendErrors, ReadErrors: as.ReadErrors}
	for _, n := range d.resolver.Neighbors() {
		switch n.State {
		case arp.Incomplete:
			s.ARP.Incomplete++
		case arp.Reachable:
			s.ARP.Reachable++
		case arp.Failed:
			s.ARP.Failed++
		}
	}
	return s
}

// traffic is a service's or real server's counters, read as gvsadm reads
// them.
func traffic(c *service.Counters) metrics.Traffic {
	st := stats(c)
	return metrics.Traffic{Conns: st.Conns, InPackets: st.InPkts, OutPackets: st.OutPkts,
		InBytes: st.InBytes, OutBytes: st.OutBytes}
}
