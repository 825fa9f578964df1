package director

import (
	"sync"

	"github.com/gvs-project/gvs/control"
	"github.com/gvs-project/gvs/service"
)

// The rate estimator follows net/netfilter/ipvs/ip_vs_est.c: every 2
// seconds each counter's increase becomes a rate, scaled to keep
// fractions (connections and packets by 2^9 per 2 s, i.e. 2^10 per
// second; bytes by 2^4 per 2 s, 2^5 per second), averaged with weight 1/4
// (rate += (new - rate) / 4), and read back rounded: (r + 0x1FF) >> 10
// and (r + 0xF) >> 5.
const estimateInterval = 2 // seconds, as the kernel's estimator timer

type estimate struct {
	last               control.Stats // counters at the last tick
	cps, inpps, outpps int64         // scaled by 2^10
	inbps, outbps      int64         // scaled by 2^5
	seen               bool
	mark               uint64 // the tick that last saw it
}

// estimator keeps the rates of every service and real server.
type estimator struct {
	mu   sync.Mutex
	est  map[*service.Counters]*estimate
	tick uint64
}

func newEstimator() *estimator { return &estimator{est: map[*service.Counters]*estimate{}} }

// update runs one 2-second tick over the live services and real servers.
func (e *estimator) update(services []*service.Service) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tick++
	for _, s := range services {
		e.one(&s.Counters)
		for _, r := range s.Reals() {
			e.one(&r.Counters)
		}
	}
	for c, x := range e.est {
		if x.mark != e.tick {
			delete(e.est, c) // gone from the table
		}
	}
}

func (e *estimator) one(c *service.Counters) {
	x := e.est[c]
	if x == nil {
		x = &estimate{}
		e.est[c] = x
	}
	x.mark = e.tick
	now := stats(c)
	if !x.seen {
		// The first tick only takes the counters' starting point.
		x.last, x.seen = now, true
		return
	}
	avg := func(rate *int64, cur, last uint64, shift uint) {
		n := int64(cur-last) << shift
		*rate += (n - *rate) >> 2
	}
	avg(&x.cps, now.Conns, x.last.Conns, 9)
	avg(&x.inpps, now.InPkts, x.last.InPkts, 9)
	avg(&x.outpps, now.OutPkts, x.last.OutPkts, 9)
	avg(&x.inbps, now.InBytes, x.last.InBytes, 4)
	avg(&x.outbps, now.OutBytes, x.last.OutBytes, 4)
	x.last = now
}

// rates returns the per-second rates of c as ipvsadm --rate shows them.
func (e *estimator) rates(c *service.Counters) control.Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.est[c]
	if x == nil {
		return control.Stats{}
	}
	r10 := func(v int64) uint64 { return uint64((v + 0x1ff) >> 10) }
	r5 := func(v int64) uint64 { return uint64((v + 0xf) >> 5) }
	return control.Stats{Conns: r10(x.cps), InPkts: r10(x.inpps), OutPkts: r10(x.outpps),
		InBytes: r5(x.inbps), OutBytes: r5(x.outbps)}
}
