package forward

import (
	"sync/atomic"
	"time"

	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/internal/afpacket"
	"github.com/gvs-project/gvs/internal/hdr"
	"github.com/gvs-project/gvs/service"
)

// This file is the data path's hook for gvs --trace and --pcap (package
// trace implements them). While no Tap is set, the only cost is one
// atomic load and one predictable branch per batch (Worker.batch); built
// with -tags notrace, not even that (TapBuiltIn is false and SetTap does
// nothing). While a Tap is set, each batch goes through tapBatch instead
// of the plain loop: the same handle, with the received frame copied
// before it and the frames sent because of it copied as they are
// committed, and for the frames the Tap traces, the decision read from
// the tables around it.

// TapBuiltIn reports whether this build has the tap (it is compiled out
// with -tags notrace).
const TapBuiltIn = tapCompiled

// Tap watches the data path. Its methods are called by the workers, from
// their goroutines, concurrently: they must be safe for concurrent use and
// must not block (copy what they keep and hand it to another goroutine).
type Tap interface {
	// Trace reports whether the decision behind a frame of service svc
	// (to it, or a real server's reply on one of its connections)
	// should be traced. It is asked once per such frame, before the
	// frame is handled; a rate limit belongs here.
	Trace(svc *service.Service) bool
	// Observe is called for every frame received, after it was handled.
	// o and everything it points to are valid only during the call.
	Observe(o *Observation)
}

// Observation is what a worker received and did with one frame.
type Observation struct {
	// Worker names the worker (interface/n); Ifindex is the interface
	// the frame came in on.
	Worker  string
	Ifindex int
	// Time is when the worker took the frame.
	Time time.Time
	// In is the frame as it was received, before anything was changed,
	// and InLen its length on the wire (more than len(In) if the
	// receive slot truncated it). InVNet is its virtio-net header: a
	// frame with NeedsCsum carries only the pseudo-header sum in its L4
	// checksum field.
	In     []byte
	InLen  int
	InVNet afpacket.VNetHdr
	// Verdict is what handle decided.
	Verdict Reason
	// Outs are the frames the worker sent because of this one (the
	// rewritten frame, TUN's segments or fragments, an ICMP error), as
	// committed to the transmit rings. OutsLost counts those that did
	// not fit the worker's copy buffer and are missing from Outs.
	Outs     []Sent
	OutsLost int
	// Decision is set for the frames Tap.Trace asked for.
	Decision *Decision
}

// Sent is one frame a worker sent.
type Sent struct {
	Ifindex int
	// VNet is the virtio-net header the frame was sent with: NeedsCsum
	// means the kernel completes the L4 checksum on transmit (the field
	// holds the pseudo-header sum), GSOType that it segments the frame.
	VNet afpacket.VNetHdr
	Data []byte
}

// Decision is what the data path decided about a traced frame, read from
// the connection table and the scheduler around the frame's handling. It
// is a trace, not the decision itself: another worker may change the
// same connection or service in between (then Predicted may differ from
// Real, and a state may have moved twice).
type Decision struct {
	Service *service.Service
	// Reply marks a NAT or FULLNAT real server's reply.
	Reply bool
	// Key is the connection's key (client and virtual side).
	Key conntrack.Key
	// Found: the connection's entry existed before the frame; Exists:
	// after it. Old and New are its state before (NONE for a new
	// entry) and after.
	Found, Exists bool
	Old, New      conntrack.State
	// Real is the connection's real server, Forward its method.
	Real    *service.Real
	Forward service.Forward
	// Scheduled: the frame could start a connection, and Predicted is
	// the real server the scheduler (or the persistence template) was
	// about to pick, with Why the scheduler's reason (sched.Explain).
	// Template: a live persistence template decided, TemplateKey.
	Scheduled   bool
	Predicted   *service.Real
	Why         string
	Template    bool
	TemplateKey conntrack.Key
	// Hop is the next hop towards the real server (the client's
	// frames); PeerMAC and PeerIfindex are where a reply goes back to.
	Hop         service.Hop
	PeerMAC     [6]byte
	PeerIfindex int
	// LocalAddr and LocalPort are a FULLNAT connection's.
	LocalAddr [4]byte
	LocalPort uint16

	rkey conntrack.Key // the reply key, for Reply
}

// tapHolder boxes a Tap for an atomic pointer.
type tapHolder struct{ t Tap }

// SetTap starts (t non-nil) or stops (nil) tapping every worker of the
// engine, from their next batch on. Without the tap built in, it does
// nothing.
func (e *Engine) SetTap(t Tap) {
	if !tapCompiled {
		return
	}
	if t == nil {
		e.tap.Store(nil)
		return
	}
	e.tap.Store(&tapHolder{t: t})
}

// Sizes of a worker's tap buffers: a received frame (a receive slot's
// worth; larger ones grow it), and the frames sent because of it (64 KiB
// of super-frame or of TUN segments and fragments fit).
const (
	tapInSize  = afpacket.DefaultFrameSize
	tapOutSize = 256 << 10
	tapMaxOuts = 64
)

// workerTap is a worker's tap state, made at its first tapped batch.
type workerTap struct {
	obs    Observation
	dec    Decision
	in     []byte
	outBuf []byte
	outN   int // bytes of outBuf used
	outs   [tapMaxOuts]Sent
	nOuts  int
	txs    []tapTX
	saved  []Transmitter
}

// tapTX is a Transmitter that copies each committed frame for the tap.
type tapTX struct {
	tx   Transmitter
	wt   *workerTap
	ifx  int
	vnet *afpacket.VNetHdr
	buf  []byte
}

func (t *tapTX) Slot() (*afpacket.VNetHdr, []byte, bool) {
	v, b, ok := t.tx.Slot()
	t.vnet, t.buf = v, b
	return v, b, ok
}

func (t *tapTX) Commit(n int) {
	wt := t.wt
	if wt.nOuts < len(wt.outs) && wt.outN+n <= len(wt.outBuf) {
		b := wt.outBuf[wt.outN : wt.outN+n : wt.outN+n]
		copy(b, t.buf[:n])
		wt.outN += n
		wt.outs[wt.nOuts] = Sent{Ifindex: t.ifx, VNet: *t.vnet, Data: b}
		wt.nOuts++
	} else {
		wt.obs.OutsLost++
	}
	t.tx.Commit(n)
}

func (t *tapTX) Flush() error { return t.tx.Flush() }

// tapBatch is batch's loop with the tap: see the top of this file.
func (w *Worker) tapBatch(h *tapHolder, n int, now int64, snap *service.Snapshot, tally *[numReasons]uint16) {
	wt := w.tap
	if wt == nil {
		wt = &workerTap{in: make([]byte, 0, tapInSize), outBuf: make([]byte, tapOutSize),
			txs: make([]tapTX, len(w.egress)), saved: make([]Transmitter, len(w.egress))}
		w.tap = wt
	}
	for i := range w.egress {
		wt.saved[i] = w.egress[i].TX
		wt.txs[i] = tapTX{tx: w.egress[i].TX, wt: wt, ifx: w.egress[i].Ifindex}
		w.egress[i].TX = &wt.txs[i]
	}
	t := h.t
	w.tapping = true
	for i := range n {
		f := &w.frames[i]
		o := &wt.obs
		wt.in = append(wt.in[:0], f.Data...)
		*o = Observation{Worker: w.Name, Ifindex: w.ifindex, Time: time.Now(), In: wt.in, InLen: f.Len, InVNet: f.VNet}
		wt.nOuts, wt.outN = 0, 0
		var d *Decision
		if w.tapDecide(t, f, now, snap, &wt.dec) {
			d = &wt.dec
		}
		r := w.handle(f, now, snap)
		tally[r]++
		if d != nil {
			w.tapDecided(d, now)
		}
		o.Verdict, o.Decision, o.Outs = r, d, wt.outs[:wt.nOuts]
		t.Observe(o)
	}
	for i := range w.egress {
		w.egress[i].TX = wt.saved[i]
		wt.saved[i] = nil
	}
	clear(wt.txs)
	w.tapping = false
}

// tapDecide reads what the tables say before frame f is handled, if the
// tap traces it: the service (or, for a real server's reply, the
// connection) it belongs to, its connection's state, and for a frame that
// would start a connection, the pick the scheduler or a persistence
// template is about to make.
func (w *Worker) tapDecide(t Tap, f *afpacket.Frame, now int64, snap *service.Snapshot, d *Decision) bool {
	var p packet
	if classify(f, &p) != Forwarded {
		return false
	}
	conns := w.e.cfg.Conns
	svc := snap.Lookup(service.Key{Addr: p.dst, Port: p.dport, Protocol: p.proto})
	if svc == nil {
		if !snap.MayBeReply(p.proto, p.src, p.sport, p.dst) {
			return false
		}
		rk := conntrack.KeyV4(p.proto, p.src, p.sport, p.dst, p.dport)
		c, ok := conns.PeekReply(&rk, now)
		if !ok || c.Dest.Service() == nil || !t.Trace(c.Dest.Service()) {
			return false
		}
		*d = Decision{Service: c.Dest.Service(), Reply: true, Key: c.Key, Found: true, Old: c.New, rkey: rk}
		return true
	}
	if !t.Trace(svc) {
		return false
	}
	*d = Decision{Service: svc, Key: conntrack.KeyV4(p.proto, p.src, p.sport, p.dst, p.dport)}
	if c, ok := conns.Peek(&d.Key, now); ok {
		d.Found, d.Old = true, c.New
		return true
	}
	if p.proto == hdr.ProtoTCP && p.tcpFlags&(hdr.TCPFlagSYN|hdr.TCPFlagRST) != hdr.TCPFlagSYN || p.check() != Forwarded {
		return true // no connection, and none to start: handle drops it
	}
	d.Scheduled = true
	// schedule's steps, read-only.
	if pe := svc.Persistence(); pe != nil {
		tk := d.Key
		tk.ClientPort = 0
		for i := range 4 {
			tk.Client[12+i] &= pe.Mask[i]
		}
		if svc.Key.Port == 0 || svc.Key.Port == ftpPort {
			tk.VirtualPort = 0
		}
		if r, ok := conns.PeekTemplate(&tk, now); ok && !r.Removed() && (!w.e.cfg.ExpireQuiescentTemplate || r.Weight() > 0) {
			d.Template, d.TemplateKey, d.Predicted = true, tk, r
			return true
		}
	}
	d.Predicted, d.Why = svc.Explain(&d.Key)
	return true
}

// tapDecided reads what the tables say after the frame was handled.
func (w *Worker) tapDecided(d *Decision, now int64) {
	conns := w.e.cfg.Conns
	var c conntrack.Conn[*service.Real]
	var ok bool
	if d.Reply {
		c, ok = conns.PeekReply(&d.rkey, now)
	} else {
		c, ok = conns.Peek(&d.Key, now)
	}
	if !ok {
		return
	}
	d.Exists, d.New, d.Real, d.Forward = true, c.New, c.Dest, service.Forward(c.Aux.Forward)
	d.PeerMAC, d.PeerIfindex = c.Aux.PeerMAC, int(c.Aux.PeerIfindex)
	d.LocalAddr, d.LocalPort = c.Aux.LocalAddr, c.Aux.LocalPort
	if !d.Reply {
		if l := c.Dest.Link(); l != nil {
			d.Hop = l.Hop
		}
	}
}

// engineTap is the Engine's tap pointer (a field of Engine).
type engineTap = atomic.Pointer[tapHolder]
