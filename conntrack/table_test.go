package conntrack

import (
	"fmt"
	"sync"
	"testing"
	"time"
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

func TestFull(t *testing.T) {
	tab := New[*dest](&Config{MaxEntries: 2, Shards: 1})
	d := &dest{}
	now := int64(time.Hour)
	for i := range 2 {
		k := key(uint16(i))
		if _, _, err := tab.Insert(&k, d, true, fSYN, now); err != nil {
			t.Fatal(err)
		}
	}
	k := key(99)
	if _, _, err := tab.Insert(&k, d, true, fSYN, now); err != ErrFull {
		t.Fatalf("third insert: %v, want ErrFull", err)
	}
	if s := tab.Stats(); s.Full != 1 || s.Entries != 2 {
		t.Fatalf("stats %+v", s)
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
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				tab.Lookup(&keys[i], Input, fACK, now)
				i++
				if i == size {
					i = 0
				}
			}
		})
	}
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
