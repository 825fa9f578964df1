package sched

import (
	"fmt"

	"github.com/gvs-project/gvs/conntrack"
)

// This file is the schedulers' explain path, for gvs --trace: what Pick
// would choose now and why, in a line a person can check against the
// listing (gvsadm -Ln). It is separate code so that Pick itself does not
// pay for it: nothing here runs unless a frame is traced.

// Explain returns the index in ds of the destination s.Pick would choose
// now for a new connection with key k (-1 for none, or when the choice
// cannot be foreseen), and a one-line reason naming the scheduler and the
// numbers that decided, for example
//
//	wlc: 192.168.150.13 overhead 256/1 < 513/1 of 192.168.150.12
//
// It changes nothing: the schedulers that keep state (rr, wrr, lblc,
// lblcr) are run on a copy of their position or read their tables
// without updating them; lblc and lblcr ignore the entry expiry their
// next Pick may run first. twos draws random numbers, which cannot be
// foreseen: its reason states the rule and the index is -1. Destinations
// are named by SetAddr's address (with the port when two share an
// address).
//
// Like Pick, Explain must be serialised with Pick and Changed for one
// service (the caller holds the service's lock). It allocates.
func Explain(s Scheduler, ds []*Dest, k *conntrack.Key) (int, string) {
	if k == nil {
		k = &zeroKey
	}
	x := explainer{ds: ds}
	switch s := s.(type) {
	case *rr:
		c := *s
		i := c.Pick(ds, k)
		if i < 0 {
			return i, "rr: no available server (all weight 0 or overloaded)"
		}
		from := "from the head of the list"
		if s.pos != head && s.pos < len(ds) {
			from = "after " + x.name(s.pos) + ", the last pick"
		}
		return i, fmt.Sprintf("rr: %s, the next available %s", x.name(i), from)
	case *wrr:
		c := *s
		i := c.Pick(ds, k)
		if i < 0 {
			return i, "wrr: no available server"
		}
		return i, fmt.Sprintf("wrr: %s, weight %d >= current weight %d (steps of %d from %d)",
			x.name(i), ds[i].Weight(), c.cw, c.di, c.mw)
	case lc:
		i := s.Pick(ds, k)
		return i, x.least("lc", i, func(d *Dest) (int64, int64) { return int64(uint32(connOverhead(d))), 1 },
			func(d *Dest) bool { return !d.Overloaded() && d.Weight() != 0 }, "overhead")
	case wlc:
		i := s.Pick(ds, k)
		return i, x.least("wlc", i, wlcRatio, (*Dest).available, "overhead")
	case sed:
		i := s.Pick(ds, k)
		return i, x.least("sed", i, func(d *Dest) (int64, int64) { return sedOverhead(d), int64(d.Weight()) },
			(*Dest).available, "expected delay (active+1)/weight")
	case nq:
		i := s.Pick(ds, k)
		if i >= 0 && ds[i].Active() == 0 {
			return i, fmt.Sprintf("nq: %s has no active connection (the first such in list order)", x.name(i))
		}
		return i, x.least("nq", i, func(d *Dest) (int64, int64) { return sedOverhead(d), int64(d.Weight()) },
			(*Dest).available, "expected delay (active+1)/weight")
	case fo:
		i := s.Pick(ds, k)
		if i < 0 {
			return i, "fo: no available server"
		}
		return i, fmt.Sprintf("fo: %s has the highest weight, %d, of the servers not overloaded", x.name(i), ds[i].Weight())
	case ovf:
		i := s.Pick(ds, k)
		if i < 0 {
			return i, "ovf: no server with no more active connections than its weight"
		}
		return i, fmt.Sprintf("ovf: %s has the highest weight, %d, of the servers with active connections (%d) <= weight",
			x.name(i), ds[i].Weight(), ds[i].Active())
	case *twos:
		return -1, "twos: two random choices weighted by weight; the one with less overhead per weight wins (random: not foreseen)"
	case *dh:
		i := s.Pick(ds, k)
		b := hash32(fold(&k.Virtual), dhTabBits)
		return i, x.hashed("dh", i, "destination "+addrString(k.Virtual), b, dhTabSize, false)
	case *sh:
		i := s.Pick(ds, k)
		var port uint16
		src := addrString(k.Client)
		if s.port {
			port = clientPort(k)
			src = fmt.Sprintf("%s port %d", src, port)
		}
		b := shHashkey(fold(&k.Client), port, 0)
		fellBack := i >= 0 && int(s.table[b]) != i
		return i, x.hashed("sh", i, "source "+src, b, shTabSize, fellBack)
	case *mh:
		i := s.Pick(ds, k)
		var port uint16
		src := addrString(k.Client)
		if s.port {
			port = clientPort(k)
			src = fmt.Sprintf("%s port %d", src, port)
		}
		m := uint32(len(s.lookup))
		b := mhHashkey(fold(&k.Client), port, &mhHash1, 0) % m
		fellBack := i >= 0 && int(s.lookup[b]) != i
		return i, x.hashed("mh", i, "source "+src, b, int(m), fellBack)
	case *lblc:
		addr := virtualOf(k)
		if en := s.get(addr); en != nil {
			if i := s.pos.index(ds, en.dest); i >= 0 && en.dest.Weight() > 0 && !lblcOverloaded(en.dest, ds) {
				return i, fmt.Sprintf("lblc: %s, the server last chosen for destination %s", x.name(i), addrString(*addr))
			}
		}
		i := lblcLeast(ds)
		return i, x.least("lblc", i, wlcRatio, (*Dest).available, "overhead") +
			fmt.Sprintf(" (no usable server cached for destination %s)", addrString(*addr))
	case *lblcr:
		addr := virtualOf(k)
		if en := s.get(addr); en != nil {
			if i := s.setMin(ds, en); i >= 0 && !lblcOverloaded(ds[i], ds) {
				return i, fmt.Sprintf("lblcr: %s, the least loaded of the %d server(s) in the set of destination %s",
					x.name(i), len(en.set), addrString(*addr))
			}
			i := lblcLeast(ds)
			return i, x.least("lblcr", i, wlcRatio, (*Dest).available, "overhead") +
				fmt.Sprintf(" (added to the set of destination %s, whose servers are busy)", addrString(*addr))
		}
		i := lblcLeast(ds)
		return i, x.least("lblcr", i, wlcRatio, (*Dest).available, "overhead") +
			fmt.Sprintf(" (a new set for destination %s)", addrString(*addr))
	}
	i := s.Pick(ds, k) // a scheduler without an explainer: none so far
	return i, s.Name()
}

// wlcRatio is wlc's overhead per weight, as a fraction.
func wlcRatio(d *Dest) (int64, int64) { return overhead(d), int64(d.Weight()) }

type explainer struct{ ds []*Dest }

// name names ds[i]: its address, with the port if another destination of
// the list has the same address.
func (x explainer) name(i int) string {
	ap := x.ds[i].AddrPort()
	for j, d := range x.ds {
		if j != i && d.addr == x.ds[i].addr {
			return ap.String()
		}
	}
	return ap.Addr().String()
}

// least explains a pick of the least-ratio family (lc, wlc, sed, nq,
// and lblc's and lblcr's wlc rule): the winner's value against the best
// among the other candidates. perWeight prints the values as fractions
// (overhead/weight), as wlc and sed compare them.
func (x explainer) least(sched string, i int, ratio func(*Dest) (int64, int64), candidate func(*Dest) bool, what string) string {
	if i < 0 {
		return sched + ": no available server (all weight 0 or overloaded)"
	}
	perWeight := sched != "lc"
	val := func(n, d int64) string {
		if perWeight {
			return fmt.Sprintf("%d/%d", n, d)
		}
		return fmt.Sprint(n)
	}
	wn, wd := ratio(x.ds[i])
	other := -1
	var on, od int64
	for j, d := range x.ds {
		if j == i || !candidate(d) {
			continue
		}
		n, dd := ratio(d)
		// n/dd < on/od, by cross-multiplication (denominators > 0).
		if other < 0 || n*od < on*dd {
			other, on, od = j, n, dd
		}
	}
	if other < 0 {
		return fmt.Sprintf("%s: %s %s %s, the only server available", sched, x.name(i), what, val(wn, wd))
	}
	rel, tie := "<", ""
	if wn*od == on*wd {
		// The kernel keeps the first of equals.
		rel, tie = "=", ", first in list order"
	}
	return fmt.Sprintf("%s: %s %s %s %s %s of %s%s", sched, x.name(i), what, val(wn, wd), rel, val(on, od), x.name(other), tie)
}

// hashed explains a pick of the hashing family.
func (x explainer) hashed(sched string, i int, input string, bucket uint32, size int, fellBack bool) string {
	if i < 0 {
		return fmt.Sprintf("%s: hash of %s -> bucket %d of %d, whose server is not available", sched, input, bucket, size)
	}
	fb := ""
	if fellBack {
		fb = " (its own server unavailable: the fallback's next usable bucket)"
	}
	return fmt.Sprintf("%s: hash of %s -> bucket %d of %d -> %s%s", sched, input, bucket, size, x.name(i), fb)
}

// addrString formats an address as conntrack.Key holds it.
func addrString(a [16]byte) string {
	if [12]byte(a[:12]) == v4Mapped {
		return fmt.Sprintf("%d.%d.%d.%d", a[12], a[13], a[14], a[15])
	}
	k := conntrack.Key{Client: a}
	return k.ClientAddr().Addr().String()
}
