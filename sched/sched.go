// Package sched holds the schedulers that pick a real server for each new
// connection, each a port of the kernel's IPVS scheduler of the same name
// (net/netfilter/ipvs/ip_vs_<name>.c), so that gvs makes the decisions an
// LVS user expects given the same servers, in the same order, with the
// same weights and connection counts.
//
// # The destination list
//
// A service's destinations are passed to the scheduler as a slice in the
// kernel's list order: ip_vs_add_dest puts a new destination at the head
// of svc->destinations, so the most recently added server comes first.
// That order decides rr's first pick, wrr's passes and the hash tables of
// the hashing schedulers. The caller (the service table) tells the
// scheduler about every change through Changed, as the kernel calls the
// scheduler's add_dest, del_dest and upd_dest hooks, and serialises Pick
// and Changed for one service (IPVS holds svc->sched_lock the same way).
//
// A destination with weight 0 gets no new connections (it is quiesced);
// one flagged as overloaded by its connection thresholds is skipped.
package sched

import (
	"errors"
	"fmt"
	"sort"
	"sync/atomic"

	"github.com/gvs-project/gvs/conntrack"
)

// Dest is a real server as the schedulers see it: its weight and its
// connection accounting (active and inactive counts and the overload flag,
// kept by the connection table). Embed it in the type that describes the
// real server. The zero value is a destination of weight 0.
type Dest struct {
	conntrack.Counts
	weight atomic.Int32
}

// Weight returns the destination's weight.
func (d *Dest) Weight() int32 { return d.weight.Load() }

// SetWeight sets the weight. Tell the scheduler with Changed(Updated).
func (d *Dest) SetWeight(w int32) { d.weight.Store(w) }

// available reports whether d may take a new connection (weight > 0 and
// not overloaded), the test every IPVS scheduler applies.
func (d *Dest) available() bool { return d.weight.Load() > 0 && !d.Overloaded() }

// Scheduler picks destinations for new connections of one service. It is
// not safe for concurrent use: the caller serialises Pick and Changed.
type Scheduler interface {
	// Name returns the scheduler's ipvsadm name (rr, wrr, ...).
	Name() string
	// Pick returns the index in ds of the destination for a new
	// connection with key k, or -1 when no destination is available.
	Pick(ds []*Dest, k *conntrack.Key) int
	// Changed tells the scheduler that the destination list changed;
	// ds is the list after the change.
	Changed(ds []*Dest, c Change)
}

// ChangeKind says what happened to the destination list.
type ChangeKind uint8

const (
	// Added: a destination was added; it is at the head (index 0).
	Added ChangeKind = iota + 1
	// Removed: the destination at Index of the old list was removed.
	Removed
	// Updated: the destination at Index had its weight or thresholds
	// changed.
	Updated
)

// Change describes one change of a service's destination list.
type Change struct {
	Kind  ChangeKind
	Index int
}

// ErrUnknownScheduler is wrapped by New's error for a name it does not know.
var ErrUnknownScheduler = errors.New("unknown scheduler")

// Default is the scheduler ipvsadm uses when -s is not given.
const Default = "wlc"

var registry = map[string]func(flags []string) (Scheduler, error){
	"rr":  func([]string) (Scheduler, error) { return &rr{pos: head}, nil },
	"wrr": func([]string) (Scheduler, error) { return &wrr{cl: head}, nil },
	"wlc": func([]string) (Scheduler, error) { return wlc{}, nil },
}

// New returns a new scheduler by its ipvsadm name, with the scheduler
// flags of ipvsadm's -b option.
func New(name string, flags []string) (Scheduler, error) {
	mk, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (gvs has %v)", ErrUnknownScheduler, name, Names())
	}
	if len(flags) > 0 && !acceptsFlags[name] {
		return nil, fmt.Errorf("scheduler %s takes no flags (got %v)", name, flags)
	}
	return mk(flags)
}

// acceptsFlags lists the schedulers that take -b flags.
var acceptsFlags = map[string]bool{}

// Names returns the names of the schedulers gvs has, sorted.
func Names() []string {
	var ns []string
	for n := range registry {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// head stands for the list head in schedulers that remember a position
// (the kernel's &svc->destinations): "before the first destination".
const head = -1
