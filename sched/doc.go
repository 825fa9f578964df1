// Package sched holds the schedulers that pick a real server for each new
// connection, each a port of the kernel's IPVS scheduler of the same name
// (net/netfilter/ipvs/ip_vs_<name>.c), so that gvs makes the decisions an
// LVS user expects given the same servers, in the same order, with the
// same weights, connection counts and hash inputs. "Similar" is not the
// goal: every deterministic scheduler picks what the kernel would pick.
//
// The ports follow the kernel sources as of a 7.0-rc tree
// (intel-lab-lkp/linux at 93f538aac92e, net/netfilter/ipvs/ip_vs_*.c,
// include/linux/hash.h, lib/siphash.c, include/net/ip_vs.h); their
// scheduling logic is the same as in Linux 6.2 and later (6.2 moved twos to
// get_random_u32_below). Each scheduler's file names the kernel file and
// functions it follows.
//
// # The destination list
//
// A service's destinations are passed to the scheduler as a slice in the
// kernel's list order: ip_vs_add_dest puts a new destination at the head
// of svc->destinations, so the most recently added server comes first.
// That order decides rr's first pick, wrr's passes, every tie of the
// least-connection family and the tables of the hashing schedulers. The
// caller (the service table) tells the scheduler about every change
// through Changed, as the kernel calls the scheduler's add_dest, del_dest
// and upd_dest hooks (Changed with Kind Updated and Index -1 stands for
// init_service on an existing list), and serialises Pick and Changed for
// one service (IPVS holds svc->sched_lock the same way).
//
// A destination with weight 0 gets no new connections (it is quiesced);
// one flagged as overloaded by its connection thresholds is skipped. Each
// scheduler applies its kernel counterpart's own test, and they differ:
// lblc keeps using a cached server that carries the overload flag, ovf
// also skips a server with more active connections than its weight, sh
// and mh give a quiesced server's buckets to nobody unless their fallback
// flag is set.
//
// # Hash inputs
//
// sh and mh hash the client (the packet's source: conntrack.Key.Client and,
// with sh-port/mh-port, ClientPort for TCP, UDP and SCTP). dh, lblc and
// lblcr key on the packet's destination address, conntrack.Key.Virtual
// (for a plain virtual service that is the virtual address itself, so all
// clients share one entry, as in the kernel). mh also hashes each real
// server's address and port: set them with Dest.SetAddr.
//
// The hash functions are the kernel's: hash_32 with GOLDEN_RATIO_32 for
// dh, sh, lblc and lblcr, and hsiphash with ip_vs_mh.c's fixed keys for mh,
// as a 64-bit little-endian kernel computes it (on 32-bit kernels hsiphash
// is HalfSipHash and mh builds different tables).
//
// # Time and randomness
//
// No scheduler starts a goroutine. lblc and lblcr run the kernel's
// once-a-minute garbage collection timer lazily: each Pick and Changed
// first runs every timer tick that fell due since the last call, at the
// tick's own time, which is what the kernel's timer would have done since
// nothing else touches the table in between. The clock and the random
// source of twos come from Options.
package sched
