package sched

import (
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gvs-project/gvs/conntrack"
)

// Dest is a real server as the schedulers see it: its weight and its
// connection accounting (active and inactive counts and the overload flag,
// kept by the connection table), and for mh its address and port. Embed it
// in the type that describes the real server. The zero value is a
// destination of weight 0 at the zero address.
type Dest struct {
	conntrack.Counts
	weight atomic.Int32
	// lastWeight is the kernel's dest->last_weight: the latest non-zero
	// weight, which mh builds its table from so that quiescing a server
	// (weight 0) does not move other servers' slots.
	lastWeight atomic.Int32

	// addr and port are set once, before the destination joins a
	// service, and never change (the kernel's dest->addr and dest->port).
	addr [16]byte
	port uint16
}

// Weight returns the destination's weight.
func (d *Dest) Weight() int32 { return d.weight.Load() }

// SetWeight sets the weight. Tell the scheduler with Changed(Updated).
// A non-zero weight is also remembered as the last weight, as
// __ip_vs_update_dest keeps dest->last_weight.
func (d *Dest) SetWeight(w int32) {
	d.weight.Store(w)
	if w != 0 {
		d.lastWeight.Store(w)
	}
}

// LastWeight returns the latest non-zero weight set, or 0 if the
// destination never had one (the kernel's dest->last_weight for a
// destination added with weight 0).
func (d *Dest) LastWeight() int32 { return d.lastWeight.Load() }

// SetAddr sets the real server's address and port, which mh hashes to
// place the server in its lookup table (ip_vs_mh_permutate hashes
// dest->addr and dest->port). Call it before the destination is added to
// a service; it is not safe to call while a scheduler may read it.
func (d *Dest) SetAddr(ap netip.AddrPort) {
	d.addr = ap.Addr().As16()
	d.port = ap.Port()
}

// AddrPort returns the address and port set with SetAddr.
func (d *Dest) AddrPort() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(d.addr).Unmap(), d.port)
}

// available reports whether d may take a new connection (weight > 0 and
// not overloaded), the test most IPVS schedulers apply.
func (d *Dest) available() bool { return d.weight.Load() > 0 && !d.Overloaded() }

// Scheduler picks destinations for new connections of one service. It is
// not safe for concurrent use: the caller serialises Pick and Changed.
type Scheduler interface {
	// Name returns the scheduler's ipvsadm name (rr, wrr, ...).
	Name() string
	// Pick returns the index in ds of the destination for a new
	// connection with key k, or -1 when no destination is available.
	// A nil k hashes as the zero key.
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
	// changed. Index -1: the scheduler was just bound to a service that
	// already has destinations (the kernel's init_service).
	Updated
)

// Change describes one change of a service's destination list.
type Change struct {
	Kind  ChangeKind
	Index int
}

// ErrUnknownScheduler is wrapped by New's error for a name it does not know.
var ErrUnknownScheduler = errors.New("unknown scheduler")

// ErrSchedFlag is wrapped by New's error for a scheduler flag (ipvsadm -b)
// that is unknown or that the scheduler does not use.
var ErrSchedFlag = errors.New("invalid scheduler flag")

// Default is the scheduler ipvsadm uses when -s is not given.
const Default = "wlc"

// Rand is a source of uniformly distributed 32-bit random numbers, such as
// a *math/rand/v2.Rand. twos draws from it as the kernel draws from
// get_random_u32.
type Rand interface {
	Uint32() uint32
}

// Options are what schedulers take from their environment. A nil
// *Options, and any zero field, means the default.
type Options struct {
	// Now returns the current time; lblc and lblcr read it for their
	// entries' last use and their expiry. Default time.Now.
	Now func() time.Time
	// Rand is twos' random source. Default: a ChaCha8 generator seeded
	// from crypto/rand, one per scheduler. A source given here is used by
	// every scheduler made with these Options; if those may run at the
	// same time (different services), it must be safe for concurrent use,
	// which a *math/rand/v2.Rand is not.
	Rand Rand
	// Expiration is how long lblc and lblcr keep an unused entry before
	// the full expiry check removes it, and how long lblcr keeps a
	// replicated server set unchanged before shrinking it: the sysctls
	// net.ipv4.vs.lblc_expiration and lblcr_expiration. Default 24h.
	Expiration time.Duration
}

// defaultExpiration is DEFAULT_EXPIRATION of ip_vs_lblc.c and
// ip_vs_lblcr.c, the sysctls' initial value: 24 hours.
const defaultExpiration = 24 * time.Hour

func (o *Options) now() func() time.Time {
	if o != nil && o.Now != nil {
		return o.Now
	}
	return time.Now
}

func (o *Options) rand() Rand {
	if o != nil && o.Rand != nil {
		return o.Rand
	}
	var seed [32]byte
	rand.Read(seed[:]) // never fails (crypto/rand panics instead)
	return mrand.New(mrand.NewChaCha8(seed))
}

func (o *Options) expiration() time.Duration {
	if o != nil && o.Expiration > 0 {
		return o.Expiration
	}
	return defaultExpiration
}

// Scheduler flags, IP_VS_SVC_F_SCHED1..3 of include/uapi/linux/ip_vs.h.
// sh and mh give SCHED1 the meaning "fallback" and SCHED2 "port".
const (
	flag1 uint32 = 0x0008
	flag2 uint32 = 0x0010
	flag3 uint32 = 0x0020
)

// flagBits maps the names ipvsadm 1.31 accepts for -b (parse_sched_flags)
// to their bits.
var flagBits = map[string]uint32{
	"flag-1":      flag1,
	"flag-2":      flag2,
	"flag-3":      flag3,
	"sh-fallback": flag1,
	"sh-port":     flag2,
	"mh-fallback": flag1,
	"mh-port":     flag2,
}

// flagNamesOrder lists flagBits' names in ipvsadm's order, for messages.
var flagNamesOrder = []string{"flag-1", "flag-2", "flag-3", "sh-fallback", "sh-port", "mh-fallback", "mh-port"}

type scheduler struct {
	mk func(flags uint32, o *Options) Scheduler
	// flags are the -b flag names the scheduler reads; others are
	// refused. ipvsadm itself accepts sh-* only with sh and mh-* only
	// with mh, and the kernel ignores flags a scheduler does not read;
	// gvs refuses those too, so that a mistake does not go unnoticed.
	flags []string
}

var registry = map[string]scheduler{
	"rr":    {mk: func(uint32, *Options) Scheduler { return &rr{pos: head} }},
	"wrr":   {mk: func(uint32, *Options) Scheduler { return &wrr{cl: head} }},
	"lc":    {mk: func(uint32, *Options) Scheduler { return lc{} }},
	"wlc":   {mk: func(uint32, *Options) Scheduler { return wlc{} }},
	"sed":   {mk: func(uint32, *Options) Scheduler { return sed{} }},
	"nq":    {mk: func(uint32, *Options) Scheduler { return nq{} }},
	"fo":    {mk: func(uint32, *Options) Scheduler { return fo{} }},
	"ovf":   {mk: func(uint32, *Options) Scheduler { return ovf{} }},
	"twos":  {mk: func(_ uint32, o *Options) Scheduler { return &twos{rand: o.rand()} }},
	"dh":    {mk: func(uint32, *Options) Scheduler { return newDH() }},
	"sh":    {mk: newSH, flags: []string{"flag-1", "flag-2", "sh-fallback", "sh-port"}},
	"mh":    {mk: newMH, flags: []string{"flag-1", "flag-2", "mh-fallback", "mh-port"}},
	"lblc":  {mk: newLBLC},
	"lblcr": {mk: newLBLCR},
}

// New returns a new scheduler by its ipvsadm name, with the scheduler
// flags of ipvsadm's -b option as names (flag-1, sh-port, ...), and the
// default Options.
func New(name string, flags []string) (Scheduler, error) {
	return NewWith(name, flags, nil)
}

// NewWith is New with Options (nil means the defaults).
func NewWith(name string, flags []string, opts *Options) (Scheduler, error) {
	s, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (gvs has %v)", ErrUnknownScheduler, name, Names())
	}
	var bits uint32
	for _, f := range flags {
		b, known := flagBits[f]
		switch {
		case !known:
			return nil, fmt.Errorf("%w %q (ipvsadm's flags are %s)", ErrSchedFlag, f, strings.Join(flagNamesOrder, ", "))
		case len(s.flags) == 0:
			return nil, fmt.Errorf("%w: scheduler %s takes no flags (got %v)", ErrSchedFlag, name, flags)
		case !slices.Contains(s.flags, f):
			return nil, fmt.Errorf("%w %q: scheduler %s takes only %s", ErrSchedFlag, f, name, strings.Join(s.flags, ", "))
		}
		bits |= b
	}
	return s.mk(bits, opts), nil
}

// Names returns the names of the schedulers gvs has, sorted.
func Names() []string {
	var ns []string
	for n := range registry {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// The schedulers, checked at compile time.
var (
	_ Scheduler = (*rr)(nil)
	_ Scheduler = (*wrr)(nil)
	_ Scheduler = lc{}
	_ Scheduler = wlc{}
	_ Scheduler = sed{}
	_ Scheduler = nq{}
	_ Scheduler = fo{}
	_ Scheduler = ovf{}
	_ Scheduler = (*twos)(nil)
	_ Scheduler = (*dh)(nil)
	_ Scheduler = (*sh)(nil)
	_ Scheduler = (*mh)(nil)
	_ Scheduler = (*lblc)(nil)
	_ Scheduler = (*lblcr)(nil)
)

// head stands for the list head in schedulers that remember a position
// (the kernel's &svc->destinations): "before the first destination".
const head = -1
