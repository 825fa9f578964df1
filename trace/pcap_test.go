package trace

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/gvs-project/gvs/forward"
	"github.com/gvs-project/gvs/internal/afpacket"
)

type capPacket struct {
	data    []byte
	length  int
	iface   string
	comment string
	dir     pcapgo.NgEpbFlag
}

// readPcap reads a capture file with pcapgo's reader.
func readPcap(t *testing.T, path string) []capPacket {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	var out []capPacket
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		intf, err := r.Interface(ci.InterfaceIndex)
		if err != nil {
			t.Fatal(err)
		}
		p := capPacket{data: bytes.Clone(data), length: ci.Length, iface: intf.Name}
		if len(opts.Comments) == 1 {
			p.comment = opts.Comments[0]
		}
		if opts.Flags != nil {
			p.dir = opts.Flags.Direction
		}
		out = append(out, p)
	}
	return out
}

func logTo(mu *sync.Mutex, logs *[]string) func(string, ...any) {
	return func(f string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		*logs = append(*logs, fmt.Sprintf(f, args...))
	}
}

// TestCapture: frames received and sent go to the file in order, on the
// interface blocks of their interface and direction, whole, with the
// comments that pair them and say which checksums were left to offload;
// the filter and the sampling leave out what they should.
func TestCapture(t *testing.T) {
	in := syn.bytes(t)
	out := pkt{srcMAC: dirMAC2, dstMAC: rs13MAC, src: client, dst: rs13, sport: 40312, dport: 80, ttl: 63, syn: true}.bytes(t)
	partial := afpacket.VNetHdr{Flags: afpacket.NeedsCsum, CsumStart: 34, CsumOffset: 16}
	gso := afpacket.VNetHdr{Flags: afpacket.NeedsCsum, CsumStart: 34, CsumOffset: 16, GSOType: afpacket.GSOTCPv4, GSOSize: 1448}
	arpFrame := make([]byte, 42)
	observe := func(tap *Tap) {
		tap.Observe(&forward.Observation{Ifindex: 2, Time: at, In: in, InLen: len(in), InVNet: partial, Verdict: forward.Forwarded,
			Outs: []forward.Sent{{Ifindex: 3, VNet: gso, Data: out}}})
		tap.Observe(&forward.Observation{Ifindex: 2, Time: at, In: arpFrame, InLen: 60, Verdict: forward.NotIPv4})
		tap.Observe(&forward.Observation{Ifindex: 3, Time: at, In: out, InLen: len(out), Verdict: forward.NoDest})
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want []capPacket
	}{{
		name: "all",
		want: []capPacket{
			{data: in, length: len(in), iface: "eth0-in", dir: pcapgo.NgEpbFlagDirectionInbound,
				comment: "gvs #1 in eth0: forwarded; csum partial (start 34, offset 16)"},
			{data: out, length: len(out), iface: "eth1-out", dir: pcapgo.NgEpbFlagDirectionOutbound,
				comment: "gvs #1 out eth1; csum partial (start 34, offset 16); gso tcpv4 size 1448"},
			{data: arpFrame, length: 60, iface: "eth0-in", dir: pcapgo.NgEpbFlagDirectionInbound, comment: "gvs #2 in eth0: not_ipv4"},
			{data: out, length: len(out), iface: "eth1-in", dir: pcapgo.NgEpbFlagDirectionInbound, comment: "gvs #3 in eth1: no_dest"},
		},
	}, {
		name: "services only",
		cfg:  Config{PcapServicesOnly: true},
		want: []capPacket{
			{data: in, length: len(in), iface: "eth0-in", dir: pcapgo.NgEpbFlagDirectionInbound,
				comment: "gvs #1 in eth0: forwarded; csum partial (start 34, offset 16)"},
			{data: out, length: len(out), iface: "eth1-out", dir: pcapgo.NgEpbFlagDirectionOutbound,
				comment: "gvs #1 out eth1; csum partial (start 34, offset 16); gso tcpv4 size 1448"},
			{data: out, length: len(out), iface: "eth1-in", dir: pcapgo.NgEpbFlagDirectionInbound, comment: "gvs #3 in eth1: no_dest"},
		},
	}, {
		name: "1 in 2",
		cfg:  Config{PcapSample: 2},
		want: []capPacket{
			{data: in, length: len(in), iface: "eth0-in", dir: pcapgo.NgEpbFlagDirectionInbound,
				comment: "gvs #1 in eth0: forwarded; csum partial (start 34, offset 16)"},
			{data: out, length: len(out), iface: "eth1-out", dir: pcapgo.NgEpbFlagDirectionOutbound,
				comment: "gvs #1 out eth1; csum partial (start 34, offset 16); gso tcpv4 size 1448"},
			{data: out, length: len(out), iface: "eth1-in", dir: pcapgo.NgEpbFlagDirectionInbound, comment: "gvs #3 in eth1: no_dest"},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Pcap = filepath.Join(t.TempDir(), "gvs.pcapng")
			tap, _ := newTap(t, cfg)
			if !tap.Active() {
				t.Fatal("capturing Tap not active")
			}
			observe(tap)
			if err := tap.Close(); err != nil {
				t.Fatal(err)
			}
			got := readPcap(t, cfg.Pcap)
			if len(got) != len(tc.want) {
				t.Fatalf("%d packets, want %d: %+v", len(got), len(tc.want), got)
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				if !bytes.Equal(g.data, w.data) || g.length != w.length || g.iface != w.iface || g.comment != w.comment || g.dir != w.dir {
					t.Errorf("packet %d: %s %q len %d dir %d, want %s %q len %d dir %d (data equal: %v)", i,
						g.iface, g.comment, g.length, g.dir, w.iface, w.comment, w.length, w.dir, bytes.Equal(g.data, w.data))
				}
			}
			if st := tap.Stats(); st.Captured != uint64(len(tc.want)) || st.Dropped != 0 || st.Stopped {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestCaptureBound: at --pcap-max-bytes the capture stops: the file
// stays within the bound and readable, holds the first frames, says so in
// the log, and counts the rest as not written.
func TestCaptureBound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gvs.pcapng")
	var mu sync.Mutex
	var logs []string
	const bound = 2000
	tap, _ := newTap(t, Config{Pcap: path, PcapMaxBytes: bound, Logf: logTo(&mu, &logs)})
	in := syn.bytes(t)
	for range 50 {
		tap.Observe(&forward.Observation{Ifindex: 2, Time: at, In: in, InLen: len(in), Verdict: forward.NotOurs})
	}
	if err := tap.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	got := readPcap(t, path)
	s := tap.Stats()
	if st.Size() > bound || len(got) == 0 || len(got) >= 50 || !s.Stopped || s.Captured != uint64(len(got)) ||
		s.Captured+s.NotWritten != 50 {
		t.Fatalf("file %d bytes (bound %d), %d packets read, stats %+v", st.Size(), bound, len(got), s)
	}
	// The next packet would not have fitted.
	if st.Size()+blockLen(len(in), got[0].comment) <= bound {
		t.Fatalf("stopped at %d bytes with room for another packet", st.Size())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(logs) != 1 || !strings.Contains(logs[0], "stopped at --pcap-max-bytes") {
		t.Fatalf("logs %q", logs)
	}
	if tap.Active() {
		t.Fatal("a stopped capture keeps the Tap active")
	}
}

// TestCaptureOpenErrors: a file that cannot be created, or a bound with
// no room for a packet, is refused at start.
func TestCaptureOpenErrors(t *testing.T) {
	if _, err := New(Config{Interfaces: ifaces, Pcap: filepath.Join(t.TempDir(), "no", "such", "dir", "x.pcapng")}); err == nil {
		t.Error("pcap in a missing directory: no error")
	}
	if _, err := New(Config{Interfaces: ifaces, Pcap: filepath.Join(t.TempDir(), "x.pcapng"), PcapMaxBytes: 100}); err == nil {
		t.Error("a 100-byte bound: no error")
	}
}

// TestArena checks the capture's queue against a model: random frames
// queued and released in order never overlap a frame still queued, keep
// their bytes and order, and are refused only when the arena or the
// record list is really full.
func TestArena(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	c := &capture{buf: make([]byte, 1000), recs: make([]capRec, 8)}
	type live struct {
		off, n int
		data   []byte
	}
	var model []live
	for step := range 20000 {
		if r.IntN(2) == 0 && len(model) > 0 {
			// Release the oldest k, as the writer does.
			k := 1 + r.IntN(len(model))
			for i := range k {
				rec := c.recs[(c.rHead+i)%len(c.recs)]
				if rec.off != model[i].off || !bytes.Equal(c.buf[rec.off:rec.off+rec.n], model[i].data) {
					t.Fatalf("step %d: record %d changed", step, i)
				}
			}
			last := c.recs[(c.rHead+k-1)%len(c.recs)]
			c.rHead = (c.rHead + k) % len(c.recs)
			c.rN -= k
			c.bTail = last.off + last.n
			model = model[k:]
			continue
		}
		n := 1 + r.IntN(400)
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		used := 0
		for _, l := range model {
			used += l.n
		}
		ok := c.put(capRec{}, data)
		if !ok {
			// Refused: the records are all taken, or no contiguous
			// room exists after the newest frame.
			if len(model) < len(c.recs) && used+n <= len(c.buf)/3 {
				t.Fatalf("step %d: %d bytes refused with %d of %d used by %d frames", step, n, used, len(c.buf), len(model))
			}
			continue
		}
		rec := c.recs[(c.rHead+c.rN-1)%len(c.recs)]
		for _, l := range model {
			if rec.off < l.off+l.n && l.off < rec.off+rec.n {
				t.Fatalf("step %d: new frame [%d,%d) overlaps a queued one [%d,%d)", step, rec.off, rec.off+rec.n, l.off, l.off+l.n)
			}
		}
		model = append(model, live{off: rec.off, n: rec.n, data: data})
	}
}

// TestCaptureAllocs: handing a frame and what was sent for it to the
// capture allocates nothing on the worker's side (the trace off).
func TestCaptureAllocs(t *testing.T) {
	tap, _ := newTap(t, Config{Pcap: filepath.Join(t.TempDir(), "gvs.pcapng")})
	in := syn.bytes(t)
	o := &forward.Observation{Ifindex: 2, Time: at, In: in, InLen: len(in), Verdict: forward.Forwarded,
		Outs: []forward.Sent{{Ifindex: 3, Data: in}}}
	if n := testing.AllocsPerRun(1000, func() { tap.Observe(o) }); n != 0 {
		t.Errorf("%v allocs per captured frame", n)
	}
}
