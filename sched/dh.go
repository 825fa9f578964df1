package sched

import "github.com/gvs-project/gvs/conntrack"

// dhTabBits is IP_VS_DH_TAB_BITS (CONFIG_IP_VS_DH_TAB_BITS, default 8):
// the dh table has 256 buckets.
const (
	dhTabBits = 8
	dhTabSize = 1 << dhTabBits
)

// dh is destination-hashing scheduling, as net/netfilter/ipvs/ip_vs_dh.c
// does it. ip_vs_dh_reassign fills the 256 buckets with the destinations
// in list order, one bucket each, round and round, ignoring weights.
// ip_vs_dh_schedule hashes the packet's destination address
// (conntrack.Key.Virtual) with hash_32(ntohl(addr_fold), 8) and takes the
// bucket's destination if it has a positive weight and is not overloaded;
// otherwise there is no server (dh has no fallback).
type dh struct {
	// table holds indices into the destination list, or -1 (empty
	// list). The kernel holds pointers; indices are rebuilt on every
	// change, as the kernel rebuilds the table on add and delete.
	table [dhTabSize]int32
}

func newDH() *dh {
	s := &dh{}
	s.reassign(nil)
	return s
}

func (*dh) Name() string { return "dh" }

// reassign is ip_vs_dh_reassign.
func (s *dh) reassign(ds []*Dest) {
	for i := range s.table {
		if len(ds) == 0 {
			s.table[i] = -1
		} else {
			s.table[i] = int32(i % len(ds))
		}
	}
}

// Changed rebuilds the table. The kernel's dh has add_dest and del_dest
// hooks but no upd_dest; since the table does not depend on weights,
// rebuilding on an update changes nothing.
func (s *dh) Changed(ds []*Dest, _ Change) { s.reassign(ds) }

func (s *dh) Pick(ds []*Dest, k *conntrack.Key) int {
	if k == nil {
		k = &zeroKey
	}
	i := int(s.table[hash32(fold(&k.Virtual), dhTabBits)])
	if i < 0 || i >= len(ds) || !ds[i].available() {
		return -1
	}
	return i
}
