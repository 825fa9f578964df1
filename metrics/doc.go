// Package metrics exports gvs's numbers to Prometheus: the per-service and
// per-real-server traffic counters that gvsadm -L --stats prints, the real
// servers' connection counts, the connection table's size and evictions,
// the data path's verdicts and batch sizes per worker, and the ARP
// resolver's cache and counters.
//
// # Shape
//
// Nothing here runs on the packet path. gvs already counts everything it
// exports (atomic counters in the service table, the connection table, the
// workers and the resolver); a Collector reads them through a Source when
// Prometheus scrapes, and turns one Snapshot into constant metrics. So a
// scrape costs a walk of the service table and the ARP cache, and a packet
// costs nothing more than it did. The package knows nothing of gvs's other
// packages: the director fills the Snapshot (director/metrics.go), and the
// tests fill it by hand.
//
// # Names
//
// Every metric is named gvs_..., counters end in _total, and sizes are in
// bytes. Services are labelled protocol ("tcp", "udp"), vip and port; real
// servers carry the same labels plus real ("192.168.150.12:80"). Workers
// are labelled worker ("eth0/0": interface and ring). Frames dropped by the
// data path are counted by reason (forward.Reason's names: no_dest,
// arp_unresolved, table_full, ...); frames gvs leaves to the kernel are
// counted apart (gvs_passed_frames_total), since they are not lost.
//
// Counters are the daemon's own and start at zero when gvs starts;
// gvsadm -Z zeroes the service and real-server counters, which Prometheus
// takes as a counter reset. A real server removed from its service takes
// its series with it.
package metrics
