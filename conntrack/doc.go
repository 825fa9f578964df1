// Package conntrack is gvs's connection table: the IPVS connection entries
// that bind each flow (protocol, client address and port, virtual address
// and port) to the real server chosen for it, follow the flow's TCP state
// by snooping the SYN, FIN, ACK and RST flags of its packets, and expire
// it after the state's timeout.
//
// It follows the kernel's IPVS (net/netfilter/ipvs/ip_vs_conn.c and
// ip_vs_proto_tcp.c): the same state names (NONE, SYN_RECV, ESTABLISHED,
// FIN_WAIT, ...), the same three state tables (INPUT and OUTPUT for NAT,
// which sees both directions, and INPUT-ONLY for DR and TUN, which see only
// the client's packets), the same flag priority (RST, then SYN, FIN, ACK),
// the same default timeouts, and the same per-real-server active and
// inactive connection counts that the lc/wlc/sed/nq schedulers read.
//
// # Shape
//
// The table is split into shards (4096 by default, the IPVS connection
// table's default bucket count, which ipvsadm prints as "size=4096"), each
// a chained hash index (index.go) guarded by its own mutex and chosen by a
// seeded hash of the key.
// Every worker of the data path shares one table, so a NAT reply finds its
// entry from any worker. Keys hold no pointers (16-byte addresses, IPv4 in
// IPv4-mapped form, ports, protocol) so hashing them is cheap. Entries are
// recycled through per-shard free lists: lookups, inserts and state
// changes allocate nothing in steady state. Entries come from table-wide
// slabs, each on its own cache lines with what a lookup reads in the first
// two; Prefetch brings a batch's buckets and entries into the cache
// together, so that with a million connections the cache misses of a
// batch's lookups overlap instead of following one another.
//
// Time is passed in by the caller (monotonic nanoseconds, read once per
// batch of packets), never read here, so expiry is tested without
// sleeping. Expired entries are removed by ReapDue, which sweeps the next
// few index buckets when they are due, at the pace of one sweep of the
// table per SweepPeriod: the data path's workers call it between batches
// and a background goroutine while they idle. Any lookup that meets an
// expired entry removes it too, so the packet path never waits for a full
// sweep.
//
// Each entry points at its destination (the real server) through the type
// parameter D, so that a flow keeps its real server for its lifetime even
// after the server is removed from the configuration, as IPVS does. Entries
// can be walked and imported one by one (Walk, Import) so that a later
// connection-sync feature can move them between directors.
package conntrack
