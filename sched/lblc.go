package sched

import "github.com/gvs-project/gvs/conntrack"

// lblc is locality-based least-connection scheduling, as
// net/netfilter/ipvs/ip_vs_lblc.c does it. A table maps each destination
// address of the packets (conntrack.Key.Virtual) to the server last
// chosen for it. ip_vs_lblc_schedule looks the address up; an entry's
// server is used again (and the entry's last use set to now) if it is
// still in the service, has a positive weight and is not "overloaded" in
// lblc's own sense (more active connections than its weight while some
// server has fewer than half its weight; the OVERLOAD flag of the
// thresholds is not consulted here). Otherwise the weighted
// least-connection server is chosen (as wlc, skipping flagged servers)
// and the entry replaced (ip_vs_lblc_new).
//
// Entries expire as in the kernel: see gcTimer. The kernel's entry count
// is not decremented when ip_vs_lblc_new replaces an entry, so it drifts
// upward with every replacement and the over-size collection starts
// earlier than the real size warrants; gvs keeps that count as the kernel
// does, since it decides when entries are dropped.
type lblc struct {
	clock      clock
	expiration int64
	timer      gcTimer
	pos        positions

	buckets [lblcTabSize]*lblcEntry
	entries int // tbl->entries, drift included
	free    *lblcEntry
}

// lblcEntry is struct ip_vs_lblc_entry.
type lblcEntry struct {
	next    *lblcEntry
	addr    [16]byte
	dest    *Dest
	lastuse int64
}

func newLBLC(_ uint32, o *Options) Scheduler {
	return &lblc{
		clock:      newClock(o),
		expiration: int64(o.expiration()),
		timer:      newGCTimer(),
	}
}

func (*lblc) Name() string { return "lblc" }

// Changed notes the new list. The kernel's lblc has no add, delete or
// update hooks: entries keep pointing at removed servers, which are then
// not available.
func (s *lblc) Changed(ds []*Dest, _ Change) {
	s.timer.run(s, s.clock.ns(), s.expiration)
	s.pos.rebuild(ds)
}

func (s *lblc) Pick(ds []*Dest, k *conntrack.Key) int {
	now := s.clock.ns()
	s.timer.run(s, now, s.expiration)
	addr := virtualOf(k)
	en := s.get(addr)
	if en != nil {
		en.lastuse = now
		if i := s.pos.index(ds, en.dest); i >= 0 && en.dest.Weight() > 0 && !lblcOverloaded(en.dest, ds) {
			return i
		}
	}
	i := lblcLeast(ds)
	if i < 0 {
		return -1
	}
	s.set(addr, ds[i], now)
	return i
}

// get is ip_vs_lblc_get.
func (s *lblc) get(addr *[16]byte) *lblcEntry {
	for en := s.buckets[lblcBucket(addr)]; en != nil; en = en.next {
		if en.addr == *addr {
			return en
		}
	}
	return nil
}

// set is ip_vs_lblc_new: keep an entry that already names d, else
// replace it by a new one at the head of its bucket.
func (s *lblc) set(addr *[16]byte, d *Dest, now int64) {
	b := lblcBucket(addr)
	if en := s.get(addr); en != nil {
		if en.dest == d {
			return
		}
		s.unlink(b, en) // ip_vs_lblc_del, without atomic_dec(&tbl->entries)
	}
	en := s.free
	if en != nil {
		s.free = en.next
	} else {
		en = new(lblcEntry)
	}
	*en = lblcEntry{next: s.buckets[b], addr: *addr, dest: d, lastuse: now}
	s.buckets[b] = en
	s.entries++
}

func (s *lblc) unlink(b int, en *lblcEntry) {
	for p := &s.buckets[b]; *p != nil; p = &(*p).next {
		if *p == en {
			*p = en.next
			*en = lblcEntry{next: s.free}
			s.free = en
			return
		}
	}
}

func (s *lblc) entryCount() int { return s.entries }

func (s *lblc) expireBucket(j int, now, age int64) int {
	n := 0
	for p := &s.buckets[j]; *p != nil; {
		en := *p
		// time_before(now, en->lastuse + age): keep.
		if now < en.lastuse+age {
			p = &en.next
			continue
		}
		*p = en.next
		*en = lblcEntry{next: s.free}
		s.free = en
		s.entries--
		n++
	}
	return n
}
