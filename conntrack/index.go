package conntrack

import "sync/atomic"

// index is a shard's hash index of its entries by key: a chained hash
// table like the kernel's ip_vs_conn_tab, one pointer per bucket and the
// entries linked through their next field, doubled when it holds more
// entries than buckets. Against the Go map it replaced it costs one
// pointer per entry instead of a map slot with its own copy of the key
// (BenchmarkMemoryPerEntry: 218 bytes per connection instead of 310; 212
// since entries come from table-wide slabs), at the same lookup speed: with
// a million connections a lookup is bound by the cache misses of reaching
// the bucket and the entry either way (BenchmarkLookup), which Prefetch
// lets a batch of lookups overlap.
//
// The shard's lock guards it, except that Prefetch reads a bucket's head
// without the lock, only to bring it into the cache: so the buckets are
// written atomically, and a grown array is published through shared.
// Growing allocates; nothing else does.
type index[D Dest] struct {
	buckets []atomic.Pointer[entry[D]]
	// shared is buckets for Prefetch (nil until the first entry).
	shared atomic.Pointer[[]atomic.Pointer[entry[D]]]
	n      int
	seed   uint64
}

// minBuckets is a shard index's first size.
const minBuckets = 8

// bucket returns the bucket of the key whose hash is h (Key.hash with
// the table's seed). The shard was chosen by the low bits of the same
// hash; the bucket takes the high ones.
func (x *index[D]) bucket(h uint64) *atomic.Pointer[entry[D]] {
	return &x.buckets[(h>>32)&uint64(len(x.buckets)-1)]
}

// get returns the entry of k, whose hash is h, or nil.
func (x *index[D]) get(k *Key, h uint64) *entry[D] {
	if x.n == 0 {
		return nil
	}
	for e := x.bucket(h).Load(); e != nil; e = e.next {
		if e.key == *k {
			return e
		}
	}
	return nil
}

// put adds e, whose key is not in the index yet and hashes to h, and
// returns the number of buckets the index grew by to make room (usually 0).
func (x *index[D]) put(e *entry[D], h uint64) (grown int) {
	if x.n >= len(x.buckets) {
		grown = x.grow()
	}
	b := x.bucket(h)
	e.next = b.Load()
	b.Store(e)
	x.n++
	return grown
}

// del removes e, if it is in the index.
func (x *index[D]) del(e *entry[D]) {
	if x.n == 0 {
		return
	}
	b := x.bucket(e.key.hash(x.seed))
	if b.Load() == e {
		b.Store(e.next)
		e.next = nil
		x.n--
		return
	}
	for p := b.Load(); p != nil; p = p.next {
		if p.next == e {
			p.next = e.next
			e.next = nil
			x.n--
			return
		}
	}
}

func (x *index[D]) grow() (grown int) {
	n := 2 * len(x.buckets)
	if n < minBuckets {
		n = minBuckets
	}
	old := x.buckets
	x.buckets = make([]atomic.Pointer[entry[D]], n)
	for i := range old {
		for e := old[i].Load(); e != nil; {
			next := e.next
			b := x.bucket(e.key.hash(x.seed))
			e.next = b.Load()
			b.Store(e)
			e = next
		}
	}
	shared := x.buckets
	x.shared.Store(&shared)
	return n - len(old)
}

// each calls fn for every entry. fn may remove the entry it is given (and
// no other).
func (x *index[D]) each(fn func(e *entry[D])) {
	if x.n == 0 {
		return
	}
	for i := range x.buckets {
		for e := x.buckets[i].Load(); e != nil; {
			next := e.next
			fn(e)
			e = next
		}
	}
}
