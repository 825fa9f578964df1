package sched

import (
	"time"

	"github.com/gvs-project/gvs/conntrack"
)

// This file holds what lblc and lblcr share: the table geometry, the
// garbage collection timer of ip_vs_lblc_check_expire and
// ip_vs_lblcr_check_expire run lazily, and their weighted least-connection
// pick and "overloaded" rule.

// Table geometry and timing of ip_vs_lblc.c and ip_vs_lblcr.c (they are
// the same in both files).
const (
	// lblcTabBits is CONFIG_IP_VS_LBLC_TAB_BITS and
	// CONFIG_IP_VS_LBLCR_TAB_BITS (default 10): 1024 hash buckets.
	lblcTabBits = 10
	lblcTabSize = 1 << lblcTabBits
	lblcTabMask = lblcTabSize - 1
	// lblcMaxSize is tbl->max_size, IP_VS_LBLC_TAB_SIZE*16: above this
	// many entries the timer collects entries unused for entryTimeout.
	lblcMaxSize = lblcTabSize * 16
	// checkExpireInterval is CHECK_EXPIRE_INTERVAL (60*HZ): the timer's
	// period, first due one interval after the scheduler is bound.
	checkExpireInterval = int64(60 * time.Second)
	// entryTimeout is ENTRY_TIMEOUT (6*60*HZ): how long an entry must
	// have been unused before the over-size collection may drop it.
	entryTimeout = int64(6 * time.Minute)
	// countForFullExpiration is COUNT_FOR_FULL_EXPIRATION: every 30th
	// tick without an over-size collection is a full expiry check
	// (entries unused for the expiration, 24h by default). Ticks that
	// collect do not count.
	countForFullExpiration = 30
)

// lblcBucket is ip_vs_lblc_hashkey and ip_vs_lblcr_hashkey:
// hash_32(ntohl(addr_fold), 10).
func lblcBucket(a *[16]byte) int { return int(hash32(fold(a), lblcTabBits)) }

// expirer is the table side of the timer: the number of entries (the
// kernel's tbl->entries) and the removal of one bucket's stale entries.
type expirer interface {
	entryCount() int
	// expireBucket removes the entries of bucket j whose last use is at
	// least age before now, and returns how many it removed.
	expireBucket(j int, now, age int64) int
}

// gcTimer runs the kernel's periodic timer lazily. The kernel arms it at
// init_service for CHECK_EXPIRE_INTERVAL later and re-arms it at the end
// of each run for another interval; between two Picks nothing but the
// timer touches the table, so running, at the next Pick or Changed, every
// tick that fell due, each with its own due time as "now", leaves the
// table as the kernel's timer would have (up to the timer wheel's slack:
// a kernel timer may fire a little late, gvs's fire exactly on the
// minute).
type gcTimer struct {
	next    int64 // due time of the next tick, ns since the origin
	counter int   // tbl->counter
	rover   int   // tbl->rover
}

func newGCTimer() gcTimer { return gcTimer{next: checkExpireInterval, counter: 1} }

// run runs the ticks due at or before now.
func (t *gcTimer) run(tab expirer, now, expiration int64) {
	for t.next <= now {
		tick := t.next
		switch {
		case t.counter%countForFullExpiration == 0:
			t.fullCheck(tab, tick, expiration)
			t.counter = 1
			t.next = tick + checkExpireInterval
			// While the table stays within max_size, the following
			// ticks only count up to the next full check, 30 ticks on;
			// and a later full check removes a superset of what an
			// earlier one does. So after a long idle spell, the last
			// full check due is the only one that matters.
			if tab.entryCount() <= lblcMaxSize {
				period := countForFullExpiration * checkExpireInterval
				if m := (now - tick) / period; m > 0 {
					last := tick + m*period
					t.fullCheck(tab, last, expiration)
					t.next = last + checkExpireInterval
				}
			}
		case tab.entryCount() <= lblcMaxSize:
			// Nothing to collect: count ticks up to the next full
			// check, all at once.
			due := int((now-tick)/checkExpireInterval) + 1
			if k := countForFullExpiration - t.counter; due > k {
				due = k
			}
			t.counter += due
			t.next = tick + int64(due)*checkExpireInterval
		default:
			t.collect(tab, tick)
			t.next = tick + checkExpireInterval
		}
	}
}

// fullCheck is ip_vs_lblc_full_check / ip_vs_lblcr_full_check: every
// bucket, from the one after the rover, loses its entries unused for the
// expiration. The rover ends where it started.
func (t *gcTimer) fullCheck(tab expirer, now, expiration int64) {
	j := t.rover
	for range lblcTabSize {
		j = (j + 1) & lblcTabMask
		tab.expireBucket(j, now, expiration)
	}
	t.rover = j
}

// collect is the over-size half of ip_vs_lblc_check_expire: remove entries
// unused for ENTRY_TIMEOUT, bucket by bucket from the one after the rover,
// until (entries - max_size) * 4/3 of them (at most max_size/2) are gone;
// the rover stays at the last bucket visited.
func (t *gcTimer) collect(tab expirer, now int64) {
	goal := (tab.entryCount() - lblcMaxSize) * 4 / 3
	if goal > lblcMaxSize/2 {
		goal = lblcMaxSize / 2
	}
	j := t.rover
	for range lblcTabSize {
		j = (j + 1) & lblcTabMask
		goal -= tab.expireBucket(j, now, entryTimeout)
		if goal <= 0 {
			break
		}
	}
	t.rover = j
}

// clock turns Options.Now into nanoseconds since the scheduler was made
// (the kernel counts jiffies since boot; only differences matter).
type clock struct {
	now    func() time.Time
	origin time.Time
}

func newClock(o *Options) clock {
	now := o.now()
	return clock{now: now, origin: now()}
}

func (c *clock) ns() int64 { return int64(c.now().Sub(c.origin)) }

// positions maps each destination of the current list to its index. The
// kernel's lblc and lblcr entries hold destination pointers that outlive
// the destination's removal (it then lacks IP_VS_DEST_F_AVAILABLE); a
// destination missing from positions is such a removed one.
type positions map[*Dest]int32

func (p *positions) rebuild(ds []*Dest) {
	if *p == nil {
		*p = make(positions, len(ds))
	}
	clear(*p)
	for i, d := range ds {
		(*p)[d] = int32(i)
	}
}

// index returns d's index in ds, or -1 if d is no longer in the list.
func (p positions) index(ds []*Dest, d *Dest) int {
	i, ok := p[d]
	if !ok || int(i) >= len(ds) || ds[i] != d {
		return -1
	}
	return int(i)
}

// lblcOverloaded is is_overloaded of ip_vs_lblc.c and ip_vs_lblcr.c: the
// destination has more active connections than its weight and some
// destination of the service (any, itself included) has fewer than half
// its weight. It does not look at the OVERLOAD flag.
func lblcOverloaded(d *Dest, ds []*Dest) bool {
	if d.Active() <= d.Weight() {
		return false
	}
	for _, x := range ds {
		if x.Active()*2 < x.Weight() {
			return true
		}
	}
	return false
}

// lblcLeast is __ip_vs_lblc_schedule and __ip_vs_lblcr_schedule, which
// are wlc's rule: skip overloaded destinations, start from the first with
// a positive weight, and take a destination whose overhead per weight is
// strictly lower.
func lblcLeast(ds []*Dest) int { return wlc{}.Pick(ds, nil) }

// virtualOf returns the address lblc and lblcr key on: the packet's
// destination (a nil key stands for the zero key).
func virtualOf(k *conntrack.Key) *[16]byte {
	if k == nil {
		return &zeroKey.Virtual
	}
	return &k.Virtual
}
