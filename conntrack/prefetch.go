package conntrack

// prefetchChunk is how many keys Prefetch takes in one round.
const prefetchChunk = 64

// Prefetch brings the index buckets and first entries of keys into the
// cache, so that the lookups of a batch of packets that follow find them
// there. With a million connections a lookup is bound by two cache (and
// TLB) misses, the bucket and the entry, each waiting for the one before;
// here the misses of many keys are in flight together, each round's loads
// independent of one another, which the CPU overlaps. It changes nothing
// and takes no lock (the heads are read atomically; an entry found may be
// removed or reused meanwhile, which only makes the touch useless). A
// table small enough to stay in the cache gains nothing from it: callers
// skip it then (Len).
//
// It returns a value computed from the loads, so that no compiler may
// drop them; callers ignore it.
func (t *Table[D]) Prefetch(keys []Key) (touched uint32) {
	var heads [prefetchChunk]*entry[D]
	for len(keys) > 0 {
		n := min(len(keys), prefetchChunk)
		for i := range keys[:n] {
			h := keys[i].hash(t.seed)
			b := t.shards[h&t.mask].m.shared.Load()
			if b == nil {
				heads[i] = nil
				continue
			}
			heads[i] = (*b)[(h>>32)&uint64(len(*b)-1)].Load()
		}
		for _, e := range heads[:n] {
			if e != nil {
				touched += e.gen.Load() + uint32(e.nControl.Load()) // both lines
			}
		}
		keys = keys[n:]
	}
	return touched
}
