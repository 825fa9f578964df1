package metrics

import "net/netip"

// Source gives the numbers to export. Snapshot is called once per scrape,
// possibly from several goroutines at once (concurrent scrapes); the
// Snapshot it returns belongs to the caller.
type Source interface {
	Snapshot() *Snapshot
}

// SourceFunc makes a function a Source.
type SourceFunc func() *Snapshot

// Snapshot calls f.
func (f SourceFunc) Snapshot() *Snapshot { return f() }

// Snapshot is gvs's numbers at one moment. The zero value exports the
// metrics that have no labels, at zero.
type Snapshot struct {
	Version     string // gvs's version
	IPVSVersion string // the IPVS version whose behaviour gvs follows

	Services  []Service
	Conntrack Conntrack
	Workers   []Worker
	ARP       ARP
	Health    Health
}

// Health are the health checks' counters (gvsadm --check).
type Health struct {
	Probes, Failures uint64 // probes run, and those that failed
	Downs, Ups       uint64 // transitions of real servers
}

// Traffic are a service's or real server's counters, the five columns of
// ipvsadm -L --stats.
type Traffic struct {
	Conns      uint64 // connections scheduled
	InPackets  uint64 // packets from the clients
	OutPackets uint64 // packets to the clients (seen by NAT and FULLNAT only)
	InBytes    uint64
	OutBytes   uint64
}

// Service is one virtual service.
type Service struct {
	Protocol string // "tcp" or "udp"
	Addr     netip.Addr
	Port     uint16
	Traffic
	Reals []Real
}

// Real is one real server of a service.
type Real struct {
	Addr   netip.Addr
	Port   uint16
	Weight int
	// Active, Inactive and Persistent are ipvsadm's ActiveConn,
	// InActConn and PersistConn.
	Active, Inactive, Persistent int
	// ConfigWeight is the weight gvsadm gave; Weight is the scheduler's,
	// 0 while a health check has the server down.
	ConfigWeight int
	// Checked: the server has a health check, which has it Up or down.
	Checked, Up bool
	Traffic
}

// Conntrack is the connection table's state.
type Conntrack struct {
	Entries  int // entries, templates included
	HalfOpen int // connections in SYN_RECV or SYNACK
	Max      int // the bound on Entries (gvs --conn-max)
	Created  uint64
	Expired  uint64
	Evicted  uint64 // half-open connections evicted to make room
	Refused  uint64 // new connections refused: full and nothing to evict
}

// Worker is one data-path worker's counters.
type Worker struct {
	Name   string // interface/ring, as "eth0/0"
	Frames uint64 // frames received
	// RingDrops counts frames the kernel dropped because the worker's
	// receive ring was full (PACKET_STATISTICS).
	RingDrops uint64
	// TXDrops counts frames the kernel's egress path refused after the
	// worker queued them on a transmit ring.
	TXDrops uint64
	Batches uint64 // batches handled
	// BatchSizes counts batches by size: BatchSizes[i] counts those of
	// more than BatchSizes[i-1].UpTo frames, up to BatchSizes[i].UpTo, in
	// increasing order of UpTo.
	BatchSizes []Bucket
	Forwarded  uint64
	// Dropped counts frames to a virtual service that were not
	// forwarded, by reason; Passed counts frames left to the kernel
	// (not gvs's), by reason.
	Dropped, Passed []Count
	ICMPSent        uint64 // ICMP errors gvs sent (time exceeded, fragmentation needed)
	ICMPRelayed     uint64 // ICMP errors about connections passed on
	Fragmented      uint64 // TUN: outer packets sent in fragments
	Segmented       uint64 // TUN: super-frames cut into segments
}

// Bucket is one bucket of a batch-size histogram (not cumulative).
type Bucket struct {
	UpTo  int
	Count uint64
}

// Count is a number of frames with a reason.
type Count struct {
	Reason string
	Frames uint64
}

// ARP is the resolver's cache and counters.
type ARP struct {
	// Neighbours in each state.
	Incomplete, Reachable, Failed int

	RequestsSent   uint64 // resolution and refresh requests
	AnswersSent    uint64 // replies for addresses gvs owns
	GratuitousSent uint64
	Learned        uint64 // mappings learnt from answers and requests
	Failures       uint64 // neighbours that stopped answering
	Unresolved     uint64 // data-path frames dropped for want of a MAC
	Received       uint64 // ARP frames handled
	Ignored        uint64
	Malformed      uint64
	Conflicts      uint64 // another MAC claiming an address gvs owns
	SendErrors     uint64
	ReadErrors     uint64
}
