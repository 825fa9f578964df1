package sched

import (
	"math/bits"

	"github.com/gvs-project/gvs/conntrack"
)

// mhPrimes are the table sizes ip_vs_mh.c offers (primes[]).
var mhPrimes = [...]int{251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071}

// CONFIG_IP_VS_MH_TAB_INDEX defaults to 12; IP_VS_MH_TAB_INDEX is that
// minus 8, selecting primes[4] = 4093 as IP_VS_MH_TAB_SIZE, and
// IP_VS_MH_TAB_BITS, the bits of weight kept in the turns, is 12/2 = 6.
const (
	mhConfigTabIndex = 12
	mhTabBits        = mhConfigTabIndex / 2
)

// mhTabSize is IP_VS_MH_TAB_SIZE, 4093 by default.
var mhTabSize = mhPrimes[mhConfigTabIndex-8]

// mhHash1 and mhHash2 are generate_hash_secret's fixed hsiphash keys: both
// words 2654435761 (0x9E3779B1, the 32-bit golden-ratio prime) for the
// offset and lookup hash, both 2654446892 for the skip hash.
var (
	mhHash1 = hsiphashKey{2654435761, 2654435761}
	mhHash2 = hsiphashKey{2654446892, 2654446892}
)

// mh is Maglev-hashing scheduling, as net/netfilter/ipvs/ip_vs_mh.c does
// it (the Maglev paper's section 3.4 with weights).
//
// Building the table (ip_vs_mh_permutate and ip_vs_mh_populate, on every
// add, delete and update): each destination, in list order, gets
//
//	offset = hsiphash(port + ntohl(addr_fold), hash1) % M
//	skip   = hsiphash(port + ntohl(addr_fold), hash2) % (M-1) + 1
//	turns  = ((last_weight / gcd) >> rshift) ?: (last_weight != 0)
//
// from its own address and port, where gcd is the gcd of the positive
// last weights and rshift = max(0, fls(max last weight / gcd) - 6). Then,
// round after round over the list, each destination with turns > 0 claims
// up to turns slots, each the next free slot of its permutation
// offset, offset+skip, offset+2*skip, ... (mod M), until all M slots are
// taken. The last weight (Dest.LastWeight) is the latest non-zero weight,
// so quiescing a server keeps its slots.
//
// Scheduling (ip_vs_mh_schedule) hashes the client address and, with
// mh-port (flag-2), the client port: slot = hsiphash(port +
// ntohl(addr_fold), hash1) % M, and takes the slot's destination if it has
// a positive weight and is not overloaded. Otherwise there is no server,
// unless mh-fallback (flag-1) is set: ip_vs_mh_get_fallback then tries
// slot hsiphash(offset' + port + addr, hash1) % M for offset' = (ihash +
// i) % M, i = 0, 1, ... M-1, and takes the first usable destination (an
// empty slot ends the search).
type mh struct {
	fallback, port bool
	// lookup holds indices into the destination list, or -1 (no
	// destination with a last weight). It is rebuilt on every change.
	lookup []int32
	// list is the destination list the lookup table was built for,
	// used only when the kernel would keep a table it cannot rebuild.
	list []*Dest

	// Scratch space for populate, kept to avoid garbage per change.
	setup []mhSetup
	used  []uint64
}

// mhSetup is struct ip_vs_mh_dest_setup.
type mhSetup struct {
	offset, skip, perm uint32
	turns              int32
}

func newMH(flags uint32, _ *Options) Scheduler {
	s := &mh{
		fallback: flags&flag1 != 0,
		port:     flags&flag2 != 0,
		lookup:   make([]int32, mhTabSize),
		used:     make([]uint64, (mhTabSize+63)/64),
	}
	for i := range s.lookup {
		s.lookup[i] = -1
	}
	return s
}

func (*mh) Name() string { return "mh" }

// mhHashkey is ip_vs_mh_hashkey: hsiphash of the u32 offset + port +
// ntohl(addr_fold).
func mhHashkey(addr uint32, port uint16, key *hsiphashKey, offset uint32) uint32 {
	return hsiphash32(offset+uint32(port)+addr, key)
}

// mhGCDWeight is ip_vs_mh_gcd_weight over the last weights (0 when none is
// positive).
func mhGCDWeight(ds []*Dest) int32 {
	var g int32
	for _, d := range ds {
		if w := d.LastWeight(); w > 0 {
			if g > 0 {
				g = gcd(w, g)
			} else {
				g = w
			}
		}
	}
	return g
}

// mhShiftWeight is ip_vs_mh_shift_weight: how far to shift weight/gcd
// right so that the largest fits in IP_VS_MH_TAB_BITS bits.
func mhShiftWeight(ds []*Dest, g int32) int {
	if g < 1 {
		return 0
	}
	var w int32
	for _, d := range ds {
		if lw := d.LastWeight(); lw > w {
			w = lw
		}
	}
	mw := w / g
	shift := bits.Len32(uint32(mw)) - mhTabBits // fls(mw) - IP_VS_MH_TAB_BITS
	return max(shift, 0)
}

// Changed is ip_vs_mh_dest_changed, the kernel's add_dest, del_dest and
// upd_dest hook.
func (s *mh) Changed(ds []*Dest, _ Change) {
	g := mhGCDWeight(ds)
	rshift := mhShiftWeight(ds, g)
	// ip_vs_mh_reassign refuses (-EINVAL) more destinations than slots
	// and keeps the old table; follow its pointers to the new indices.
	if len(ds) > len(s.lookup) {
		for i, j := range s.lookup {
			if j >= 0 {
				s.lookup[i] = int32(indexOf(ds, s.list[j]))
			}
		}
		s.list = append(s.list[:0], ds...)
		return
	}
	s.list = append(s.list[:0], ds...)
	if g < 1 {
		// No destination, or all last weights 0: ip_vs_mh_reset.
		for i := range s.lookup {
			s.lookup[i] = -1
		}
		return
	}
	s.permutate(ds, g, rshift)
	s.populate(ds)
}

func indexOf(ds []*Dest, d *Dest) int {
	for i, x := range ds {
		if x == d {
			return i
		}
	}
	return -1
}

// permutate is ip_vs_mh_permutate.
func (s *mh) permutate(ds []*Dest, g int32, rshift int) {
	s.setup = s.setup[:0]
	m := uint32(len(s.lookup))
	for _, d := range ds {
		addr := fold(&d.addr)
		var st mhSetup
		st.offset = mhHashkey(addr, d.port, &mhHash1, 0) % m
		st.skip = mhHashkey(addr, d.port, &mhHash2, 0)%(m-1) + 1
		st.perm = st.offset
		lw := d.LastWeight()
		st.turns = (lw / g) >> rshift
		if st.turns == 0 && lw != 0 {
			st.turns = 1 // the ?: (lw != 0)
		}
		s.setup = append(s.setup, st)
	}
}

// populate is ip_vs_mh_populate. Slots not reached keep their old
// destination, as in the kernel; with gcd >= 1 every slot is reached.
func (s *mh) populate(ds []*Dest) {
	m := len(s.lookup)
	clear(s.used)
	n, dtCount := 0, int32(0)
	for n < m {
		for p := 0; p < len(ds); {
			st := &s.setup[p]
			// "Ignore added server with zero weight."
			if st.turns < 1 {
				p++
				continue
			}
			c := st.perm
			for s.used[c/64]&(1<<(c%64)) != 0 {
				st.perm += st.skip
				if st.perm >= uint32(m) {
					st.perm -= uint32(m)
				}
				c = st.perm
			}
			s.used[c/64] |= 1 << (c % 64)
			s.lookup[c] = int32(p)
			n++
			if n == m {
				return
			}
			dtCount++
			if dtCount >= st.turns {
				dtCount = 0
				p++
			}
		}
	}
}

func (s *mh) Pick(ds []*Dest, k *conntrack.Key) int {
	if k == nil {
		k = &zeroKey
	}
	var port uint16
	if s.port {
		port = clientPort(k)
	}
	addr := fold(&k.Client)
	m := uint32(len(s.lookup))
	ihash := mhHashkey(addr, port, &mhHash1, 0) % m
	i := int(s.lookup[ihash])
	if i < 0 || i >= len(ds) {
		return -1
	}
	if ds[i].available() {
		return i
	}
	if !s.fallback {
		return -1
	}
	// ip_vs_mh_get_fallback: loop around the table starting from ihash.
	for offset := uint32(0); offset < m; offset++ {
		roffset := (offset + ihash) % m
		j := int(s.lookup[mhHashkey(addr, port, &mhHash1, roffset)%m])
		if j < 0 || j >= len(ds) {
			return -1
		}
		if ds[j].available() {
			return j
		}
	}
	return -1
}
