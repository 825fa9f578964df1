package trace

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/gvs-project/gvs/forward"
	"github.com/gvs-project/gvs/internal/afpacket"
)

// The capture's queue: frames are copied into an arena of ringBytes
// (a few hundred 64 KiB super-frames, or ten thousand full-size frames)
// described by at most ringRecords records. A frame that does not fit
// is dropped from the capture (and counted), never waited for.
const (
	ringBytes   = 16 << 20
	ringRecords = 16384
	// snapLen is the capture's snap length, libpcap's MAXIMUM_SNAPLEN:
	// every frame is written whole.
	snapLen = 262144
	// writeBatch is how many records the writer takes at once.
	writeBatch = 256
)

// capRec is one frame in the capture's queue.
type capRec struct {
	off, n  int // its bytes in the arena
	orig    int // its length on the wire
	ts      time.Time
	iface   int // interface id in the file
	seq     uint64
	out     bool
	verdict forward.Reason
	vnet    afpacket.VNetHdr
}

// capture writes the pcapng file.
type capture struct {
	path         string
	max          int64
	servicesOnly bool
	sample       uint64
	logf         func(string, ...any)
	names        map[int]string
	ids          map[int]int // ifindex -> position: interface ids 2p (in), 2p+1 (out)

	// The writer goroutine's.
	f    *os.File
	w    *pcapgo.NgWriter
	size int64 // bytes in the file, buffered ones included

	mu           sync.Mutex
	buf          []byte
	recs         []capRec
	rHead, rN    int // the queue: oldest record, and how many (written ones not yet released included)
	bHead, bTail int // arena: where the next frame goes, and where the oldest one starts

	seen                         atomic.Uint64
	written, dropped, notWritten atomic.Uint64
	stopped                      atomic.Bool

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
	err  error
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

func openCapture(cfg Config, names map[int]string) (*capture, error) {
	f, err := os.Create(cfg.Pcap)
	if err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	c := &capture{path: cfg.Pcap, max: cfg.PcapMaxBytes, servicesOnly: cfg.PcapServicesOnly, sample: uint64(cfg.PcapSample),
		logf: cfg.Logf, names: names, ids: map[int]int{}, f: f,
		buf: make([]byte, ringBytes), recs: make([]capRec, ringRecords),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	cw := &countWriter{w: f}
	opts := pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
		Hardware: runtime.GOARCH, OS: runtime.GOOS, Application: "gvs",
		Comment: "gvs --pcap: NAME-in holds the frames gvs received on NAME, NAME-out those it sent; " +
			"packet comments pair them (gvs #N) and name the verdict and checksum offload state",
	}}
	iface := func(name, desc string) pcapgo.NgInterface {
		return pcapgo.NgInterface{Name: name, Description: desc, OS: runtime.GOOS, LinkType: layers.LinkTypeEthernet,
			SnapLength: snapLen, TimestampResolution: 9}
	}
	if len(cfg.Interfaces) == 0 {
		f.Close()
		return nil, fmt.Errorf("pcap: no interface")
	}
	for p, i := range cfg.Interfaces {
		c.ids[i.Index] = p
		if p == 0 {
			c.w, err = pcapgo.NewNgWriterInterface(cw, iface(i.Name+"-in", "frames gvs received on "+i.Name), opts)
		} else {
			_, err = c.w.AddInterface(iface(i.Name+"-in", "frames gvs received on "+i.Name))
		}
		if err == nil {
			_, err = c.w.AddInterface(iface(i.Name+"-out", "frames gvs sent on "+i.Name))
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("pcap %s: %w", cfg.Pcap, err)
		}
	}
	if err := c.w.Flush(); err != nil {
		f.Close()
		return nil, fmt.Errorf("pcap %s: %w", cfg.Pcap, err)
	}
	c.size = cw.n
	if c.size > c.max {
		f.Close()
		return nil, fmt.Errorf("pcap %s: a bound of %d bytes leaves no room for a packet", cfg.Pcap, c.max)
	}
	go c.run()
	return c, nil
}

// leftAlone reports whether a verdict is one of the frames gvs leaves to
// the kernel: not of a virtual service.
func leftAlone(v forward.Reason) bool { return v != forward.Forwarded && !v.Dropped() }

// observe queues a received frame and the frames sent because of it, all
// or none, unless the filter or the sampling leaves them out.
func (c *capture) observe(o *forward.Observation, seq uint64) {
	n := 1 + len(o.Outs)
	if c.stopped.Load() {
		c.notWritten.Add(uint64(n))
		return
	}
	if c.servicesOnly && leftAlone(o.Verdict) && len(o.Outs) == 0 {
		return
	}
	if c.sample > 1 && (c.seen.Add(1)-1)%c.sample != 0 {
		return
	}
	c.dropped.Add(uint64(o.OutsLost))
	in, ok := c.ids[o.Ifindex]
	if !ok {
		return
	}
	c.mu.Lock()
	rN, bHead := c.rN, c.bHead
	ok = c.put(capRec{orig: o.InLen, ts: o.Time, iface: 2 * in, seq: seq, verdict: o.Verdict, vnet: o.InVNet}, o.In)
	for i := 0; ok && i < len(o.Outs); i++ {
		s := &o.Outs[i]
		p, known := c.ids[s.Ifindex]
		if !known {
			continue
		}
		ok = c.put(capRec{orig: len(s.Data), ts: o.Time, iface: 2*p + 1, seq: seq, out: true, vnet: s.VNet}, s.Data)
	}
	if !ok {
		c.rN, c.bHead = rN, bHead // all or none
	}
	c.mu.Unlock()
	if !ok {
		c.dropped.Add(uint64(n))
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// put copies a frame into the arena and queues its record. Caller holds
// c.mu.
func (c *capture) put(r capRec, data []byte) bool {
	n := min(len(data), snapLen)
	if c.rN == len(c.recs) {
		return false
	}
	off, ok := c.alloc(n)
	if !ok {
		return false
	}
	copy(c.buf[off:off+n], data)
	r.off, r.n = off, n
	c.recs[(c.rHead+c.rN)%len(c.recs)] = r
	c.rN++
	return true
}

// alloc finds n contiguous bytes in the arena after the newest frame,
// wrapping to the start when the end has no room. Caller holds c.mu.
func (c *capture) alloc(n int) (int, bool) {
	size := len(c.buf)
	var off int
	switch {
	case c.rN == 0:
		c.bHead, c.bTail = 0, 0
		if n > size {
			return 0, false
		}
		off = 0
	case c.bHead > c.bTail: // used: [bTail, bHead)
		switch {
		case size-c.bHead >= n:
			off = c.bHead
		case n <= c.bTail:
			off = 0 // wrap; [bHead, size) stays unused this lap
		default:
			return 0, false
		}
	default: // wrapped, used: [bTail, size) and [0, bHead)
		if c.bTail-c.bHead < n {
			return 0, false
		}
		off = c.bHead
	}
	c.bHead = off + n
	return off, true
}

// run is the writer goroutine.
func (c *capture) run() {
	defer close(c.done)
	batch := make([]capRec, 0, writeBatch)
	for {
		c.mu.Lock()
		batch = batch[:0]
		for i := 0; i < c.rN && i < writeBatch; i++ {
			batch = append(batch, c.recs[(c.rHead+i)%len(c.recs)])
		}
		c.mu.Unlock()
		if len(batch) == 0 {
			c.flush()
			select {
			case <-c.wake:
				continue
			case <-c.stop:
				c.mu.Lock()
				empty := c.rN == 0
				c.mu.Unlock()
				if empty {
					c.finish()
					return
				}
				continue
			}
		}
		// The frames stay in the arena, unreleased, while they are
		// written: no producer writes over them.
		for i := range batch {
			c.write(&batch[i], c.buf[batch[i].off:batch[i].off+batch[i].n])
		}
		c.mu.Lock()
		last := batch[len(batch)-1]
		c.rHead = (c.rHead + len(batch)) % len(c.recs)
		c.rN -= len(batch)
		c.bTail = last.off + last.n
		c.mu.Unlock()
	}
}

// comment is a packet's comment (see the package doc).
func (c *capture) comment(r *capRec) string {
	p := r.iface / 2
	name := ""
	for ifx, q := range c.ids {
		if q == p {
			name = ifName(c.names, ifx)
		}
	}
	s := fmt.Sprintf("gvs #%d in %s: %s", r.seq, name, r.verdict)
	if r.out {
		s = fmt.Sprintf("gvs #%d out %s", r.seq, name)
	}
	v := r.vnet
	if v.Flags&afpacket.NeedsCsum != 0 {
		s += fmt.Sprintf("; csum partial (start %d, offset %d)", v.CsumStart, v.CsumOffset)
	} else if v.Flags&afpacket.DataValid != 0 {
		s += "; csum verified"
	}
	if v.IsGSO() {
		kind := map[uint8]string{afpacket.GSOTCPv4: "tcpv4", afpacket.GSOUDP: "udp", afpacket.GSOTCPv6: "tcpv6", afpacket.GSOUDPL4: "udp-l4"}[v.GSOType&^afpacket.GSOECN]
		s += fmt.Sprintf("; gso %s size %d", kind, v.GSOSize)
	}
	return s
}

// blockLen is the size of the Enhanced Packet Block pcapgo writes for
// n bytes of data with a comment and a flags word (pcapng §4.3).
func blockLen(n int, comment string) int64 {
	pad := func(x int) int { return (x + 3) &^ 3 }
	return int64(28 + pad(n) + (4 + pad(len(comment))) + (4 + 4) + 4 + 4)
}

func (c *capture) write(r *capRec, data []byte) {
	if c.stopped.Load() {
		c.notWritten.Add(1)
		return
	}
	comment := c.comment(r)
	size := blockLen(len(data), comment)
	if c.size+size > c.max {
		c.halt(fmt.Sprintf("pcap %s: stopped at --pcap-max-bytes (%d bytes), after %d frames; later frames are not written",
			c.path, c.max, c.written.Load()))
		c.notWritten.Add(1)
		return
	}
	dir := pcapgo.NgEpbFlagDirectionInbound
	if r.out {
		dir = pcapgo.NgEpbFlagDirectionOutbound
	}
	ci := gopacket.CaptureInfo{Timestamp: r.ts, CaptureLength: len(data), Length: max(r.orig, len(data)), InterfaceIndex: r.iface}
	if err := c.w.WritePacketWithOptions(ci, data, pcapgo.NgPacketOptions{Comments: []string{comment},
		Flags: &pcapgo.NgEpbFlags{Direction: dir}}); err != nil {
		c.halt(fmt.Sprintf("pcap %s: %v: capture stopped", c.path, err))
		c.notWritten.Add(1)
		return
	}
	c.size += size
	c.written.Add(1)
}

// halt stops the capture for good: the file is closed complete.
func (c *capture) halt(why string) {
	if c.stopped.Swap(true) {
		return
	}
	c.logf("%s", why)
	c.finish()
}

func (c *capture) flush() {
	if c.f == nil || c.stopped.Load() {
		return
	}
	if err := c.w.Flush(); err != nil {
		c.halt(fmt.Sprintf("pcap %s: %v: capture stopped", c.path, err))
	}
}

// finish flushes and closes the file once.
func (c *capture) finish() {
	if c.f == nil {
		return
	}
	err := c.w.Flush()
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	c.f = nil
	if err != nil && c.err == nil {
		c.err = fmt.Errorf("pcap %s: %w", c.path, err)
	}
}

// close writes what is queued and closes the file.
func (c *capture) close() error {
	c.once.Do(func() {
		close(c.stop)
		<-c.done
	})
	return c.err
}
