package sched

import "github.com/gvs-project/gvs/conntrack"

// twos is power-of-two-choices scheduling, as
// net/netfilter/ipvs/ip_vs_twos.c (ip_vs_twos_schedule) does it. Over the
// destinations that are not overloaded and have a positive weight, with
// total weight T, it draws two random numbers r1 and r2 in [0, T] (with
// get_random_u32_below(T + 1)), walks the list subtracting each weight
// from both, and takes as first and second choice the destinations where
// each first drops to 0 or below, so each destination is chosen with
// probability about weight/T. It returns the second choice only if its
// overhead per weight is strictly lower than the first's
// (w2*oh1 > w1*oh2), otherwise the first.
//
// The random numbers come from Options.Rand, drawn exactly as
// __get_random_u32_below draws from get_random_u32 (Lemire's multiply and
// reject), r1 first: fed the same 32-bit stream, twos picks what the
// kernel picks.
type twos struct {
	rand Rand
}

func (*twos) Name() string { return "twos" }

// randBelow is __get_random_u32_below of drivers/char/random.c: a uniform
// number in [0, ceil) from the high half of ceil*rand, rejecting the draws
// whose low half falls below 2^32 mod ceil.
func randBelow(r Rand, ceil uint32) uint32 {
	x := r.Uint32()
	if ceil == 0 {
		return x
	}
	mult := uint64(ceil) * uint64(x)
	if uint32(mult) < ceil {
		bound := -ceil % ceil // 2^32 mod ceil, in 32 bits
		for uint32(mult) < bound {
			mult = uint64(ceil) * uint64(r.Uint32())
		}
	}
	return uint32(mult >> 32)
}

func (s *twos) Pick(ds []*Dest, _ *conntrack.Key) int {
	// The kernel's arithmetic here is in 32-bit int; weights are at most
	// 65535, so the total only overflows past 32768 servers.
	var total int32
	choice1 := -1
	for i, d := range ds {
		if !d.Overloaded() {
			if w := d.Weight(); w > 0 {
				total += w
				choice1 = i
			}
		}
	}
	if choice1 < 0 {
		return -1
	}
	// "Add 1 to total_weight so that the random weights are inclusive
	// from 0 to total_weight."
	total++
	r1 := int32(randBelow(s.rand, uint32(total)))
	r2 := int32(randBelow(s.rand, uint32(total)))

	choice2 := -1
	w1, w2 := int32(-1), int32(-1)
	var oh1, oh2 int32
	for i, d := range ds {
		if d.Overloaded() {
			continue
		}
		w := d.Weight()
		if w <= 0 {
			continue
		}
		r1 -= w
		r2 -= w
		if r1 <= 0 && w1 == -1 {
			choice1, w1, oh1 = i, w, connOverhead(d)
		}
		if r2 <= 0 && w2 == -1 {
			choice2, w2, oh2 = i, w, connOverhead(d)
		}
		if w1 != -1 && w2 != -1 {
			break
		}
	}
	// int products, as in the kernel (they wrap only for overheads
	// beyond 32767 active connections at weight 65535).
	if choice2 >= 0 && w2*oh1 > w1*oh2 {
		choice1 = choice2
	}
	return choice1
}

func (*twos) Changed([]*Dest, Change) {}
