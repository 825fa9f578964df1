package sched

import "github.com/gvs-project/gvs/conntrack"

// lblcr is locality-based least-connection scheduling with replication,
// as net/netfilter/ipvs/ip_vs_lblcr.c does it. A table maps each
// destination address of the packets (conntrack.Key.Virtual) to a set of
// servers, newest first. ip_vs_lblcr_schedule looks the address up:
//
//   - With an entry, its last use is set to now and the set's weighted
//     least-connection member taken (ip_vs_dest_set_min: members still
//     in the service, not flagged overloaded, of positive weight). If the
//     set has more than one member and has not changed for the expiration
//     (24h by default), its weighted most-connection member (of positive
//     weight, removed servers included: ip_vs_dest_set_max) is dropped
//     from it, even if it is the one just taken. If a member was taken
//     and is not "overloaded" in lblc's sense (see lblc), it is used;
//     otherwise the service's weighted least-connection server is chosen
//     (as wlc) and added to the set.
//   - Without one, the weighted least-connection server is chosen and a
//     new entry made for it.
//
// Entries expire as in the kernel: see gcTimer.
type lblcr struct {
	clock      clock
	expiration int64
	timer      gcTimer
	pos        positions

	buckets [lblcTabSize]*lblcrEntry
	entries int // tbl->entries
	free    *lblcrEntry
}

// lblcrEntry is struct ip_vs_lblcr_entry with its ip_vs_dest_set.
type lblcrEntry struct {
	next    *lblcrEntry
	addr    [16]byte
	lastuse int64
	// set holds the members, the most recently inserted first (the
	// kernel's list_add_rcu puts new elements at the head).
	set     []*Dest
	lastmod int64
}

func newLBLCR(_ uint32, o *Options) Scheduler {
	return &lblcr{
		clock:      newClock(o),
		expiration: int64(o.expiration()),
		timer:      newGCTimer(),
	}
}

func (*lblcr) Name() string { return "lblcr" }

// Changed notes the new list. The kernel's lblcr has no add, delete or
// update hooks: sets keep removed servers, which ip_vs_dest_set_min then
// skips as not available.
func (s *lblcr) Changed(ds []*Dest, _ Change) {
	s.timer.run(s, s.clock.ns(), s.expiration)
	s.pos.rebuild(ds)
}

func (s *lblcr) Pick(ds []*Dest, k *conntrack.Key) int {
	now := s.clock.ns()
	s.timer.run(s, now, s.expiration)
	addr := virtualOf(k)
	en := s.get(addr)
	if en == nil {
		i := lblcLeast(ds)
		if i < 0 {
			return -1
		}
		s.add(addr, ds[i], now)
		return i
	}
	en.lastuse = now
	i := s.setMin(ds, en)
	// "More than one destination + enough time passed by, cleanup":
	// time_after(jiffies, lastmod + expiration).
	if len(en.set) > 1 && now > en.lastmod+s.expiration {
		if m := setMax(en); m != nil {
			s.erase(en, m, now)
		}
	}
	if i >= 0 && !lblcOverloaded(ds[i], ds) {
		return i
	}
	i = lblcLeast(ds)
	if i < 0 {
		return -1
	}
	s.insert(en, ds[i], now)
	return i
}

// setMin is ip_vs_dest_set_min, returning the member's index in ds.
func (s *lblcr) setMin(ds []*Dest, en *lblcrEntry) int {
	least := -1
	var loh int64
	for _, d := range en.set {
		if d.Overloaded() {
			continue
		}
		i := s.pos.index(ds, d) // IP_VS_DEST_F_AVAILABLE
		if least < 0 {
			if d.Weight() > 0 && i >= 0 {
				least, loh = i, overhead(d)
			}
			continue
		}
		doh := overhead(d)
		if loh*int64(d.Weight()) > doh*int64(ds[least].Weight()) && i >= 0 {
			least, loh = i, doh
		}
	}
	return least
}

// setMax is ip_vs_dest_set_max: the member with the most overhead per
// weight among those of positive weight, available or not.
func setMax(en *lblcrEntry) *Dest {
	var most *Dest
	var moh int64
	for _, d := range en.set {
		if most == nil {
			if d.Weight() > 0 {
				most, moh = d, overhead(d)
			}
			continue
		}
		doh := overhead(d)
		// moh/mw < doh/dw ==> moh*dw < doh*mw, where mw,dw>0.
		if moh*int64(d.Weight()) < doh*int64(most.Weight()) && d.Weight() > 0 {
			most, moh = d, doh
		}
	}
	return most
}

// insert is ip_vs_dest_set_insert with check: add d at the head unless it
// is a member already; a change sets lastmod.
func (s *lblcr) insert(en *lblcrEntry, d *Dest, now int64) {
	for _, x := range en.set {
		if x == d {
			return
		}
	}
	en.set = append(en.set, nil)
	copy(en.set[1:], en.set)
	en.set[0] = d
	en.lastmod = now
}

// erase is ip_vs_dest_set_erase.
func (s *lblcr) erase(en *lblcrEntry, d *Dest, now int64) {
	for i, x := range en.set {
		if x == d {
			copy(en.set[i:], en.set[i+1:])
			en.set[len(en.set)-1] = nil
			en.set = en.set[:len(en.set)-1]
			en.lastmod = now
			return
		}
	}
}

// get is ip_vs_lblcr_get.
func (s *lblcr) get(addr *[16]byte) *lblcrEntry {
	for en := s.buckets[lblcBucket(addr)]; en != nil; en = en.next {
		if en.addr == *addr {
			return en
		}
	}
	return nil
}

// add is ip_vs_lblcr_new for an address without an entry: a new entry at
// the head of its bucket whose set holds d.
func (s *lblcr) add(addr *[16]byte, d *Dest, now int64) {
	b := lblcBucket(addr)
	en := s.free
	if en != nil {
		s.free = en.next
	} else {
		en = new(lblcrEntry)
	}
	en.next = s.buckets[b]
	en.addr = *addr
	en.lastuse = now
	en.set = append(en.set[:0], d)
	en.lastmod = now
	s.buckets[b] = en
	s.entries++
}

func (s *lblcr) entryCount() int { return s.entries }

func (s *lblcr) expireBucket(j int, now, age int64) int {
	n := 0
	for p := &s.buckets[j]; *p != nil; {
		en := *p
		// time_after(en->lastuse + age, now): keep.
		if en.lastuse+age > now {
			p = &en.next
			continue
		}
		*p = en.next
		clear(en.set)
		en.set = en.set[:0]
		en.next = s.free
		s.free = en
		s.entries--
		n++
	}
	return n
}
