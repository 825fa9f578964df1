package conntrack

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

type dest struct {
	Counts
	name string
}

const (
	fSYN = 0x02
	fACK = 0x10
	fFIN = 0x01
	fRST = 0x04
)

func key(cport uint16) Key {
	return KeyV4(6, [4]byte{192, 168, 150, 10}, cport, [4]byte{192, 168, 150, 100}, 80)
}

func counts(d *dest) string { return fmt.Sprintf("%d/%d", d.Active(), d.Inactive()) }

// TestDRConnectionLifecycle follows a DR connection (INPUT-ONLY table) as
// the director sees it: only the client's packets.
func TestDRConnectionLifecycle(t *testing.T) {
	tab := New[*dest](nil)
	d := &dest{name: "rs1"}
	k := key(40000)
	now := int64(time.Hour)

	steps := []struct {
		flags      uint8
		want       State
		wantCounts string // active/inactive after the packet
	}{
		{fSYN, StateSynRecv, "1/0"},            // client SYN creates the entry
		{fACK, StateEstablished, "1/0"},        // handshake ACK
		{fACK | 0x08, StateEstablished, "1/0"}, // data
		{fFIN | fACK, StateFinWait, "0/1"},     // client closes: FIN_WAIT, inactive
		{fACK, StateFinWait, "0/1"},            // last ACK
	}
	for i, st := range steps {
		var r Result
		var err error
		var ok bool
		if i == 0 {
			_, r, err = tab.Insert(&k, d, true, st.flags, now)
			if err != nil || !r.Created {
				t.Fatalf("Insert: created=%v err=%v", r.Created, err)
			}
		} else {
			var got *dest
			got, r, ok = tab.Lookup(&k, Input, st.flags, now)
			if !ok || got != d {
				t.Fatalf("step %d: Lookup found %v, ok=%v", i, got, ok)
			}
		}
		if r.New != st.want || counts(d) != st.wantCounts {
			t.Errorf("step %d (flags %#x): state %v counts %s, want %v %s", i, st.flags, r.New, counts(d), st.want, st.wantCounts)
		}
	}
	// FIN_WAIT times out after 120 s (tcp_timeouts[FIN_WAIT]).
	if _, _, ok := tab.Lookup(&k, Input, fACK, now+int64(119*time.Second)); !ok {
		t.Fatal("entry gone before its FIN_WAIT timeout")
	}
	if _, _, ok := tab.Lookup(&k, Input, fACK, now+int64(119*time.Second)+int64(120*time.Second)); ok {
		t.Fatal("entry alive after its FIN_WAIT timeout")
	}
	if counts(d) != "0/0" || tab.Len() != 0 {
		t.Fatalf("after expiry: counts %s, len %d; want 0/0, 0", counts(d), tab.Len())
	}
}

// TestStateTables checks transitions against ip_vs_proto_tcp.c tcp_states[]
// (Linux 6.x): literal expectations, one per interesting cell.
func TestStateTables(t *testing.T) {
	tests := []struct {
		tbl  table
		from State
		flag uint8
		want State
	}{
		// INPUT
		{tableInput, StateNone, fSYN, StateSynRecv},
		{tableInput, StateNone, fACK, StateEstablished},
		{tableInput, StateEstablished, fFIN, StateCloseWait},
		{tableInput, StateSynRecv, fRST, StateSynRecv},
		{tableInput, StateSynAck, fRST, StateSynRecv},
		{tableInput, StateLastAck, fACK, StateClose},
		{tableInput, StateSynSent, fACK, StateSynSent},
		// OUTPUT
		{tableOutput, StateNone, fSYN, StateSynSent},
		{tableOutput, StateSynRecv, fSYN | fACK, StateSynRecv}, // SYN row wins over ACK
		{tableOutput, StateEstablished, fFIN, StateFinWait},
		{tableOutput, StateCloseWait, fFIN, StateTimeWait},
		{tableOutput, StateTimeWait, fRST, StateTimeWait},
		{tableOutput, StateListen, fACK, StateEstablished},
		// INPUT-ONLY
		{tableInputOnly, StateEstablished, fFIN, StateFinWait},
		{tableInputOnly, StateSynAck, fRST, StateClose},
		{tableInputOnly, StateFinWait, fSYN, StateSynRecv},
		{tableInputOnly, StateEstablished, fRST | fSYN, StateClose}, // RST has priority
		// No SYN/FIN/ACK/RST at all: CLOSE.
		{tableInputOnly, StateEstablished, 0x08, StateClose},
	}
	for _, tt := range tests {
		if got := nextTCPState(tt.tbl, tt.from, tt.flag); got != tt.want {
			t.Errorf("table %d: %v + flags %#x = %v, want %v", tt.tbl, tt.from, tt.flag, got, tt.want)
		}
	}
}

func TestNATSeesReplies(t *testing.T) {
	tab := New[*dest](nil)
	d := &dest{}
	k := key(40001)
	now := int64(time.Hour)
	tab.Insert(&k, d, false, fSYN, now)               // INPUT: NONE -> SYN_RECV
	_, r, _ := tab.Lookup(&k, Output, fSYN|fACK, now) // OUTPUT SYN row: SYN_RECV stays
	if r.New != StateSynRecv {
		t.Fatalf("after SYN+ACK reply: %v, want SYN_RECV", r.New)
	}
	_, r, _ = tab.Lookup(&k, Input, fACK, now) // INPUT ACK: ESTABLISHED
	_, r, _ = tab.Lookup(&k, Input, fFIN|fACK, now)
	if r.New != StateCloseWait { // INPUT FIN from ESTABLISHED: CLOSE_WAIT (NAT table)
		t.Fatalf("client FIN in NAT: %v, want CLOSE_WAIT", r.New)
	}
}

func TestUDP(t *testing.T) {
	tab := New[*dest](nil)
	d := &dest{}
	k := KeyV4(17, [4]byte{10, 0, 0, 1}, 5353, [4]byte{10, 0, 0, 2}, 53)
	now := int64(time.Hour)
	_, r, _ := tab.Insert(&k, d, true, 0, now)
	if r.New != StateUDP || r.New.String() != "UDP" || counts(d) != "0/1" {
		t.Fatalf("UDP entry: state %v counts %s, want UDP 0/1", r.New, counts(d))
	}
	if _, _, ok := tab.Lookup(&k, Input, 0, now+int64(299*time.Second)); !ok {
		t.Fatal("UDP entry expired before 300 s")
	}
	var n int
	tab.Walk(now+int64(299*time.Second), func(e Entry[*dest]) bool { n++; return true })
	if n != 1 {
		t.Fatalf("Walk saw %d entries, want 1", n)
	}
	if got := tab.Reap(now+int64(299*time.Second)+int64(301*time.Second), tab.Size()); got != 1 || counts(d) != "0/0" {
		t.Fatalf("Reap removed %d, counts %s; want 1, 0/0", got, counts(d))
	}
}

func TestThresholds(t *testing.T) {
	tab := New[*dest](nil)
	d := &dest{}
	d.SetThresholds(2, 0) // -x 2, no -y: cleared below 3/4 of 2
	now := int64(time.Hour)
	k1, k2 := key(1), key(2)
	tab.Insert(&k1, d, true, fSYN, now)
	if d.Overloaded() {
		t.Fatal("overloaded at 1 of 2")
	}
	tab.Insert(&k2, d, true, fSYN, now)
	if !d.Overloaded() {
		t.Fatal("not overloaded at 2 of 2")
	}
	// One connection ends: 1*4 < 2*3, so the flag clears. (A RST in
	// SYN_RECV keeps SYN_RECV in the kernel's table: establish first.)
	tab.Lookup(&k1, Input, fACK, now)
	tab.Lookup(&k1, Input, fRST, now)
	tab.Reap(now+int64(11*time.Second), tab.Size())
	if d.Overloaded() {
		t.Fatal("still overloaded at 1 of 2 after expiry")
	}
}

// TestBoundEvictsOldestHalfOpen checks gvs's own rule at the bound: a new
// connection evicts the oldest SYN_RECV connection, then the oldest SYNACK
// one, and is refused only when every entry is past the handshake.
func TestBoundEvictsOldestHalfOpen(t *testing.T) {
	tab := New[*dest](&Config{MaxEntries: 4, Shards: 4})
	d := &dest{}
	now := int64(time.Hour)
	syn := func(port uint16) Key {
		k := key(port)
		if _, _, err := tab.Insert(&k, d, true, fSYN, now); err != nil {
			t.Fatalf("insert %d: %v", port, err)
		}
		return k
	}
	alive := func(ports ...uint16) string {
		var got []uint16
		tab.Walk(now, func(e Entry[*dest]) bool { got = append(got, e.Key.ClientPort); return true })
		present := map[uint16]bool{}
		for _, p := range got {
			present[p] = true
		}
		s := ""
		for _, p := range ports {
			s += fmt.Sprintf("%d:%v ", p, present[p])
		}
		return s
	}
	a := syn(1)
	_ = a
	syn(2)
	c := syn(3)
	tab.Lookup(&c, Input, fACK, now) // 3 is ESTABLISHED
	// A SYNACK entry (secure_tcp's state), older than everything after it.
	sa := key(4)
	if err := tab.Import(Entry[*dest]{Key: sa, Dest: d, State: StateSynAck, Expires: now + int64(time.Minute), NoOutput: true}); err != nil {
		t.Fatal(err)
	}
	syn(5) // full: evicts 1, the oldest SYN_RECV
	if got, want := alive(1, 2, 3, 4, 5), "1:false 2:true 3:true 4:true 5:true "; got != want {
		t.Fatalf("after 5: %s, want %s", got, want)
	}
	syn(6) // evicts 2
	syn(7) // evicts 5 (SYN_RECV before the older SYNACK)
	if got, want := alive(2, 3, 4, 5, 6, 7), "2:false 3:true 4:true 5:false 6:true 7:true "; got != want {
		t.Fatalf("after 7: %s, want %s", got, want)
	}
	// Establish 6 and 7: only the SYNACK entry is half-open now.
	for _, p := range []uint16{6, 7} {
		k := key(p)
		tab.Lookup(&k, Input, fACK, now)
	}
	syn(8) // evicts 4, the SYNACK one
	if got, want := alive(3, 4, 6, 7, 8), "3:true 4:false 6:true 7:true 8:true "; got != want {
		t.Fatalf("after 8: %s, want %s", got, want)
	}
	k8 := key(8)
	tab.Lookup(&k8, Input, fACK, now)
	k9 := key(9)
	if _, _, err := tab.Insert(&k9, d, true, fSYN, now); err != ErrFull {
		t.Fatalf("insert into a table of established connections: %v, want ErrFull", err)
	}
	st := tab.Stats()
	if st.Entries != 4 || st.Evicted != 4 || st.Full != 1 || st.HalfOpen != 0 {
		t.Fatalf("stats %+v", st)
	}
	if d.Active() != 4 || d.Inactive() != 0 {
		t.Fatalf("counts %d/%d after evictions, want 4/0", d.Active(), d.Inactive())
	}
}

// TestBoundHoldsUnderConcurrency floods a small table from several
// goroutines and checks it never holds more than its bound.
func TestBoundHoldsUnderConcurrency(t *testing.T) {
	const max = 64
	tab := New[*dest](&Config{MaxEntries: max, Shards: 16})
	d := &dest{}
	now := int64(time.Hour)
	var wg sync.WaitGroup
	var over sync.Once
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				k := key(uint16(i))
				k.Client[14] = byte(g)
				tab.Insert(&k, d, true, fSYN, now)
				if i%3 == 0 {
					tab.Lookup(&k, Input, fACK, now)
				}
				if n := tab.Len(); n > max {
					over.Do(func() { t.Errorf("table holds %d entries, bound %d", n, max) })
				}
			}
		}()
	}
	wg.Wait()
	var entries, active, inactive int32
	tab.Walk(now, func(e Entry[*dest]) bool {
		entries++
		if e.State.Active() {
			active++
		} else {
			inactive++
		}
		return true
	})
	if int(entries) != tab.Len() || d.Active() != active || d.Inactive() != inactive {
		t.Fatalf("walk %d entries (%d/%d), Len %d, counts %d/%d", entries, active, inactive, tab.Len(), d.Active(), d.Inactive())
	}
	if st := tab.Stats(); st.Evicted == 0 || st.Full == 0 {
		t.Fatalf("stats %+v: want evictions and refusals", st)
	}
}

// TestTemplates follows a persistence template as ip_vs_sched_persist and
// ip_vs_conn_expire keep it.
func TestTemplates(t *testing.T) {
	tab := New[*dest](nil)
	d := &dest{}
	now := int64(time.Hour)
	tk := KeyV4(6, [4]byte{192, 168, 150, 10}, 0, [4]byte{192, 168, 150, 100}, 80)
	const persist = 360 * time.Second
	if _, _, ok := tab.Template(&tk, persist, now); ok {
		t.Fatal("template before any")
	}
	ref, err := tab.InsertTemplate(&tk, d, persist, now)
	if err != nil {
		t.Fatal(err)
	}
	if d.Persistent() != 1 || d.Active()+d.Inactive() != 0 {
		t.Fatalf("after template: persist %d conns %d", d.Persistent(), d.Active()+d.Inactive())
	}
	k := key(40000)
	tab.InsertControlled(&k, d, true, ref, fSYN, now)
	tab.Lookup(&k, Input, fACK, now)
	// The template's timer runs out while it controls a live connection:
	// it stays (and is re-armed for a minute), as expire_later does.
	later := now + int64(persist) + int64(time.Second)
	tab.Reap(later, tab.Size())
	if got, _, ok := tab.Template(&tk, persist, later); !ok || got != d {
		t.Fatal("template expired while it controls a connection")
	}
	// The connection ends; the template expires after its own timeout.
	tab.Lookup(&k, Input, fRST, later)
	end := later + int64(persist) + int64(time.Minute)
	tab.Reap(end, tab.Size())
	// (If the template's shard was swept before the connection's, it
	// was re-armed for another minute, as the kernel's timer would be.)
	end += int64(61 * time.Second)
	tab.Reap(end, tab.Size())
	if _, _, ok := tab.Template(&tk, persist, end); ok || d.Persistent() != 0 {
		t.Fatalf("template alive after its timeout with no connection (persist %d)", d.Persistent())
	}
	// Listing shows templates.
	tab.InsertTemplate(&tk, d, persist, end)
	var templates int
	tab.Walk(end, func(e Entry[*dest]) bool {
		if e.Template && e.State == StateNone && e.Key.ClientPort == 0 {
			templates++
		}
		return true
	})
	if templates != 1 {
		t.Fatalf("walk saw %d templates", templates)
	}
	// Replacing a template whose connections still run: they keep going,
	// the counts stay exact.
	k2 := key(40001)
	ref2, _, _ := func() (TemplateRef[*dest], int, int) { _, r, _ := tab.Template(&tk, persist, end); return r, 0, 0 }()
	tab.InsertControlled(&k2, d, true, ref2, fSYN, end)
	d2 := &dest{}
	tab.InsertTemplate(&tk, d2, persist, end)
	if d.Persistent() != 0 || d2.Persistent() != 1 {
		t.Fatalf("after rebinding: persist %d/%d", d.Persistent(), d2.Persistent())
	}
	if got, _, ok := tab.Lookup(&k2, Input, fACK, end); !ok || got != d {
		t.Fatal("the connection of the replaced template lost its destination")
	}
	tab.Clear()
	if d.Active()+d.Inactive()+d.Persistent()+d2.Persistent() != 0 || tab.Len() != 0 {
		t.Fatal("Clear left counts behind")
	}
}

func TestImportWalkRoundTrip(t *testing.T) {
	a, b := New[*dest](nil), New[*dest](nil)
	d := &dest{}
	now := int64(time.Hour)
	for i := range 100 {
		k := key(uint16(i))
		a.Insert(&k, d, true, fSYN, now)
		if i%2 == 0 {
			a.Lookup(&k, Input, fACK, now)
		}
	}
	a.Walk(now, func(e Entry[*dest]) bool {
		if err := b.Import(e); err != nil {
			t.Fatal(err)
		}
		return true
	})
	d2 := &dest{}
	_ = d2
	if b.Len() != 100 || d.Active() != 200 { // both tables account on the same dest
		t.Fatalf("imported %d entries, dest active %d; want 100, 200", b.Len(), d.Active())
	}
}

// TestConcurrentCountsExact hammers one table from several goroutines and
// checks that the per-destination counts equal what the entries say.
func TestConcurrentCountsExact(t *testing.T) {
	tab := New[*dest](&Config{Shards: 64})
	ds := []*dest{{name: "a"}, {name: "b"}, {name: "c"}}
	now := int64(time.Hour)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				k := key(uint16(i))
				k.Client[15] = byte(g)
				d := ds[i%len(ds)]
				if _, _, ok := tab.Lookup(&k, Input, fACK, now); !ok {
					tab.Insert(&k, d, true, fSYN, now)
				}
				switch i % 7 {
				case 0:
					tab.Lookup(&k, Input, fFIN, now)
				case 1:
					tab.Lookup(&k, Input, fRST, now)
				}
				if i%1000 == 0 {
					tab.Reap(now+int64(20*time.Second), 8) // some CLOSE entries expire
				}
			}
		}()
	}
	wg.Wait()
	want := map[*dest][2]int32{}
	tab.Walk(now, func(e Entry[*dest]) bool {
		c := want[e.Dest]
		if e.State.Active() {
			c[0]++
		} else {
			c[1]++
		}
		want[e.Dest] = c
		return true
	})
	for _, d := range ds {
		if got := [2]int32{d.Active(), d.Inactive()}; got != want[d] {
			t.Errorf("dest %s: counts %v, entries say %v", d.name, got, want[d])
		}
	}
}

func TestLookupInsertAllocs(t *testing.T) {
	tab := New[*dest](nil)
	d := &dest{}
	now := int64(time.Hour)
	k := key(1)
	tab.Insert(&k, d, true, fSYN, now)
	if n := testing.AllocsPerRun(1000, func() {
		tab.Lookup(&k, Input, fACK, now)
	}); n != 0 {
		t.Errorf("Lookup: %v allocs, want 0", n)
	}
	// Insert and expire repeatedly: entries are recycled.
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		k := key(uint16(i % 8))
		i++
		tab.Insert(&k, d, true, fRST, now) // RST: CLOSE, 10 s
		tab.Lookup(&k, Input, fRST, now+int64(11*time.Second))
	}); n != 0 {
		t.Errorf("Insert/expire: %v allocs, want 0", n)
	}
}

func BenchmarkLookup(b *testing.B) {
	for _, size := range []int{1000, 1 << 20} {
		b.Run(fmt.Sprintf("entries=%d", size), func(b *testing.B) {
			tab := New[*dest](&Config{MaxEntries: 2 * size})
			d := &dest{}
			now := int64(time.Hour)
			keys := make([]Key, size)
			for i := range keys {
				keys[i] = KeyV4(6, [4]byte{198, 18, byte(i >> 16), byte(i >> 8)}, uint16(i), [4]byte{198, 19, 0, 1}, 80)
				tab.Insert(&keys[i], d, true, fSYN, now)
			}
			// In random order, as packets of many flows come: in the
			// order of insertion, neighbouring entries would share
			// cache lines and pages.
			order := rand.New(rand.NewPCG(1, 2)).Perm(size)
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				tab.Lookup(&keys[order[i]], Input, fACK, now)
				i++
				if i == size {
					i = 0
				}
			}
		})
	}
}

// BenchmarkReapStep measures the expiry sweep over a million live
// connections (none expired), per entry visited: ReapDue visits every
// entry once per SweepPeriod, so this times the table's size over
// SweepPeriod is the CPU share the sweep takes.
func BenchmarkReapStep(b *testing.B) {
	const size = 1 << 20
	tab := New[*dest](&Config{MaxEntries: 2 * size})
	d := &dest{}
	now := int64(time.Hour)
	order := rand.New(rand.NewPCG(1, 2)).Perm(size)
	for _, i := range order { // inserted in random order: entries scattered as a live table's are
		k := KeyV4(17, [4]byte{198, 18, byte(i >> 16), byte(i >> 8)}, uint16(i), [4]byte{198, 19, 0, 1}, 53)
		tab.Insert(&k, d, true, 0, now)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		tab.reapMu.Lock()
		if tab.reapStep(now) != 0 {
			b.Fatal("the sweep removed a live entry")
		}
		tab.reapMu.Unlock()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*reapStepBuckets), "ns/bucket")
}

func BenchmarkInsertExpire(b *testing.B) {
	tab := New[*dest](nil)
	d := &dest{}
	now := int64(time.Hour)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := KeyV4(6, [4]byte{198, 18, byte(i >> 16), byte(i >> 8)}, uint16(i), [4]byte{198, 19, 0, 1}, 80)
		tab.Insert(&k, d, true, fSYN, now)
		i++
		if i%4096 == 0 {
			now += int64(2 * time.Minute)
			tab.Reap(now, tab.Size())
		}
	}
}

func BenchmarkLookupParallel(b *testing.B) {
	const size = 1 << 20
	tab := New[*dest](&Config{MaxEntries: 2 * size})
	d := &dest{}
	now := int64(time.Hour)
	keys := make([]Key, size)
	for i := range keys {
		keys[i] = KeyV4(6, [4]byte{198, 18, byte(i >> 16), byte(i >> 8)}, uint16(i), [4]byte{198, 19, 0, 1}, 80)
		tab.Insert(&keys[i], d, true, fSYN, now)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var seed atomic.Uint32
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(1)) * 7919
		for pb.Next() {
			i = (i + 1) & (size - 1)
			tab.Lookup(&keys[i], Input, fACK, now)
		}
	})
}

// BenchmarkMemoryPerEntry reports the heap a table of 1 M connections takes
// per entry.
func BenchmarkMemoryPerEntry(b *testing.B) {
	const size = 1 << 20
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		tab := New[*dest](&Config{MaxEntries: 2 * size})
		d := &dest{}
		now := int64(time.Hour)
		for i := range size {
			k := KeyV4(6, [4]byte{198, 18, byte(i >> 16), byte(i >> 8)}, uint16(i), [4]byte{198, 19, 0, 1}, 80)
			tab.Insert(&k, d, true, fSYN, now)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/size, "bytes/entry")
		runtime.KeepAlive(tab)
	}
}

// TestReplyIndex: a NAT connection is found by its real server's replies,
// which drive the OUTPUT state table; the index goes when the connection
// does, but not when a new connection took the same keys.
func TestReplyIndex(t *testing.T) {
	var removed []Aux
	tab := New[*dest](&Config{OnRemove: func(k *Key, aux *Aux) { removed = append(removed, *aux) }})
	d := &dest{}
	now := int64(time.Hour)
	k := key(40000)
	// Replies: 192.168.10.12:80 -> 192.168.150.10:40000.
	rk := KeyV4(6, [4]byte{192, 168, 10, 12}, 80, [4]byte{192, 168, 150, 10}, 40000)
	aux := Aux{PeerMAC: [6]byte{2, 0, 0, 0, 0, 0x0a}, PeerIfindex: 3}
	c, err := tab.InsertWith(&k, d, &InsertOpts[*dest]{Reply: &rk, Aux: aux}, fSYN, now)
	if err != nil || !c.Created || c.Aux != aux || c.New != StateSynRecv {
		t.Fatalf("insert: %+v %v", c, err)
	}
	r, ok := tab.GetReply(&rk, fSYN|fACK, now)
	if !ok || r.Dest != d || r.Key != k || r.Aux != aux || r.New != StateSynRecv {
		t.Fatalf("reply SYN+ACK: %+v ok=%v", r, ok)
	}
	tab.Get(&k, Input, fACK, now) // ESTABLISHED
	r, _ = tab.GetReply(&rk, fFIN|fACK, now)
	if r.New != StateFinWait {
		t.Fatalf("server FIN: %v, want FIN_WAIT (OUTPUT table)", r.New)
	}
	if _, ok := tab.GetReply(&k, fACK, now); ok {
		t.Fatal("GetReply found the connection by its own key")
	}
	// Expiry removes the connection, calls OnRemove, and Reap drops the
	// index entry.
	later := now + int64(3*time.Minute)
	tab.Reap(later, tab.Size())
	tab.Reap(later, 1) // the sweep that follows drains the stale index
	if _, ok := tab.GetReply(&rk, fACK, later); ok || tab.ReplyIndexLen() != 0 || len(removed) != 1 || removed[0] != aux {
		t.Fatalf("after expiry: index %d, removed %v", tab.ReplyIndexLen(), removed)
	}
	// A connection removed and made again at once with the same keys
	// keeps its index entry when the stale one is dropped.
	tab.InsertWith(&k, d, &InsertOpts[*dest]{Reply: &rk}, fSYN, later)
	tab.Remove(&k)
	tab.InsertWith(&k, d, &InsertOpts[*dest]{Reply: &rk}, fSYN, later)
	tab.Reap(later, 1)
	if _, ok := tab.GetReply(&rk, fSYN|fACK, later); !ok {
		t.Fatal("the new connection lost its reply index to the old one's cleanup")
	}
	// Walk and Import carry the reply key.
	other := New[*dest](nil)
	tab.Walk(later, func(e Entry[*dest]) bool { other.Import(e); return true })
	if _, ok := other.GetReply(&rk, fACK, later); !ok {
		t.Fatal("imported entry not found by its reply key")
	}
}

// TestReapDuePace checks that ReapDue takes its steps at the pace of one
// sweep of the table per SweepPeriod, never more than max at a time, that
// a call with nothing due does nothing, and that a sweep's worth of steps
// removes every expired entry.
func TestReapDuePace(t *testing.T) {
	tab := New[*dest](&Config{Shards: 16})
	d := &dest{name: "rs1"}
	now := int64(time.Hour)
	for p := range 256 {
		k := key(uint16(40000 + p))
		tab.Insert(&k, d, true, fSYN, now) // SYN_RECV: 60 s
	}
	buckets := tab.buckets.Load()
	sweep := (buckets + reapStepBuckets - 1) / reapStepBuckets // steps
	if sweep < 8 {
		t.Fatalf("%d buckets, %d steps a sweep: the test wants at least 8", buckets, sweep)
	}
	per := int64(SweepPeriod) / sweep
	later := now + int64(2*time.Minute) // every entry expired

	steps := func() uint64 { tab.reapMu.Lock(); defer tab.reapMu.Unlock(); return tab.reapSteps }
	for i, st := range []struct {
		at   int64
		max  int
		want uint64 // steps taken by this call
	}{
		{later, 1, 1},                        // the first call starts the pace
		{later, 1, 0},                        // nothing due yet
		{later + per - 1, 8, 0},              // still not
		{later + per, 8, 1},                  // the second step is due
		{later + 4*per, 8, 3},                // three more
		{later + 11*per, 4, 4},               // seven due, max 4
		{later + 11*per, 16, 3},              // the rest of the backlog
		{later + 11*per + 1, 16, 0},          // caught up
		{later + 11*per + 4*sweep*per, 2, 2}, // idle for over a sweep: max steps, then
		{later + 11*per + 4*sweep*per, 2, 0}, // the pace restarts from now
		{later + 11*per + 8*sweep*per, int(sweep), uint64(sweep)}, // a whole sweep
	} {
		before := steps()
		tab.ReapDue(st.at, st.max)
		if got := steps() - before; got != st.want {
			t.Fatalf("step %d: %d steps, want %d", i, got, st.want)
		}
	}
	if n := tab.Len(); n != 0 {
		t.Errorf("%d entries left after more than a sweep's steps, want 0", n)
	}
}

// TestEntryLayout checks the cache-line layout entry's comment promises:
// what a lookup reads in the first two lines, three lines in all, and
// chunks of entries that start on a line.
func TestEntryLayout(t *testing.T) {
	var e entry[*dest]
	if got := unsafe.Sizeof(e); got != entrySize {
		t.Errorf("entry is %d bytes, want %d", got, entrySize)
	}
	lines := [...]string{"first", "second"}
	for _, f := range []struct {
		name      string
		off, size uintptr
		line      uintptr // 0: the first cache line, 1: the second
	}{
		{"key", unsafe.Offsetof(e.key), unsafe.Sizeof(e.key), 0},
		{"state", unsafe.Offsetof(e.state), 1, 0},
		{"flags", unsafe.Offsetof(e.flags), 1, 0},
		{"gen", unsafe.Offsetof(e.gen), 4, 0},
		{"expires", unsafe.Offsetof(e.expires), 8, 0},
		{"dest", unsafe.Offsetof(e.dest), 8, 0},
		{"aux", unsafe.Offsetof(e.aux), unsafe.Sizeof(e.aux), 1},
		{"nControl", unsafe.Offsetof(e.nControl), 4, 1},
	} {
		if f.off < 64*f.line || f.off+f.size > 64*(f.line+1) {
			t.Errorf("entry.%s at [%d, %d): not in the %s cache line", f.name, f.off, f.off+f.size, lines[f.line])
		}
	}
	tab := New[*dest](nil)
	s := &tab.shards[0]
	for range 2 * slabEntries {
		e := tab.alloc(s)
		if a := uintptr(unsafe.Pointer(e)); a%64 != 0 {
			t.Errorf("entry at %#x: not on a cache line", a)
		}
	}
}
