package sched

import "github.com/gvs-project/gvs/conntrack"

// shTabBits is IP_VS_SH_TAB_BITS (CONFIG_IP_VS_SH_TAB_BITS, default 8):
// the sh table has 256 buckets.
const (
	shTabBits = 8
	shTabSize = 1 << shTabBits
	shTabMask = shTabSize - 1
)

// sh is source-hashing scheduling, as net/netfilter/ipvs/ip_vs_sh.c does
// it. ip_vs_sh_reassign fills the 256 buckets with the destinations in
// list order, each taking as many consecutive buckets as its weight (at
// least one: a weight-0 destination still gets a bucket), round and round
// until the table is full; it runs on every add, delete and update.
// ip_vs_sh_schedule hashes the client address (conntrack.Key.Client) and,
// with sh-port (flag-2), the client port:
//
//	bucket = (offset + hash_32(port + ntohl(addr_fold), 8)) & 255
//
// with offset 0, and takes the bucket's destination if it has a positive
// weight and is not overloaded. Otherwise there is no server, unless
// sh-fallback (flag-1) is set: then ip_vs_sh_get_fallback tries offsets 0,
// 1, ... 255 from the original bucket h, looking at bucket
// (h + offset + h) & 255 each time, and takes the first usable
// destination (an empty bucket ends the search).
type sh struct {
	fallback, port bool
	// table holds indices into the destination list, or -1 (empty
	// list); rebuilt on every change as the kernel rebuilds it.
	table [shTabSize]int32
}

func newSH(flags uint32, _ *Options) Scheduler {
	s := &sh{fallback: flags&flag1 != 0, port: flags&flag2 != 0}
	s.reassign(nil)
	return s
}

func (*sh) Name() string { return "sh" }

// reassign is ip_vs_sh_reassign.
func (s *sh) reassign(ds []*Dest) {
	p, count := 0, int32(0)
	for i := range s.table {
		if len(ds) == 0 {
			s.table[i] = -1
			continue
		}
		s.table[i] = int32(p)
		// "Don't move to next dest until filling weight."
		count++
		if count >= ds[p].Weight() {
			p = (p + 1) % len(ds)
			count = 0
		}
	}
}

func (s *sh) Changed(ds []*Dest, _ Change) { s.reassign(ds) }

// hashkey is ip_vs_sh_hashkey.
func shHashkey(addr uint32, port uint16, offset uint32) uint32 {
	return (offset + hash32(uint32(port)+addr, shTabBits)) & shTabMask
}

func (s *sh) Pick(ds []*Dest, k *conntrack.Key) int {
	if k == nil {
		k = &zeroKey
	}
	var port uint16
	if s.port {
		port = clientPort(k)
	}
	addr := fold(&k.Client)
	ihash := shHashkey(addr, port, 0)
	i := int(s.table[ihash])
	if i < 0 || i >= len(ds) {
		return -1
	}
	if ds[i].available() {
		return i
	}
	if !s.fallback {
		return -1
	}
	// ip_vs_sh_get_fallback: loop around the table starting from ihash.
	for offset := uint32(0); offset < shTabSize; offset++ {
		roffset := (offset + ihash) % shTabSize
		j := int(s.table[shHashkey(addr, port, roffset)])
		if j < 0 || j >= len(ds) {
			return -1
		}
		if ds[j].available() {
			return j
		}
	}
	return -1
}
