// Package bench is gvs-bench (`gvs bench`, `make bench`). It measures how many packets per second gvs forwards,
// next to the kernel's own forwarding and nftables DNAT measured in the
// same run on the same machine, so that gvs's cost is always read as a
// ratio against a baseline rather than as an absolute number.
//
// # What it measures
//
// One run builds its own network in namespaces (see package
// github.com/gvs-project/gvs/bench/topo for the picture): a generator
// namespace cabled to a director namespace, whose second interface is on a
// bridge with two sink namespaces. Addresses are from 198.18.0.0/15, the
// benchmarking range; no frame leaves the machine. For each forwarding
// path, the director is set up, and for each frame size the generator sends
// for --duration, --repeats times:
//
//	kernel    the kernel's IPv4 forwarding (ip_forward=1), flows alternating between the two sinks' addresses
//	nft-dnat  nftables DNAT of VIP:9 to the two sinks (numgen inc mod 2), if the nft command exists
//	gvs-dr    gvs in direct-routing mode (gvsadm -A -u VIP:9 -s rr; -a -r SINK -g -w 1 for both sinks)
//
// For each point it reports:
//
//   - delivered packets per second: the sum of the sinks' rx_packets
//     deltas (an nftables ingress rule drops the frames right after their
//     eth0 counted them, so the sinks cost next to nothing), divided by the
//     generator's sending time; median and min–max over the repeats;
//   - loss: sent (the generator's eth0 tx_packets plus tx_dropped, which
//     on veth counts frames the director's backlog refused) minus
//     delivered, over sent;
//   - CPU time per delivered packet: the forwarder's ("fwd": for gvs, the
//     gvs process's utime+stime from /proc/<pid>/stat; for the kernel
//     paths, the machine's softirq time from /proc/stat, where their
//     forwarding runs); the whole director side's ("dir": the same for the
//     kernel paths; for gvs, its own time plus the softirq time of the
//     director's receive into gvs's ring, on the generator's CPU), the
//     figure that compares like with like; and the whole machine's busy
//     time (all CPUs, generator included);
//   - ratios of pps and of both CPU figures against the kernel path at the
//     same frame size;
//   - the other load: CPU time that neither this program, nor gvs, nor the
//     kernel's ksoftirqd threads used during the point, in percent of one
//     CPU. Above 10% the point is flagged as unreliable.
//
// The table goes to standard output, progress to standard error, and with
// --json FILE the whole run (every sample, host, pinning, configuration)
// as JSON.
//
// # How
//
// The generator is pure Go (package bench/pktgen): UDP frames written into
// a TPACKET_V2 transmit ring (internal/afpacket) by one thread pinned to
// --gen-cpu (0), 64 frames per sendto, over --flows flows (1024 source
// ports), without a rate limit: every point is a saturation test (when all
// its ring slots are in flight it sleeps 50 µs rather than spin, so that
// softirq work deferred to ksoftirqd on its CPU can free them). Frame
// sizes count the 4-byte FCS, as RFC 2544 does: 64 means 60 bytes in the
// ring, 1518 is a full 1500-byte IP packet. gvs runs under taskset on
// --fwd-cpu (1) (or gets every thread's affinity set if taskset is
// missing). RPS is off on every interface. Before a path's first point the
// generator warms it up until both sinks receive (this also lets gvs
// resolve its real servers by ARP). After each point the sinks' counters
// are read until they stop moving, so frames still queued count.
//
// Offloads keep the kernel's defaults everywhere: no point needed them off
// (the generator sends single, fully checksummed frames, which no offload
// changes). Later bulk and TCP points must keep them on.
//
// # Caveats
//
//   - veth is not a NIC. A frame sent on veth is received by its peer in
//     softirq on the sending CPU, at the end of the sendto. For the kernel
//     paths, the generator, the forwarding, the bridge and the sinks'
//     receive all run on the generator's CPU: their pps is the rate one CPU
//     achieves doing all of it. For gvs, the generator and the director's
//     receive (into gvs's ring) run on CPU 0 and gvs, its transmit, the
//     bridge and the sinks on CPU 1: gvs has two CPUs where the kernel has
//     one, so its pps may exceed the kernel's while it spends more per
//     packet. gvs's utime+stime includes the softirq work (bridge, sinks)
//     that runs at the end of its own sendto calls, as the kernel paths'
//     softirq time includes the same work; it leaves out the director's
//     receive into gvs's ring (tpacket_rcv and gvs's ingress filter), which
//     runs in softirq on CPU 0: the "dir" figure adds it. Frames a path
//     loses still cost the generator and the director's receive, and are
//     charged to the packets it delivered.
//   - On a 2-vCPU VM the hypervisor, the bench tool's own goroutines and
//     anything else running share the two CPUs; a busy machine is warned
//     about (load average above 0.5 per CPU before starting, other load
//     above 10% of a CPU during a point) but not refused.
//   - CPU times are sampled by the scheduler tick (see bench/cpustat):
//     statistical, at 10 ms resolution per CPU, good over seconds.
//   - Read the ratios, not the absolute numbers: they change with the
//     machine, the kernel and the VM, the ratios much less.
//
// # Running
//
//	sudo go run ./bench                       # the full run: 5 s × 3 repeats, 64 and 1500 bytes (a few minutes)
//	sudo go run ./bench --quick               # one 1 s repeat, 64 bytes only (under a minute; what CI runs)
//	sudo go run ./bench --json out.json --paths kernel,gvs-dr --sizes 64,512,1518
//	sudo go run ./bench --keep -v             # print every command and leave the namespaces for a look
//
// It needs root (network namespaces, AF_PACKET), the ip command, and either
// the go command and the source tree (it builds gvs and gvsadm from the
// module it is in) or --gvs and --gvsadm. It removes everything it created
// when it ends, also on Ctrl-C or SIGTERM (a second Ctrl-C kills it at
// once; then `ip netns list | grep gvsb` shows what to delete).
package bench
