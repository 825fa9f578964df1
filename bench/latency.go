package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gvs-project/gvs/bench/pktgen"
	"github.com/gvs-project/gvs/internal/netns"
)

// LatencySample is one latency run: stamped frames at a fixed rate, and
// what the sinks' receivers made of them.
type LatencySample struct {
	Sent     uint64 `json:"sent"`
	Received uint64 `json:"received"`
	// RingDrops are frames the receivers' rings had no room for;
	// Negative, stamped frames that arrived before their stamp (the
	// clock was stepped); both are left out of the percentiles.
	RingDrops uint64  `json:"ring_drops"`
	Negative  uint64  `json:"negative"`
	LostPct   float64 `json:"lost_pct"`
	RatePPS   float64 `json:"rate_pps"` // as sent
	P50Us     float64 `json:"p50_us"`
	P90Us     float64 `json:"p90_us"`
	P99Us     float64 `json:"p99_us"`
	P999Us    float64 `json:"p999_us"`
	MaxUs     float64 `json:"max_us"`
	MeanUs    float64 `json:"mean_us"`
}

// LatencyResult is one path's latency point over its runs.
type LatencyResult struct {
	Path    string          `json:"path"`
	Size    int             `json:"frame_size"`
	Flows   int             `json:"flows"`
	RatePPS int             `json:"rate_pps"`
	Samples []LatencySample `json:"samples"`

	P50Us   Summary `json:"p50_us"`
	P99Us   Summary `json:"p99_us"`
	P999Us  Summary `json:"p999_us"`
	MaxUs   Summary `json:"max_us"`
	LostPct Summary `json:"lost_pct"`
	// Added latency over the kernel path's in the same run (medians),
	// in µs; 0 for the kernel path or when it did not run.
	AddedP50Us float64 `json:"added_p50_us_vs_kernel,omitempty"`
	AddedP99Us float64 `json:"added_p99_us_vs_kernel,omitempty"`
}

// percentile returns the q-quantile (0..1) of sorted values by the
// nearest-rank method.
func percentile(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// latencySample computes a run's figures from its latencies (ns).
func latencySample(lat []int64, sent, drops, negative uint64, elapsed time.Duration) LatencySample {
	s := LatencySample{Sent: sent, Received: uint64(len(lat)), RingDrops: drops, Negative: negative}
	if elapsed > 0 {
		s.RatePPS = float64(sent) / elapsed.Seconds()
	}
	if got := s.Received + drops + negative; sent > 0 && got < sent {
		s.LostPct = 100 * float64(sent-got) / float64(sent)
	}
	if len(lat) == 0 {
		return s
	}
	slices.Sort(lat)
	us := func(ns int64) float64 { return float64(ns) / 1e3 }
	var sum float64
	for _, l := range lat {
		sum += float64(l)
	}
	s.P50Us, s.P90Us = us(percentile(lat, 0.5)), us(percentile(lat, 0.9))
	s.P99Us, s.P999Us = us(percentile(lat, 0.99)), us(percentile(lat, 0.999))
	s.MaxUs, s.MeanUs = us(lat[len(lat)-1]), sum/float64(len(lat))/1e3
	return s
}

// latency measures a started path's latency: --repeats runs of
// --latency-duration at --latency-rate, 64-byte frames over --flows flows,
// with a receiver on each sink.
func (r *runner) latency(ctx context.Context, p path, s *setup, o options, progress func(string, ...any)) (LatencyResult, error) {
	res := LatencyResult{Path: p.Name(), Size: pktgen.MinSize, Flows: o.flows, RatePPS: o.latencyRate}
	t := r.e.topo
	var rcvs []*pktgen.Receiver
	defer func() {
		for _, rc := range rcvs {
			rc.Close()
		}
	}()
	for _, sk := range t.Sinks {
		idx, err := t.Ifindex(sk)
		if err != nil {
			return res, err
		}
		if err := netns.Do(sk.NS, func() error {
			rc, err := pktgen.OpenReceiver(idx)
			if err == nil {
				rcvs = append(rcvs, rc)
			}
			return err
		}); err != nil {
			return res, err
		}
	}
	f, err := r.frames(s, pktgen.MinSize, o.flows)
	if err != nil {
		return res, err
	}
	for i := range o.repeats {
		if _, err := r.drain(); err != nil {
			return res, err
		}
		for _, rc := range rcvs {
			rc.Flush()
			rc.Reset()
			rc.Drops() // reset the kernel's count
		}
		gr, err := r.gen.RunPaced(ctx, f, o.latencyDuration, o.latencyRate)
		if err != nil {
			return res, err
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if _, err := r.drain(); err != nil {
			return res, err
		}
		var lat []int64
		var drops, negative uint64
		for _, rc := range rcvs {
			rc.Flush()
			l, neg := rc.Latencies()
			d, err := rc.Drops()
			if err != nil {
				return res, err
			}
			lat = append(lat, l...)
			drops += d
			negative += neg
		}
		if s.Exited != nil {
			if err := s.Exited(); err != nil {
				return res, err
			}
		}
		sm := latencySample(lat, gr.Frames-gr.Refused, drops, negative, gr.Elapsed())
		if sm.Received == 0 {
			return res, fmt.Errorf("no stamped frame reached the sinks (%d sent)", sm.Sent)
		}
		res.Samples = append(res.Samples, sm)
		progress("%s latency run %d/%d at %s pps: p50 %.1f µs, p99 %.1f µs, p99.9 %.1f µs, max %.0f µs; %d of %d received (%.2f%% lost)",
			p.Name(), i+1, o.repeats, fmtPPS(sm.RatePPS), sm.P50Us, sm.P99Us, sm.P999Us, sm.MaxUs, sm.Received, sm.Sent, sm.LostPct)
	}
	col := func(f func(LatencySample) float64) Summary {
		var v []float64
		for _, s := range res.Samples {
			v = append(v, f(s))
		}
		return summarize(v)
	}
	res.P50Us = col(func(s LatencySample) float64 { return s.P50Us })
	res.P99Us = col(func(s LatencySample) float64 { return s.P99Us })
	res.P999Us = col(func(s LatencySample) float64 { return s.P999Us })
	res.MaxUs = col(func(s LatencySample) float64 { return s.MaxUs })
	res.LostPct = col(func(s LatencySample) float64 { return s.LostPct })
	return res, nil
}

// latencyRatios fills the latency added over the kernel path's.
func latencyRatios(ls []LatencyResult) {
	var k *LatencyResult
	for i := range ls {
		if ls[i].Path == (kernelPath{}).Name() {
			k = &ls[i]
		}
	}
	if k == nil {
		return
	}
	for i := range ls {
		if &ls[i] != k {
			ls[i].AddedP50Us = ls[i].P50Us.Median - k.P50Us.Median
			ls[i].AddedP99Us = ls[i].P99Us.Median - k.P99Us.Median
		}
	}
}
