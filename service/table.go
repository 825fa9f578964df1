package service

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/gvs-project/gvs/health"
	"github.com/gvs-project/gvs/sched"
)

// Errors Apply returns, wrapped in an *OpError. They correspond to the
// errno values the kernel's IPVS returns for the same mistakes, so that
// gvsadm can print ipvsadm's messages.
var (
	ErrServiceExists = errors.New("service already exists")          // EEXIST on -A
	ErrNoService     = errors.New("no such service")                 // ESRCH
	ErrRealExists    = errors.New("destination already exists")      // EEXIST on -a
	ErrNoReal        = errors.New("no such destination")             // ENOENT
	ErrScheduler     = errors.New("scheduler not found")             // ENOENT on -A/-E
	ErrInvalid       = errors.New("invalid argument")                // EINVAL
	ErrRange         = errors.New("lower threshold above upper one") // ERANGE
	ErrNotSupported  = errors.New("not supported by gvs yet")        // EOPNOTSUPP
	ErrLocalExists   = errors.New("local address already exists")    // EEXIST on -P
	ErrNoLocal       = errors.New("no such local address")           // ENOENT on -Q
)

// OpError is the error of one operation of a list given to Apply.
type OpError struct {
	Index int // position of the operation in the list
	Op    *Op
	Err   error
}

func (e *OpError) Error() string { return e.Err.Error() }
func (e *OpError) Unwrap() error { return e.Err }

// OpKind is what an Op does.
type OpKind uint8

const (
	AddService   OpKind = iota + 1 // ipvsadm -A
	EditService                    // ipvsadm -E
	DelService                     // ipvsadm -D
	Clear                          // ipvsadm -C
	AddReal                        // ipvsadm -a
	EditReal                       // ipvsadm -e
	DelReal                        // ipvsadm -d
	Zero                           // ipvsadm -Z (Service zero-valued and All set: every service)
	AddLocalAddr                   // gvsadm -P: a FULLNAT local address of the service
	DelLocalAddr                   // gvsadm -Q
)

// Op is one change to the table.
type Op struct {
	Kind     OpKind
	Service  Key
	All      bool       // Zero: every service
	Settings Settings   // AddService, EditService
	Real     RealSpec   // AddReal, EditReal, DelReal
	Addr     netip.Addr // AddLocalAddr, DelLocalAddr
}

// RealSpec describes a real server in an operation.
type RealSpec struct {
	Addr       netip.Addr
	Port       uint16
	Forward    Forward
	Weight     int32
	UThreshold uint32
	LThreshold uint32
	// Check is the server's health check (nil: none). Apply normalizes
	// it; it must not be changed afterwards.
	Check *health.Spec
	// Keep lists what an EditReal leaves unchanged. ipvsadm -e replaces
	// everything (its defaults fill what the command line omits), so
	// gvsadm sends an empty Keep, except for the check: an -e without
	// --check options keeps it.
	KeepForward, KeepWeight, KeepThresholds, KeepCheck bool
}

func (r *RealSpec) key() netip.AddrPort { return netip.AddrPortFrom(r.Addr, r.Port) }

// Plan is what Apply's prepare callback sees before anything changes, and
// what Apply returns after the change.
type Plan struct {
	// NewReals are the real servers the operations add, not yet live.
	// The prepare callback gives each its Hop; if it cannot, it returns
	// an error and nothing changes.
	NewReals []*Real
	// NewRealOps holds the index of the operation that adds each of
	// NewReals, for error messages.
	NewRealOps []int
	// Services are the service keys after the operations, in order.
	Services []Key
	// Removed are the real servers the operations removed (after Apply;
	// their flows may still run). Reals of NewReals removed again by a
	// later operation of the same list are among them.
	Removed []*Real
	// NewLocalAddrs are the FULLNAT local addresses the operations add
	// (the prepare callback checks them: the kernel must not hold them).
	NewLocalAddrs []netip.Addr
	// NewLocalAddrOps holds the index of the operation adding each.
	NewLocalAddrOps []int
	// Relinks are the real servers whose forwarding method changes; the
	// prepare callback gives each its new Link.
	Relinks []Relink
	// NATSources are the NAT real servers (address, port, protocol)
	// after the operations, and LocalAddrs the FULLNAT local addresses.
	NATSources []Key
	LocalAddrs []netip.Addr
	// Unlinked are the links that changed real servers no longer use
	// (after Apply), for the caller to release.
	Unlinked []*Link
}

// Table is the virtual-service table. It is safe for concurrent use.
type Table struct {
	mu       sync.Mutex
	services map[Key]*Service
	order    []Key // services in the order they were added
	snap     atomic.Pointer[Snapshot]
}

// New returns an empty table.
func New() *Table {
	t := &Table{services: map[Key]*Service{}}
	t.publish()
	return t
}

// Load returns the current snapshot. It is never nil.
func (t *Table) Load() *Snapshot { return t.snap.Load() }

func (t *Table) publish() {
	snap := &Snapshot{services: make(map[Key]*Service, len(t.services)),
		natSources: map[Key]bool{}, localAddrs: map[[4]byte]bool{}, virtual: map[[4]byte]uint8{}}
	for k, s := range t.services {
		snap.services[k] = s
		snap.virtual[k.Addr] |= protoBit(k.Protocol)
		if k.Port == 0 {
			snap.portZero = true
		}
		for _, r := range s.Reals() {
			if r.Forward() == Masq {
				snap.natSources[Key{Addr: r.Addr.As4(), Port: r.Port, Protocol: k.Protocol}] = true
			}
		}
		for _, a := range s.LocalAddrs() {
			snap.localAddrs[a.As4()] = true
		}
	}
	t.snap.Store(snap)
}

// Services returns the services in the order they were added.
func (t *Table) Services() []*Service {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*Service, 0, len(t.order))
	for _, k := range t.order {
		out = append(out, t.services[k])
	}
	return out
}

// model is what the checking pass of Apply tracks: which services exist,
// and which real servers and local addresses each has (local addresses
// under the port 0 key of their address).
type model map[Key]map[netip.AddrPort]bool

// Apply applies ops in order, all or nothing. It checks every operation
// first; then calls prepare (if not nil) with the plan, and gives up if
// prepare fails; then changes the table, which cannot fail, and publishes
// a new snapshot. Configuration changes are serialised.
func (t *Table) Apply(ops []Op, prepare func(*Plan) error) (*Plan, error) {
	t.mu.Lock()
	defer t.mu.Unlock()

	plan, err := t.check(ops)
	if err != nil {
		return nil, err
	}
	if prepare != nil {
		if err := prepare(plan); err != nil {
			return nil, err
		}
	}
	t.commit(ops, plan)
	t.publish()
	return plan, nil
}

// check runs ops against a model of the table and builds the plan.
func (t *Table) check(ops []Op) (*Plan, error) {
	m := model{}
	order := append([]Key(nil), t.order...)
	for k, s := range t.services {
		reals := map[netip.AddrPort]bool{}
		for _, r := range s.reals {
			reals[r.AddrPort()] = true
		}
		for _, a := range s.LocalAddrs() {
			reals[laddrKey(a)] = true
		}
		m[k] = reals
	}
	plan := &Plan{}
	// live are the real servers as the operations leave them, live or new,
	// by service and address; pendingFwd their methods after earlier edits
	// of the same list.
	live := map[liveKey]*Real{}
	for k, s := range t.services {
		for _, r := range s.reals {
			live[liveKey{k, r.AddrPort()}] = r
		}
	}
	pendingFwd := map[*Real]Forward{}
	for i := range ops {
		op := &ops[i]
		fail := func(err error, format string, args ...any) error {
			return &OpError{Index: i, Op: op, Err: fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)}
		}
		switch op.Kind {
		case AddService, EditService:
			if err := checkServiceKey(op.Service); err != nil {
				return nil, fail(err, "%v", op.Service)
			}
			if err := checkSettings(op.Service, &op.Settings); err != nil {
				return nil, &OpError{Index: i, Op: op, Err: err}
			}
			_, exists := m[op.Service]
			if op.Kind == AddService {
				if exists {
					return nil, fail(ErrServiceExists, "service %v", op.Service)
				}
				m[op.Service] = map[netip.AddrPort]bool{}
				order = append(order, op.Service)
			} else if !exists {
				return nil, fail(ErrNoService, "service %v", op.Service)
			}
		case DelService:
			if _, ok := m[op.Service]; !ok {
				return nil, fail(ErrNoService, "service %v", op.Service)
			}
			delete(m, op.Service)
			order = removeKey(order, op.Service)
		case Clear:
			m = model{}
			order = nil
		case AddReal, EditReal, DelReal:
			reals, ok := m[op.Service]
			if !ok {
				return nil, fail(ErrNoService, "service %v", op.Service)
			}
			if err := checkReal(op.Service, op.Kind, &op.Real); err != nil {
				return nil, &OpError{Index: i, Op: op, Err: err}
			}
			k := op.Real.key()
			switch op.Kind {
			case AddReal:
				if reals[k] {
					return nil, fail(ErrRealExists, "real server %v of %v", k, op.Service)
				}
				reals[k] = true
				r := NewReal(op.Real.Addr, op.Real.Port, op.Real.Forward, nil)
				plan.NewReals = append(plan.NewReals, r)
				plan.NewRealOps = append(plan.NewRealOps, i)
				live[liveKey{op.Service, k}] = r
			case EditReal, DelReal:
				if !reals[k] {
					return nil, fail(ErrNoReal, "real server %v of %v", k, op.Service)
				}
				if op.Kind == DelReal {
					delete(reals, k)
					delete(live, liveKey{op.Service, k})
					break
				}
				// ipvsadm -e replaces the forwarding method too: a
				// server that changes method needs a new link, which the
				// prepare callback finds (new connections take the new
				// method, established ones keep theirs).
				r := live[liveKey{op.Service, k}]
				if !op.Real.KeepForward && op.Real.Forward != fwdOf(r, pendingFwd) {
					pendingFwd[r] = op.Real.Forward
					plan.Relinks = append(plan.Relinks, Relink{Real: r, Forward: op.Real.Forward, Op: i})
				}
			}
		case Zero:
			if !op.All {
				if _, ok := m[op.Service]; !ok {
					return nil, fail(ErrNoService, "service %v", op.Service)
				}
			}
		case AddLocalAddr, DelLocalAddr:
			items, ok := m[op.Service]
			if !ok {
				return nil, fail(ErrNoService, "service %v", op.Service)
			}
			a := op.Addr.Unmap()
			if !a.Is4() || a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
				return nil, fail(ErrInvalid, "local address %v is not an IPv4 unicast address", op.Addr)
			}
			op.Addr = a
			k := laddrKey(a)
			if op.Kind == AddLocalAddr {
				if items[k] {
					return nil, fail(ErrLocalExists, "local address %v of %v", a, op.Service)
				}
				items[k] = true
				plan.NewLocalAddrs = append(plan.NewLocalAddrs, a)
				plan.NewLocalAddrOps = append(plan.NewLocalAddrOps, i)
			} else {
				if !items[k] {
					return nil, fail(ErrNoLocal, "local address %v of %v", a, op.Service)
				}
				delete(items, k)
			}
		default:
			return nil, fail(ErrInvalid, "operation %d", op.Kind)
		}
	}
	plan.Services = order
	// What the kernel filter and ARP must know about the table the
	// operations leave: NAT servers (their replies are gvs's) and local
	// addresses.
	for lk, r := range live {
		if _, ok := m[lk.svc]; ok && fwdOf(r, pendingFwd) == Masq {
			plan.NATSources = append(plan.NATSources, Key{Addr: r.Addr.As4(), Port: r.Port, Protocol: lk.svc.Protocol})
		}
	}
	seen := map[netip.Addr]bool{}
	for k, items := range m {
		_ = k
		for ap := range items {
			if ap.Port() == 0 && ap.Addr().Is4In6() {
				if a := ap.Addr().Unmap(); !seen[a] {
					seen[a] = true
					plan.LocalAddrs = append(plan.LocalAddrs, a)
				}
			}
		}
	}
	return plan, nil
}

// liveKey names a real server of a service.
type liveKey struct {
	svc  Key
	addr netip.AddrPort
}

// fwdOf is a real server's forwarding method after the edits of the list
// checked so far.
func fwdOf(r *Real, pending map[*Real]Forward) Forward {
	if f, ok := pending[r]; ok {
		return f
	}
	return r.Forward()
}

// Relink is a real server whose forwarding method an operation changes.
type Relink struct {
	Real    *Real
	Forward Forward
	Op      int
	// Link is the new link, set by the prepare callback.
	Link *Link
}

// laddrKey is how the check's model holds a local address: a real server
// key with port 0 would collide with a real server on port 0, so the
// local address's port is 0 and its address is marked by the zone-free
// IPv4-mapped form.
func laddrKey(a netip.Addr) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(a.As16()), 0)
}

func removeKey(ks []Key, k Key) []Key {
	out := ks[:0:0]
	for _, x := range ks {
		if x != k {
			out = append(out, x)
		}
	}
	return out
}

func checkServiceKey(k Key) error {
	a := netip.AddrFrom4(k.Addr)
	switch {
	case k.Protocol != 6 && k.Protocol != 17:
		return fmt.Errorf("protocol %d: only TCP and UDP services: %w", k.Protocol, ErrInvalid)
	case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("virtual address %v is not a unicast address: %w", a, ErrInvalid)
	}
	return nil
}

func checkSettings(k Key, s *Settings) error {
	if s.Scheduler == "" {
		s.Scheduler = sched.Default
	}
	if _, err := sched.New(s.Scheduler, s.SchedFlags); err != nil {
		if errors.Is(err, sched.ErrUnknownScheduler) {
			return fmt.Errorf("scheduler %q is not one gvs has (%v): %w", s.Scheduler, sched.Names(), ErrScheduler)
		}
		return fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	if s.Persistent {
		if s.Timeout == 0 {
			s.Timeout = DefaultPersistTimeout
		}
		if s.Netmask == 0 {
			s.Netmask = 32
		}
		if s.Netmask > 32 {
			return fmt.Errorf("persistence netmask /%d: %w", s.Netmask, ErrInvalid)
		}
	}
	switch s.OnFailure {
	case KeepOnFailure, FailQuiesce, FailRemove:
	default:
		return fmt.Errorf("on-failure %d: %w", s.OnFailure, ErrInvalid)
	}
	switch {
	case k.Port == 0 && !s.Persistent:
		return fmt.Errorf("zero port specified for non-persistent service %v: %w", k, ErrInvalid)
	case s.OnePacket && k.Protocol != 17:
		return fmt.Errorf("one-packet scheduling (-o) is only for UDP services: %w", ErrInvalid)
	case s.OnePacket:
		return fmt.Errorf("one-packet scheduling (-o) is %w", ErrNotSupported)
	}
	return nil
}

// forwardNames are the forwarding methods as ipvsadm lists them.
var forwardNames = map[Forward]string{Route: "Route", Tunnel: "Tunnel", Masq: "Masq", FullNAT: "FullNat"}

// String returns the method as ipvsadm lists it (Route, Masq, ...).
func (f Forward) String() string {
	if n, ok := forwardNames[f]; ok {
		return n
	}
	return fmt.Sprintf("Forward(%d)", f)
}

func checkReal(svc Key, kind OpKind, r *RealSpec) error {
	a := r.Addr
	if !a.Is4() || a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return fmt.Errorf("real server address %v is not an IPv4 unicast address: %w", a, ErrInvalid)
	}
	if kind == DelReal {
		return nil
	}
	if !r.KeepForward {
		switch r.Forward {
		case Route, Tunnel, Masq, FullNAT:
		default:
			return fmt.Errorf("forwarding method %d: %w", r.Forward, ErrInvalid)
		}
	}
	if !r.KeepWeight && (r.Weight < 0 || r.Weight > 65535) {
		return fmt.Errorf("weight %d is outside 0..65535: %w", r.Weight, ErrInvalid)
	}
	if !r.KeepThresholds && r.LThreshold > r.UThreshold {
		// ip_vs_add_dest/ip_vs_edit_dest refuse l_threshold > u_threshold.
		return fmt.Errorf("lower threshold %d above upper threshold %d: %w", r.LThreshold, r.UThreshold, ErrRange)
	}
	if (r.Forward == Route || r.Forward == Tunnel) && r.Port != svc.Port {
		return fmt.Errorf("%v keeps the service port: real server port %d differs from %d: %w", r.Forward, r.Port, svc.Port, ErrInvalid)
	}
	if c := r.Check; c != nil && !r.KeepCheck {
		if err := c.Normalize(); err != nil {
			return fmt.Errorf("real server %v: %v: %w", r.key(), err, ErrInvalid)
		}
		if c.Port == 0 && r.Port == 0 && c.Kind != health.Cmd {
			return fmt.Errorf("real server %v has no port of its own (a port-0 service): its %v check needs --check-port: %w",
				r.Addr, c.Kind, ErrInvalid)
		}
	}
	return nil
}

// commit applies checked operations to the live objects. It cannot fail:
// check accepted the same operations against the same table.
func (t *Table) commit(ops []Op, plan *Plan) {
	next := 0 // next of plan.NewReals to link
	for ix := range ops {
		op := &ops[ix]
		switch op.Kind {
		case AddService:
			s := &Service{Key: op.Service, settings: op.Settings}
			if s.settings.OnFailure == KeepOnFailure {
				s.settings.OnFailure = FailQuiesce
			}
			s.sched, _ = sched.New(op.Settings.Scheduler, op.Settings.SchedFlags)
			s.setPersistence(&op.Settings)
			t.services[op.Service] = s
			t.order = append(t.order, op.Service)
		case EditService:
			s := t.services[op.Service]
			s.mu.Lock()
			old := s.settings
			s.settings = op.Settings
			s.settings.OnFailure = old.OnFailure
			s.setPersistence(&op.Settings)
			if op.Settings.OnFailure != KeepOnFailure {
				s.setOnFailure(op.Settings.OnFailure)
			}
			if old.Scheduler != op.Settings.Scheduler || !equalStrings(old.SchedFlags, op.Settings.SchedFlags) {
				// ip_vs_edit_service binds the new scheduler, whose
				// init_service sees the current list.
				s.sched, _ = sched.New(op.Settings.Scheduler, op.Settings.SchedFlags)
				s.sched.Changed(s.dests, sched.Change{Kind: sched.Updated, Index: -1})
			}
			s.mu.Unlock()
		case DelService:
			t.deleteService(op.Service, plan)
		case Clear:
			for _, k := range append([]Key(nil), t.order...) {
				t.deleteService(k, plan)
			}
		case AddReal:
			s := t.services[op.Service]
			r := plan.NewReals[next]
			next++
			r.service = s
			// mh hashes each server's address and port.
			r.SetAddr(netip.AddrPortFrom(r.Addr, r.Port))
			r.SetWeight(op.Real.Weight)
			r.cfgWeight.Store(op.Real.Weight)
			r.SetThresholds(op.Real.UThreshold, op.Real.LThreshold)
			r.check.Store(op.Real.Check)
			s.mu.Lock()
			s.reals = append([]*Real{r}, s.reals...)
			s.putBack(r)
			s.mu.Unlock()
		case EditReal:
			s := t.services[op.Service]
			s.mu.Lock()
			i := s.index(op.Real.key())
			r := s.reals[i]
			if !op.Real.KeepForward && op.Real.Forward != r.Forward() {
				for _, rl := range plan.Relinks {
					if rl.Op == ix {
						if old := r.Link(); old != nil {
							plan.Unlinked = append(plan.Unlinked, old)
						}
						r.SetLink(rl.Link)
						r.fwd.Store(uint32(rl.Forward))
					}
				}
			}
			if !op.Real.KeepWeight {
				r.cfgWeight.Store(op.Real.Weight)
				if !r.Failed() {
					r.SetWeight(op.Real.Weight)
				}
			}
			if !op.Real.KeepThresholds {
				r.SetThresholds(op.Real.UThreshold, op.Real.LThreshold)
			}
			if !op.Real.KeepCheck {
				r.check.Store(op.Real.Check)
				if op.Real.Check == nil && r.Failed() {
					// No check, no verdict: the server is back.
					s.restore(r)
				}
			}
			if j := s.activeIndex(r); j >= 0 {
				s.sched.Changed(s.dests, sched.Change{Kind: sched.Updated, Index: j})
			}
			s.mu.Unlock()
		case DelReal:
			s := t.services[op.Service]
			s.mu.Lock()
			i := s.index(op.Real.key())
			r := s.reals[i]
			s.reals = append(s.reals[:i:i], s.reals[i+1:]...)
			if j := s.activeIndex(r); j >= 0 {
				s.active = append(s.active[:j:j], s.active[j+1:]...)
				s.dests = append(s.dests[:j:j], s.dests[j+1:]...)
				s.sched.Changed(s.dests, sched.Change{Kind: sched.Removed, Index: j})
			}
			r.flags.Or(flagRemoved)
			s.mu.Unlock()
			plan.Removed = append(plan.Removed, r)
		case AddLocalAddr:
			s := t.services[op.Service]
			s.mu.Lock()
			s.setLocalAddrs(append(s.LocalAddrs(), op.Addr))
			s.mu.Unlock()
		case DelLocalAddr:
			s := t.services[op.Service]
			s.mu.Lock()
			var keep []netip.Addr
			for _, a := range s.LocalAddrs() {
				if a != op.Addr {
					keep = append(keep, a)
				}
			}
			s.setLocalAddrs(keep)
			s.mu.Unlock()
		case Zero:
			for k, s := range t.services {
				if op.All || k == op.Service {
					s.Counters.Zero()
					for _, r := range s.Reals() {
						r.Counters.Zero()
					}
				}
			}
		}
	}
}

func (t *Table) deleteService(k Key, plan *Plan) {
	s := t.services[k]
	delete(t.services, k)
	t.order = removeKey(t.order, k)
	s.mu.Lock()
	for _, r := range s.reals {
		r.flags.Or(flagRemoved)
		plan.Removed = append(plan.Removed, r)
	}
	s.mu.Unlock()
}

func (s *Service) index(k netip.AddrPort) int {
	for i, r := range s.reals {
		if r.AddrPort() == k {
			return i
		}
	}
	panic(fmt.Sprintf("service %v has no real server %v after the check said it had", s.Key, k))
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
