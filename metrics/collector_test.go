package metrics

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// fakeSnapshot is the seed lab after a few connections: one TCP service
// with two DR real servers, one worker, two next hops.
func fakeSnapshot() *Snapshot {
	return &Snapshot{
		Version: "0.1.0", IPVSVersion: "1.2.1",
		Services: []Service{{
			Protocol: "tcp", Addr: netip.MustParseAddr("192.168.150.100"), Port: 80,
			Traffic: Traffic{Conns: 6, InPackets: 36, InBytes: 2268},
			Reals: []Real{
				{Addr: netip.MustParseAddr("192.168.150.13"), Port: 80, Weight: 0, ConfigWeight: 1, Checked: true, Active: 1, Inactive: 2,
					Traffic: Traffic{Conns: 3, InPackets: 18, InBytes: 1134}},
				{Addr: netip.MustParseAddr("192.168.150.12"), Port: 80, Weight: 2, ConfigWeight: 2, Checked: true, Up: true, Persistent: 1,
					Traffic: Traffic{Conns: 3, InPackets: 18, InBytes: 1134, OutPackets: 5, OutBytes: 7000}},
			},
		}},
		Conntrack: Conntrack{Entries: 7, HalfOpen: 1, Max: 1024, Created: 9, Expired: 2, Evicted: 3, Refused: 4},
		Workers: []Worker{{
			Name: "eth0/0", Frames: 45, Batches: 10, RingDrops: 7, TXDrops: 5,
			BatchSizes: []Bucket{{1, 6}, {2, 2}, {4, 0}, {8, 1}, {16, 0}, {32, 1}, {64, 0}},
			Forwarded:  36,
			Dropped:    []Count{{"no_dest", 2}, {"arp_unresolved", 1}},
			Passed:     []Count{{"not_ipv4", 6}},
			ICMPSent:   1, ICMPRelayed: 2, Fragmented: 3, Segmented: 4,
		}},
		Health: Health{Probes: 40, Failures: 3, Downs: 1, Ups: 0},
		ARP: ARP{Incomplete: 1, Reachable: 2, RequestsSent: 5, AnswersSent: 3, GratuitousSent: 4, Learned: 2,
			Failures: 1, Unresolved: 1, Received: 8, Ignored: 2, Malformed: 1, Conflicts: 1, SendErrors: 1, ReadErrors: 1},
	}
}

// TestCollect: every number of a Snapshot comes out under its name and
// labels, as Prometheus's text format shows it.
func TestCollect(t *testing.T) {
	c := NewCollector(SourceFunc(fakeSnapshot))
	want := `
# HELP gvs_build_info gvs's version and the IPVS version whose behaviour it follows (always 1).
# TYPE gvs_build_info gauge
gvs_build_info{ipvs_version="1.2.1",version="0.1.0"} 1
# HELP gvs_service_connections_total Connections scheduled to the virtual service (gvsadm -L --stats Conns).
# TYPE gvs_service_connections_total counter
gvs_service_connections_total{port="80",protocol="tcp",vip="192.168.150.100"} 6
# HELP gvs_service_in_packets_total Packets from clients to the virtual service (InPkts).
# TYPE gvs_service_in_packets_total counter
gvs_service_in_packets_total{port="80",protocol="tcp",vip="192.168.150.100"} 36
# HELP gvs_service_in_bytes_total Bytes from clients to the virtual service (InBytes).
# TYPE gvs_service_in_bytes_total counter
gvs_service_in_bytes_total{port="80",protocol="tcp",vip="192.168.150.100"} 2268
# HELP gvs_service_out_packets_total Packets from the virtual service to clients, seen in NAT and FULLNAT only (OutPkts).
# TYPE gvs_service_out_packets_total counter
gvs_service_out_packets_total{port="80",protocol="tcp",vip="192.168.150.100"} 0
# HELP gvs_real_connections_total Connections scheduled to the real server (gvsadm -L --stats Conns).
# TYPE gvs_real_connections_total counter
gvs_real_connections_total{port="80",protocol="tcp",real="192.168.150.12:80",vip="192.168.150.100"} 3
gvs_real_connections_total{port="80",protocol="tcp",real="192.168.150.13:80",vip="192.168.150.100"} 3
# HELP gvs_real_out_bytes_total Bytes from the real server to clients, seen in NAT and FULLNAT only (OutBytes).
# TYPE gvs_real_out_bytes_total counter
gvs_real_out_bytes_total{port="80",protocol="tcp",real="192.168.150.12:80",vip="192.168.150.100"} 7000
gvs_real_out_bytes_total{port="80",protocol="tcp",real="192.168.150.13:80",vip="192.168.150.100"} 0
# HELP gvs_real_active_connections Active connections of the real server (ActiveConn).
# TYPE gvs_real_active_connections gauge
gvs_real_active_connections{port="80",protocol="tcp",real="192.168.150.12:80",vip="192.168.150.100"} 0
gvs_real_active_connections{port="80",protocol="tcp",real="192.168.150.13:80",vip="192.168.150.100"} 1
# HELP gvs_real_inactive_connections Inactive connections of the real server (InActConn).
# TYPE gvs_real_inactive_connections gauge
gvs_real_inactive_connections{port="80",protocol="tcp",real="192.168.150.12:80",vip="192.168.150.100"} 0
gvs_real_inactive_connections{port="80",protocol="tcp",real="192.168.150.13:80",vip="192.168.150.100"} 2
# HELP gvs_real_persistent_connections Persistence templates bound to the real server (PersistConn).
# TYPE gvs_real_persistent_connections gauge
gvs_real_persistent_connections{port="80",protocol="tcp",real="192.168.150.12:80",vip="192.168.150.100"} 1
gvs_real_persistent_connections{port="80",protocol="tcp",real="192.168.150.13:80",vip="192.168.150.100"} 0
# HELP gvs_real_weight Weight of the real server as the scheduler sees it (0 while a health check has it down).
# TYPE gvs_real_weight gauge
gvs_real_weight{port="80",protocol="tcp",real="192.168.150.12:80",vip="192.168.150.100"} 2
gvs_real_weight{port="80",protocol="tcp",real="192.168.150.13:80",vip="192.168.150.100"} 0
# HELP gvs_real_configured_weight Weight of the real server as configured with gvsadm.
# TYPE gvs_real_configured_weight gauge
gvs_real_configured_weight{port="80",protocol="tcp",real="192.168.150.12:80",vip="192.168.150.100"} 2
gvs_real_configured_weight{port="80",protocol="tcp",real="192.168.150.13:80",vip="192.168.150.100"} 1
# HELP gvs_real_up 1 if the real server's health check has it up, 0 if down (only servers with a check).
# TYPE gvs_real_up gauge
gvs_real_up{port="80",protocol="tcp",real="192.168.150.12:80",vip="192.168.150.100"} 1
gvs_real_up{port="80",protocol="tcp",real="192.168.150.13:80",vip="192.168.150.100"} 0
# HELP gvs_health_transitions_total Real servers a health check took down or brought back up.
# TYPE gvs_health_transitions_total counter
gvs_health_transitions_total{to="down"} 1
gvs_health_transitions_total{to="up"} 0
# HELP gvs_conntrack_entries Entries in the connection table, persistence templates included.
# TYPE gvs_conntrack_entries gauge
gvs_conntrack_entries 7
# HELP gvs_conntrack_half_open_entries Connections in SYN_RECV or SYNACK.
# TYPE gvs_conntrack_half_open_entries gauge
gvs_conntrack_half_open_entries 1
# HELP gvs_conntrack_max_entries The most entries the connection table holds (gvs --conn-max).
# TYPE gvs_conntrack_max_entries gauge
gvs_conntrack_max_entries 1024
# HELP gvs_conntrack_evicted_total Half-open connections evicted to make room in a full table.
# TYPE gvs_conntrack_evicted_total counter
gvs_conntrack_evicted_total 3
# HELP gvs_conntrack_refused_total New connections refused: the table was full and held nothing to evict.
# TYPE gvs_conntrack_refused_total counter
gvs_conntrack_refused_total 4
# HELP gvs_worker_frames_total Frames a data-path worker received.
# TYPE gvs_worker_frames_total counter
gvs_worker_frames_total{worker="eth0/0"} 45
# HELP gvs_worker_ring_drops_total Frames the kernel dropped because a worker's receive ring was full (gvs fell behind).
# TYPE gvs_worker_ring_drops_total counter
gvs_worker_ring_drops_total{worker="eth0/0"} 7
# HELP gvs_worker_tx_drops_total Frames the kernel's egress path refused after a worker queued them on a transmit ring.
# TYPE gvs_worker_tx_drops_total counter
gvs_worker_tx_drops_total{worker="eth0/0"} 5
# HELP gvs_worker_batch_frames Frames per batch a data-path worker took from its receive ring.
# TYPE gvs_worker_batch_frames histogram
gvs_worker_batch_frames_bucket{worker="eth0/0",le="1"} 6
gvs_worker_batch_frames_bucket{worker="eth0/0",le="2"} 8
gvs_worker_batch_frames_bucket{worker="eth0/0",le="4"} 8
gvs_worker_batch_frames_bucket{worker="eth0/0",le="8"} 9
gvs_worker_batch_frames_bucket{worker="eth0/0",le="16"} 9
gvs_worker_batch_frames_bucket{worker="eth0/0",le="32"} 10
gvs_worker_batch_frames_bucket{worker="eth0/0",le="64"} 10
gvs_worker_batch_frames_bucket{worker="eth0/0",le="+Inf"} 10
gvs_worker_batch_frames_sum{worker="eth0/0"} 45
gvs_worker_batch_frames_count{worker="eth0/0"} 10
# HELP gvs_forwarded_frames_total Frames rewritten and sent to a real server (or back to a client).
# TYPE gvs_forwarded_frames_total counter
gvs_forwarded_frames_total{worker="eth0/0"} 36
# HELP gvs_dropped_frames_total Frames to a virtual service that gvs dropped, by reason.
# TYPE gvs_dropped_frames_total counter
gvs_dropped_frames_total{reason="arp_unresolved",worker="eth0/0"} 1
gvs_dropped_frames_total{reason="no_dest",worker="eth0/0"} 2
# HELP gvs_passed_frames_total Frames gvs left to the kernel as not its own, by reason.
# TYPE gvs_passed_frames_total counter
gvs_passed_frames_total{reason="not_ipv4",worker="eth0/0"} 6
# HELP gvs_tunnel_segmented_frames_total TUN: super-frames cut into segments before encapsulation.
# TYPE gvs_tunnel_segmented_frames_total counter
gvs_tunnel_segmented_frames_total{worker="eth0/0"} 4
# HELP gvs_arp_neighbors Next hops in gvs's ARP cache, by state.
# TYPE gvs_arp_neighbors gauge
gvs_arp_neighbors{state="failed"} 0
gvs_arp_neighbors{state="incomplete"} 1
gvs_arp_neighbors{state="reachable"} 2
# HELP gvs_arp_requests_sent_total ARP requests sent to resolve or refresh next hops.
# TYPE gvs_arp_requests_sent_total counter
gvs_arp_requests_sent_total 5
# HELP gvs_arp_answers_sent_total ARP replies sent for addresses gvs owns.
# TYPE gvs_arp_answers_sent_total counter
gvs_arp_answers_sent_total 3
# HELP gvs_arp_unresolved_frames_total Frames the data path dropped for want of a next hop's MAC.
# TYPE gvs_arp_unresolved_frames_total counter
gvs_arp_unresolved_frames_total 1
`
	names := []string{"gvs_build_info",
		"gvs_service_connections_total", "gvs_service_in_packets_total", "gvs_service_in_bytes_total", "gvs_service_out_packets_total",
		"gvs_real_connections_total", "gvs_real_out_bytes_total", "gvs_real_active_connections", "gvs_real_inactive_connections",
		"gvs_real_persistent_connections", "gvs_real_weight", "gvs_real_configured_weight", "gvs_real_up", "gvs_health_transitions_total",
		"gvs_conntrack_entries", "gvs_conntrack_half_open_entries", "gvs_conntrack_max_entries",
		"gvs_conntrack_evicted_total", "gvs_conntrack_refused_total",
		"gvs_worker_frames_total", "gvs_worker_ring_drops_total", "gvs_worker_tx_drops_total", "gvs_worker_batch_frames", "gvs_forwarded_frames_total",
		"gvs_dropped_frames_total", "gvs_passed_frames_total", "gvs_tunnel_segmented_frames_total",
		"gvs_arp_neighbors", "gvs_arp_requests_sent_total", "gvs_arp_answers_sent_total", "gvs_arp_unresolved_frames_total"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
}

// TestEveryMetricCollected: each descriptor appears in a scrape of a full
// Snapshot (none is described and never sent), the values of the names
// TestCollect does not list included, and a service-less Snapshot sends
// only the unlabelled families and the workers'.
func TestEveryMetricCollected(t *testing.T) {
	c := NewCollector(SourceFunc(fakeSnapshot))
	if n, want := testutil.CollectAndCount(c), 1+5+2*(5+4+2)+7+(1+1+1+1+1+2+1+4)+3+12+4; n != want {
		t.Errorf("%d metrics collected, want %d", n, want)
	}
	fams := gather(t, Handler(SourceFunc(fakeSnapshot)))
	for name, want := range map[string]float64{
		"gvs_real_in_packets_total": 36, "gvs_real_in_bytes_total": 2268, "gvs_real_out_packets_total": 5,
		"gvs_service_out_bytes_total": 0, "gvs_conntrack_created_total": 9, "gvs_conntrack_expired_total": 2,
		"gvs_icmp_errors_sent_total": 1, "gvs_icmp_errors_relayed_total": 2, "gvs_tunnel_fragmented_packets_total": 3,
		"gvs_arp_gratuitous_sent_total": 4, "gvs_arp_learned_total": 2, "gvs_arp_failures_total": 1,
		"gvs_arp_received_frames_total": 8, "gvs_arp_ignored_frames_total": 2, "gvs_arp_malformed_frames_total": 1,
		"gvs_arp_conflicts_total": 1, "gvs_arp_send_errors_total": 1, "gvs_arp_read_errors_total": 1,
		"gvs_health_probes_total": 40, "gvs_health_probe_failures_total": 3,
	} {
		f, ok := fams[name]
		if !ok {
			t.Errorf("%s not exported", name)
			continue
		}
		var sum float64
		for _, m := range f.Metric {
			sum += m.GetCounter().GetValue()
		}
		if sum != want {
			t.Errorf("%s: %v, want %v", name, sum, want)
		}
	}
	empty := NewCollector(SourceFunc(func() *Snapshot { return &Snapshot{} }))
	if n, want := testutil.CollectAndCount(empty), 1+7+3+12+4; n != want {
		t.Errorf("empty snapshot: %d metrics, want %d", n, want)
	}
}

// TestLint: the names, types and help texts follow Prometheus's
// conventions as its own linter checks them (counters end in _total,
// base units, no reserved suffixes).
func TestLint(t *testing.T) {
	problems, err := testutil.CollectAndLint(NewCollector(SourceFunc(fakeSnapshot)))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestHandler: the HTTP handler serves the text format, with the Go
// runtime's and process metrics beside gvs's, reading the Source once
// per scrape.
func TestHandler(t *testing.T) {
	var calls atomic.Int32
	h := Handler(SourceFunc(func() *Snapshot { calls.Add(1); return fakeSnapshot() }))
	fams := gather(t, h)
	if calls.Load() != 1 {
		t.Errorf("one scrape read the source %d times", calls.Load())
	}
	for _, name := range []string{"gvs_service_connections_total", "gvs_dropped_frames_total", "go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("%s missing from /metrics", name)
		}
	}
	got := fams["gvs_real_connections_total"]
	if got == nil || len(got.Metric) != 2 {
		t.Fatalf("gvs_real_connections_total: %v", got)
	}
}

// gather scrapes h and parses the text exposition.
func gather(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parsing the scrape: %v", err)
	}
	return fams
}
