package director

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/gvs-project/gvs/control"
	"github.com/gvs-project/gvs/forward"
	"github.com/gvs-project/gvs/service"
	"github.com/gvs-project/gvs/trace"
)

// tracing is the director's side of gvs --trace, --pcap and gvsadm
// --trace: the Tap, put on the engine only while it has something to do,
// so that the data path pays for it only then.
type tracing struct {
	mu  sync.Mutex // serialises switching, so the engine follows the last change
	tap *trace.Tap
}

// openTrace makes the Tap (with Config.Trace: the trace on from the start,
// the capture file) and puts it on the engine if it is active.
func (d *Director) openTrace() error {
	var cfg trace.Config
	if d.cfg.Trace != nil {
		cfg = *d.cfg.Trace
	}
	if !forward.TapBuiltIn && (cfg.On || cfg.Pcap != "") {
		return errors.New("this gvs was built without --trace and --pcap (-tags notrace)")
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.Logf == nil {
		cfg.Logf = d.logf(slog.LevelWarn)
	}
	cfg.Interfaces = nil
	for _, ifi := range d.ifaces {
		cfg.Interfaces = append(cfg.Interfaces, trace.Interface{Index: ifi.Index, Name: ifi.Name})
	}
	t, err := trace.New(cfg)
	if err != nil {
		return err
	}
	d.tr.tap = t
	d.syncTap()
	if cfg.Pcap != "" {
		d.log.Info("capturing frames", "file", cfg.Pcap, "max_bytes", cfg.PcapMaxBytes)
	}
	return nil
}

// syncTap puts the Tap on the engine while it is active, and takes it off
// otherwise.
func (d *Director) syncTap() {
	if d.tr.tap.Active() {
		d.engine.SetTap(d.tr.tap)
	} else {
		d.engine.SetTap(nil)
	}
}

// closeTrace takes the Tap off the engine and closes it (the capture file
// is flushed and closed). The workers must have stopped.
func (d *Director) closeTrace() {
	if d.tr.tap == nil {
		return
	}
	d.engine.SetTap(nil)
	if err := d.tr.tap.Close(); err != nil {
		d.log.Warn("closing the capture", "err", err)
	}
	d.tr.tap = nil
}

// traceOp answers gvsadm --trace on|off [service].
func (d *Director) traceOp(req *control.Request) *control.Reply {
	if !forward.TapBuiltIn {
		return errorReply(control.CodeNotSupported, -1, "this gvs was built without the trace (-tags notrace)")
	}
	var on bool
	switch req.Trace {
	case control.TraceOn:
		on = true
	case control.TraceOff:
	default:
		return errorReply(control.CodeInvalid, -1, fmt.Sprintf("trace %.32q: want %q or %q", req.Trace, control.TraceOn, control.TraceOff))
	}
	var key *service.Key
	if req.Service != nil {
		k, err := serviceKey(req.Service)
		if err != nil {
			var re *requestError
			errors.As(err, &re)
			return errorReply(re.code, -1, re.msg)
		}
		if on && !d.hasService(k) {
			return errorReply(control.CodeNoService, -1, fmt.Sprintf("no such service: %v", k))
		}
		key = &k
	}
	d.tr.mu.Lock()
	defer d.tr.mu.Unlock()
	if err := d.tr.tap.SetTrace(on, key); err != nil {
		code := control.CodeInvalid
		if errors.Is(err, trace.ErrNotTraced) {
			code = control.CodeNoDest
		}
		return errorReply(code, -1, err.Error())
	}
	d.syncTap()
	what := "every service"
	if key != nil {
		what = key.String()
	}
	d.log.Info("trace switched", "on", on, "for", what)
	return &control.Reply{}
}

func (d *Director) hasService(k service.Key) bool {
	for _, s := range d.services.Services() {
		if s.Key == k {
			return true
		}
	}
	return false
}

// traceCounters adds the trace's and the capture's counters to OpInfo's.
func (d *Director) traceCounters(c map[string]uint64) {
	if d.tr.tap == nil {
		return
	}
	s := d.tr.tap.Stats()
	c["trace.traced"] = s.Traced
	c["trace.suppressed"] = s.Suppressed
	c["trace.lost"] = s.Lost
	c["pcap.captured"] = s.Captured
	c["pcap.dropped"] = s.Dropped
	c["pcap.not_written"] = s.NotWritten
}
