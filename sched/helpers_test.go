package sched

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-project/gvs/conntrack"
)

// conns drives destinations' connection counts and overload flags through
// a real connection table, the way the data path does: an inserted TCP
// connection with a SYN is active (SYN_RECV), one that then sees a FIN is
// inactive (TIME_WAIT).
type conns struct {
	tab *conntrack.Table[*Dest]
	n   int
}

func newConns() *conns { return &conns{tab: conntrack.New[*Dest](nil)} }

// connNow is the time the test connections are made at; they do not
// expire during a test.
const connNow = int64(time.Hour)

func (c *conns) add(t testing.TB, d *Dest, active bool) {
	t.Helper()
	c.n++
	k := conntrack.KeyV4(6, [4]byte{10, 99, byte(c.n >> 8), byte(c.n)}, uint16(c.n), [4]byte{10, 0, 1, 1}, 80)
	if _, _, err := c.tab.Insert(&k, d, true, 0x02, connNow); err != nil { // SYN
		t.Fatal(err)
	}
	if !active {
		c.tab.Lookup(&k, conntrack.Input, 0x01, connNow) // FIN
	}
}

// set gives d (which must have no connections yet) active and inactive
// connections.
func (c *conns) set(t testing.TB, d *Dest, active, inactive int) {
	t.Helper()
	if d.Active() != 0 || d.Inactive() != 0 {
		t.Fatalf("set on a destination with connections")
	}
	for range active {
		c.add(t, d, true)
	}
	for range inactive {
		c.add(t, d, false)
	}
	if d.Active() != int32(active) || d.Inactive() != int32(inactive) {
		t.Fatalf("counts %d/%d, want %d/%d", d.Active(), d.Inactive(), active, inactive)
	}
}

// overload sets or clears d's OVERLOAD flag with its upper threshold, the
// way ipvsadm -x does it: a threshold reached by the connections it has
// (one is added if it has none).
func (c *conns) overload(t testing.TB, d *Dest, on bool) {
	t.Helper()
	if !on {
		d.SetThresholds(0, 0)
	} else {
		if d.Active()+d.Inactive() == 0 {
			c.add(t, d, false)
		}
		d.SetThresholds(1, 0)
	}
	if d.Overloaded() != on {
		t.Fatalf("overloaded %v, want %v", d.Overloaded(), on)
	}
}

// key builds a connection key from text addresses (IPv4 or IPv6).
func key(t testing.TB, proto uint8, client string, cport uint16, virtual string, vport uint16) conntrack.Key {
	t.Helper()
	c, err := netip.ParseAddr(client)
	if err != nil {
		t.Fatal(err)
	}
	v, err := netip.ParseAddr(virtual)
	if err != nil {
		t.Fatal(err)
	}
	return conntrack.Key{Client: c.As16(), Virtual: v.As16(), ClientPort: cport, VirtualPort: vport, Protocol: proto}
}

// addDest adds a destination at the head of l as ip_vs_add_dest does and
// tells s.
func (l *list) add(s Scheduler, name string, ap netip.AddrPort, weight int32) *Dest {
	d := &Dest{}
	d.SetAddr(ap)
	d.SetWeight(weight)
	l.ds = append([]*Dest{d}, l.ds...)
	l.names = append([]string{name}, l.names...)
	s.Changed(l.ds, Change{Kind: Added, Index: 0})
	return d
}

func (l *list) index(name string) int {
	for i, n := range l.names {
		if n == name {
			return i
		}
	}
	return -1
}

func (l *list) dest(name string) *Dest { return l.ds[l.index(name)] }

// edit sets a destination's weight as ip_vs_edit_dest does and tells s.
func (l *list) edit(s Scheduler, name string, w int32) {
	i := l.index(name)
	l.ds[i].SetWeight(w)
	s.Changed(l.ds, Change{Kind: Updated, Index: i})
}

// name returns the name of the destination at index i, or "-".
func (l *list) name(i int) string {
	if i < 0 {
		return "-"
	}
	return l.names[i]
}

// scriptRand is a Rand that returns a fixed stream and counts the draws.
type scriptRand struct {
	vals []uint32
	n    int
}

// Uint32 returns the next value; past the end of the script it returns
// 2^31, which randBelow never rejects, so that a test fails rather than
// hangs.
func (r *scriptRand) Uint32() uint32 {
	r.n++
	if r.n > len(r.vals) {
		return 1 << 31
	}
	return r.vals[r.n-1]
}

// xorshift32 is Marsaglia's xorshift32, the seeded source that
// testdata/oracle.c feeds the kernel's twos with.
type xorshift32 struct {
	x uint32
	n int // draws so far
}

func (r *xorshift32) Uint32() uint32 {
	r.n++
	r.x ^= r.x << 13
	r.x ^= r.x >> 17
	r.x ^= r.x << 5
	return r.x
}
