package forward

import (
	"sync"

	"github.com/gvs-project/gvs/conntrack"
	"github.com/gvs-project/gvs/service"
)

// Local ports FULLNAT hands out: the unprivileged range, as DPVS does by
// default. Each local address gives at most 64512 concurrent connections
// per protocol; more local addresses (gvsadm -P) give more.
const (
	firstLocalPort = 1024
	lastLocalPort  = 65535
)

// PortPools hands out FULLNAT's local ports: for each local address and
// protocol, every port at most once at a time, taken when a connection
// starts and given back when its entry leaves the table (Release is the
// connection table's OnRemove). It is safe for concurrent use.
type PortPools struct {
	mu    sync.Mutex
	pools map[poolKey]*portPool
}

type poolKey struct {
	addr  [4]byte
	proto uint8
}

type portPool struct {
	used [65536 / 64]uint64 // a bit per port
	next int                // where the next search starts
	n    int                // ports in use
}

// NewPortPools returns empty pools.
func NewPortPools() *PortPools { return &PortPools{pools: map[poolKey]*portPool{}} }

// Acquire takes a free port of addr for proto.
func (pp *PortPools) Acquire(addr [4]byte, proto uint8) (uint16, bool) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	k := poolKey{addr, proto}
	p := pp.pools[k]
	if p == nil {
		p = &portPool{next: firstLocalPort}
		pp.pools[k] = p
	}
	const size = lastLocalPort - firstLocalPort + 1
	if p.n >= size {
		return 0, false
	}
	port := p.next
	for range size {
		if port > lastLocalPort {
			port = firstLocalPort
		}
		if p.used[port/64]&(1<<(port%64)) == 0 {
			p.used[port/64] |= 1 << (port % 64)
			p.n++
			p.next = port + 1
			return uint16(port), true
		}
		port++
	}
	return 0, false
}

// Release gives back the local port of a FULLNAT connection (k is its
// key: the protocol picks the pool); other connections are ignored. Its
// signature is conntrack.Config.OnRemove's.
func (pp *PortPools) Release(k *conntrack.Key, aux *conntrack.Aux) {
	if aux.LocalPort == 0 {
		return
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	p := pp.pools[poolKey{aux.LocalAddr, k.Protocol}]
	port := int(aux.LocalPort)
	if p != nil && p.used[port/64]&(1<<(port%64)) != 0 {
		p.used[port/64] &^= 1 << (port % 64)
		p.n--
	}
}

// InUse returns how many ports of addr are taken for proto.
func (pp *PortPools) InUse(addr [4]byte, proto uint8) int {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if p := pp.pools[poolKey{addr, proto}]; p != nil {
		return p.n
	}
	return 0
}

// localPort takes a local address and port for a new FULLNAT connection
// of the service, trying its local addresses in turn from the one after
// the last used.
func (w *Worker) localPort(svc *service.Service, proto uint8) ([4]byte, uint16, bool) {
	if w.e.cfg.Ports == nil {
		return [4]byte{}, 0, false
	}
	laddrs := svc.LocalAddrs()
	for i := range laddrs {
		a := laddrs[(int(w.laddrN)+i)%len(laddrs)].As4()
		if port, ok := w.e.cfg.Ports.Acquire(a, proto); ok {
			w.laddrN++
			return a, port, true
		}
	}
	return [4]byte{}, 0, false
}
