package metrics

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Labels of the service and real-server metrics.
var (
	serviceLabels = []string{"protocol", "vip", "port"}
	realLabels    = []string{"protocol", "vip", "port", "real"}
)

// descs holds every descriptor, for Describe.
var descs []*prometheus.Desc

func newDesc(name, help string, labels ...string) *prometheus.Desc {
	d := prometheus.NewDesc(name, help, labels, nil)
	descs = append(descs, d)
	return d
}

// traffic are the five ipvsadm --stats counters of services or of real
// servers.
type traffic struct {
	conns, inPkts, outPkts, inBytes, outBytes *prometheus.Desc
}

func newTraffic(prefix, what string, labels []string) traffic {
	return traffic{
		conns:    newDesc(prefix+"_connections_total", "Connections scheduled to the "+what+" (gvsadm -L --stats Conns).", labels...),
		inPkts:   newDesc(prefix+"_in_packets_total", "Packets from clients to the "+what+" (InPkts).", labels...),
		outPkts:  newDesc(prefix+"_out_packets_total", "Packets from the "+what+" to clients, seen in NAT and FULLNAT only (OutPkts).", labels...),
		inBytes:  newDesc(prefix+"_in_bytes_total", "Bytes from clients to the "+what+" (InBytes).", labels...),
		outBytes: newDesc(prefix+"_out_bytes_total", "Bytes from the "+what+" to clients, seen in NAT and FULLNAT only (OutBytes).", labels...),
	}
}

var (
	buildInfo = newDesc("gvs_build_info", "gvs's version and the IPVS version whose behaviour it follows (always 1).", "version", "ipvs_version")

	serviceTraffic = newTraffic("gvs_service", "virtual service", serviceLabels)
	realTraffic    = newTraffic("gvs_real", "real server", realLabels)
	realActive     = newDesc("gvs_real_active_connections", "Active connections of the real server (ActiveConn).", realLabels...)
	realInactive   = newDesc("gvs_real_inactive_connections", "Inactive connections of the real server (InActConn).", realLabels...)
	realPersistent = newDesc("gvs_real_persistent_connections", "Persistence templates bound to the real server (PersistConn).", realLabels...)
	realWeight     = newDesc("gvs_real_weight", "Weight of the real server as the scheduler sees it (0 while a health check has it down).", realLabels...)
	realConfWeight = newDesc("gvs_real_configured_weight", "Weight of the real server as configured with gvsadm.", realLabels...)
	realUp         = newDesc("gvs_real_up", "1 if the real server's health check has it up, 0 if down (only servers with a check).", realLabels...)

	healthProbes   = newDesc("gvs_health_probes_total", "Health-check probes run.")
	healthFailures = newDesc("gvs_health_probe_failures_total", "Health-check probes that failed.")
	healthChanges  = newDesc("gvs_health_transitions_total", "Real servers a health check took down or brought back up.", "to")

	ctEntries  = newDesc("gvs_conntrack_entries", "Entries in the connection table, persistence templates included.")
	ctHalfOpen = newDesc("gvs_conntrack_half_open_entries", "Connections in SYN_RECV or SYNACK.")
	ctMax      = newDesc("gvs_conntrack_max_entries", "The most entries the connection table holds (gvs --conn-max).")
	ctCreated  = newDesc("gvs_conntrack_created_total", "Connection entries created.")
	ctExpired  = newDesc("gvs_conntrack_expired_total", "Connection entries removed by expiry.")
	ctEvicted  = newDesc("gvs_conntrack_evicted_total", "Half-open connections evicted to make room in a full table.")
	ctRefused  = newDesc("gvs_conntrack_refused_total", "New connections refused: the table was full and held nothing to evict.")

	workerFrames     = newDesc("gvs_worker_frames_total", "Frames a data-path worker received.", "worker")
	workerRingDrops  = newDesc("gvs_worker_ring_drops_total", "Frames the kernel dropped because a worker's receive ring was full (gvs fell behind).", "worker")
	workerTXDrops    = newDesc("gvs_worker_tx_drops_total", "Frames the kernel's egress path refused after a worker queued them on a transmit ring.", "worker")
	workerBatches    = newDesc("gvs_worker_batch_frames", "Frames per batch a data-path worker took from its receive ring.", "worker")
	forwardedFrames  = newDesc("gvs_forwarded_frames_total", "Frames rewritten and sent to a real server (or back to a client).", "worker")
	droppedFrames    = newDesc("gvs_dropped_frames_total", "Frames to a virtual service that gvs dropped, by reason.", "worker", "reason")
	passedFrames     = newDesc("gvs_passed_frames_total", "Frames gvs left to the kernel as not its own, by reason.", "worker", "reason")
	icmpSent         = newDesc("gvs_icmp_errors_sent_total", "ICMP errors gvs sent (time exceeded, fragmentation needed).", "worker")
	icmpRelayed      = newDesc("gvs_icmp_errors_relayed_total", "ICMP errors about connections that gvs passed on.", "worker")
	tunnelFragmented = newDesc("gvs_tunnel_fragmented_packets_total", "TUN: outer packets sent in fragments.", "worker")
	tunnelSegmented  = newDesc("gvs_tunnel_segmented_frames_total", "TUN: super-frames cut into segments before encapsulation.", "worker")
	arpNeighbors     = newDesc("gvs_arp_neighbors", "Next hops in gvs's ARP cache, by state.", "state")
	arpRequests      = newDesc("gvs_arp_requests_sent_total", "ARP requests sent to resolve or refresh next hops.")
	arpAnswers       = newDesc("gvs_arp_answers_sent_total", "ARP replies sent for addresses gvs owns.")
	arpGratuitous    = newDesc("gvs_arp_gratuitous_sent_total", "Gratuitous ARP frames sent.")
	arpLearned       = newDesc("gvs_arp_learned_total", "Next-hop mappings learnt from ARP frames.")
	arpFailures      = newDesc("gvs_arp_failures_total", "Next hops that stopped answering ARP (moved to failed).")
	arpUnresolved    = newDesc("gvs_arp_unresolved_frames_total", "Frames the data path dropped for want of a next hop's MAC.")
	arpReceived      = newDesc("gvs_arp_received_frames_total", "ARP frames received and handled.")
	arpIgnored       = newDesc("gvs_arp_ignored_frames_total", "Well-formed ARP frames that needed nothing.")
	arpMalformed     = newDesc("gvs_arp_malformed_frames_total", "ARP frames that were not Ethernet/IPv4 ARP or were truncated.")
	arpConflicts     = newDesc("gvs_arp_conflicts_total", "ARP frames from another MAC claiming an address gvs owns.")
	arpSendErrors    = newDesc("gvs_arp_send_errors_total", "Errors sending ARP frames.")
	arpReadErrors    = newDesc("gvs_arp_read_errors_total", "Errors reading ARP frames.")
)

// Collector is a prometheus.Collector for gvs's numbers, read from its
// Source at each scrape. Safe for concurrent use if its Source is.
type Collector struct {
	src Source
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector reading src.
func NewCollector(src Source) *Collector { return &Collector{src: src} }

// Describe sends every descriptor the Collector uses.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descs {
		ch <- d
	}
}

// Collect reads one Snapshot and sends its metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Snapshot()
	if s == nil {
		return
	}
	counter := func(d *prometheus.Desc, v uint64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
	}
	gauge := func(d *prometheus.Desc, v int, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), lv...)
	}
	traffic := func(t traffic, v *Traffic, lv ...string) {
		counter(t.conns, v.Conns, lv...)
		counter(t.inPkts, v.InPackets, lv...)
		counter(t.outPkts, v.OutPackets, lv...)
		counter(t.inBytes, v.InBytes, lv...)
		counter(t.outBytes, v.OutBytes, lv...)
	}

	gauge(buildInfo, 1, s.Version, s.IPVSVersion)

	for i := range s.Services {
		sv := &s.Services[i]
		proto, vip, port := sv.Protocol, sv.Addr.String(), strconv.Itoa(int(sv.Port))
		traffic(serviceTraffic, &sv.Traffic, proto, vip, port)
		for j := range sv.Reals {
			r := &sv.Reals[j]
			real := r.Addr.String() + ":" + strconv.Itoa(int(r.Port))
			traffic(realTraffic, &r.Traffic, proto, vip, port, real)
			gauge(realActive, r.Active, proto, vip, port, real)
			gauge(realInactive, r.Inactive, proto, vip, port, real)
			gauge(realPersistent, r.Persistent, proto, vip, port, real)
			gauge(realWeight, r.Weight, proto, vip, port, real)
			gauge(realConfWeight, r.ConfigWeight, proto, vip, port, real)
			if r.Checked {
				up := 0
				if r.Up {
					up = 1
				}
				gauge(realUp, up, proto, vip, port, real)
			}
		}
	}

	counter(healthProbes, s.Health.Probes)
	counter(healthFailures, s.Health.Failures)
	counter(healthChanges, s.Health.Downs, "down")
	counter(healthChanges, s.Health.Ups, "up")

	ct := &s.Conntrack
	gauge(ctEntries, ct.Entries)
	gauge(ctHalfOpen, ct.HalfOpen)
	gauge(ctMax, ct.Max)
	counter(ctCreated, ct.Created)
	counter(ctExpired, ct.Expired)
	counter(ctEvicted, ct.Evicted)
	counter(ctRefused, ct.Refused)

	for i := range s.Workers {
		w := &s.Workers[i]
		counter(workerFrames, w.Frames, w.Name)
		counter(workerRingDrops, w.RingDrops, w.Name)
		counter(workerTXDrops, w.TXDrops, w.Name)
		buckets := make(map[float64]uint64, len(w.BatchSizes))
		var cum uint64
		for _, b := range w.BatchSizes {
			cum += b.Count
			buckets[float64(b.UpTo)] = cum
		}
		// The count is the buckets' total rather than Batches: the
		// worker bumps them one after the other, and a histogram's
		// count may not be below its last bucket.
		ch <- prometheus.MustNewConstHistogram(workerBatches, cum, float64(w.Frames), buckets, w.Name)
		counter(forwardedFrames, w.Forwarded, w.Name)
		for _, d := range w.Dropped {
			counter(droppedFrames, d.Frames, w.Name, d.Reason)
		}
		for _, p := range w.Passed {
			counter(passedFrames, p.Frames, w.Name, p.Reason)
		}
		counter(icmpSent, w.ICMPSent, w.Name)
		counter(icmpRelayed, w.ICMPRelayed, w.Name)
		counter(tunnelFragmented, w.Fragmented, w.Name)
		counter(tunnelSegmented, w.Segmented, w.Name)
	}

	a := &s.ARP
	gauge(arpNeighbors, a.Incomplete, "incomplete")
	gauge(arpNeighbors, a.Reachable, "reachable")
	gauge(arpNeighbors, a.Failed, "failed")
	counter(arpRequests, a.RequestsSent)
	counter(arpAnswers, a.AnswersSent)
	counter(arpGratuitous, a.GratuitousSent)
	counter(arpLearned, a.Learned)
	counter(arpFailures, a.Failures)
	counter(arpUnresolved, a.Unresolved)
	counter(arpReceived, a.Received)
	counter(arpIgnored, a.Ignored)
	counter(arpMalformed, a.Malformed)
	counter(arpConflicts, a.Conflicts)
	counter(arpSendErrors, a.SendErrors)
	counter(arpReadErrors, a.ReadErrors)
}

// maxScrapes bounds concurrent scrapes: each walks the service table and
// the ARP cache, and one at a time is what a Prometheus server does.
const maxScrapes = 4

// Handler returns the HTTP handler of /metrics: gvs's metrics from src,
// and the Go runtime's and the process's (go_*, process_*).
func Handler(src Source) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{MaxRequestsInFlight: maxScrapes})
}
