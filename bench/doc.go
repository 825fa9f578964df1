// Package bench is gvs's benchmark tool: `gvs bench`, `make bench`, or the
// program in bench/cmd/gvs-bench. It measures how gvs forwards next to the
// kernel's own forwarding, nftables DNAT and HAProxy measured in the same
// run on the same machine, so that gvs's cost is always read as a ratio
// against a baseline rather than as an absolute number.
//
// # What it measures
//
// One run builds its own network in namespaces (see package
// github.com/gvs-project/gvs/bench/topo for the picture): a generator
// namespace cabled to a director namespace, whose second interface is on a
// bridge with two sink namespaces. Addresses are from 198.18.0.0/15, the
// benchmarking range; no frame leaves the machine. It has three parts.
//
// UDP throughput. For each forwarding path the director is set up, and for
// each frame size (--sizes, 64 and 1500) the generator sends --flows (1 K)
// flows for --duration (5 s), --repeats (3) times, at saturation:
//
//	kernel       the kernel's IPv4 forwarding (ip_forward=1), flows alternating between the two sinks' addresses
//	nft-dnat     nftables DNAT of VIP:9 to the two sinks (numgen inc mod 2 map, per conntrack flow)
//	gvs-dr       gvs, direct routing (gvsadm -A -u VIP:9 -s rr; -a -r SINK -g -w 1 for both sinks)
//	gvs-nat      gvs, NAT (-a -r SINK:9 -m)
//	gvs-tun      gvs, IPIP tunnelling (-a -r SINK -i): the sinks count the IPIP frames as they arrive
//	gvs-fullnat  gvs, FULLNAT (-a -r SINK:9 --fullnat; -P -u VIP:9 -z 198.18.1.200)
//
// gvs-dr and gvs-nat are also measured with --many-flows (a million: 32
// source addresses × 32768 ports) at the smallest size, after every flow
// has been sent once, so that the connection table holds a million
// entries: its cost with its size shows (UDP entries; gvs's --conn-max
// default, 2 M, holds them). For each point the table gives:
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
//     same frame size, and of a many-flows point's pps against the same
//     path's at 1 K flows;
//   - the other load: CPU time that neither this program, nor gvs, nor the
//     kernel's ksoftirqd threads used during the point, in percent of one
//     CPU. Above 10% the point is flagged as unreliable.
//
// Latency. On each UDP path, after its throughput points, the generator
// sends 64-byte frames at a fixed moderate rate (--latency-rate, 50 Kpps)
// for --latency-duration (2 s), --repeats times, one frame per sendto,
// each carrying the time (CLOCK_REALTIME) taken right before its sendto.
// A receiver on each sink (an ETH_P_ALL packet socket with a TPACKET_V2
// ring, which sees frames before the sinks' ingress drop) reads the time
// the kernel stamped on each frame's arrival (tpacket_rcv, the same clock)
// and keeps the difference: p50, p99, p99.9 and max, and the latency added
// over the kernel path's. Both clocks are the same machine's: no offset;
// a frame that arrived "before" it was sent (a stepped clock) is counted
// and left out. A gvs path's latency is measured twice: with gvs as its
// defaults have it, then restarted with --busy-poll (this tool's
// --busy-poll, 50 µs; 0 leaves the second point out, as --quick does).
//
// TCP. A second topology (topo.Config.TCP) puts real servers in the
// sinks: Go net/http servers (run by this process, on listeners opened in
// the sinks' namespaces) on port 80 and a discard server on 5001; the
// client is wrk in the generator's namespace. Paths:
//
//	direct       the client connects to a server's own address, routed by the director's kernel
//	             (wrk: the first server, both being this one process; bulk: one connection to each)
//	nft-dnat     nftables DNAT of VIP:80 (numgen inc mod 2 map)
//	haproxy      HAProxy in TCP mode on the director (VIP on its lo), roundrobin
//	gvs-dr, gvs-nat, gvs-fullnat, gvs-tun   gvs, services on VIP:80 and VIP:5001
//
// Tests: new connections per second (wrk -H "Connection: close": one
// request per connection) and keep-alive requests per second (wrk
// -t2 -c64) through direct, nft-dnat, haproxy, gvs-dr and gvs-nat; bulk
// upload throughput (two connections, round robin puts one on each server,
// for --duration, or until --bulk-bytes, 64 GiB) through direct and every gvs
// mode, at the kernel's default offloads (TSO/GSO super-frames go through
// gvs). Each is reported with its ratio to direct. For DR and TUN the
// servers answer from the VIP through the director's kernel
// (ip_forward=1), as a router would carry them; for TUN they unwrap IPIP
// with `gvs realserver --tun` (user space: this kernel has no ipip
// module), which bounds TUN's bulk figure.
//
// nftables, HAProxy and wrk are installed with apt-get (Debian packages
// nftables, haproxy, wrk) when missing, with policy-rc.d keeping their
// services from starting; with --no-install, or when apt-get fails, their
// paths are skipped and the report says why. wrk rather than a Go client:
// it is C and epoll, so the client costs little of the two CPUs, and the
// reference figures in the project's issue were taken with it.
//
// The tables go to standard output, progress to standard error; --json
// FILE writes the whole run (every sample, host, pinning, offloads,
// configuration) as JSON, --svg FILE a bar chart of delivered pps per path
// and frame size. --profile DIR starts every gvs with its profiles served
// (gvs --metrics-addr on the director namespace's loopback, --pprof) and
// writes a CPU profile of gvs during the first run of each gvs point to
// DIR, named after the point (gvs-nat-conn-s.pprof, gvs-dr-64B-1K-flows.pprof),
// for `go tool pprof -top DIR/FILE`. The profile samples gvs's threads, the
// kernel time of their system calls included, at 100 Hz: it costs gvs a
// little, so a profiled run's first repeats are not quite its others.
//
// # How
//
// The generator is pure Go (package bench/pktgen): UDP frames written into
// a TPACKET_V2 transmit ring (internal/afpacket) by one thread pinned to
// --gen-cpu (0), 64 frames per sendto, without a rate limit for the
// throughput points (when all its ring slots are in flight it sleeps 50 µs
// rather than spin, so that softirq work deferred to ksoftirqd on its CPU
// can free them). Frame sizes count the 4-byte FCS, as RFC 2544 does: 64
// means 60 bytes in the ring, 1518 is a full 1500-byte IP packet (1500, the
// default, is 1496 bytes in the ring: a 1482-byte IP packet). gvs runs under taskset on
// --fwd-cpu (1) (or gets every thread's affinity set if taskset is
// missing). RPS is off on every interface. Before a path's first point the
// generator warms it up until both sinks receive (this also lets gvs
// resolve its real servers by ARP). After each point the sinks' counters
// are read until they stop moving, so frames still queued count.
//
// Offloads keep the kernel's defaults everywhere, and the report lists
// them per interface (read with the SIOCETHTOOL ioctl; there is no ethtool
// here). No UDP point needs them off (the generator sends single, fully
// checksummed frames, which no offload changes); the TCP points need them
// on. The sinks' side has MTU 1600, so that TUN's outer header fits behind
// a full 1500-byte packet. Before starting, a load average above 0.5 per
// CPU is warned about.
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
//   - The same holds for latency: the kernel paths forward inside the
//     generator's sendto, while gvs's frames wait in its receive ring
//     until gvs, on the other CPU, wakes up: gvs's added latency is
//     mostly that wake-up, which the --busy-poll point leaves out. How
//     long it takes depends on how the idle CPU waits; the report names
//     it under the latency table (Host.CPUIdle: the cpuidle driver, and
//     for a guest's haltpoll driver its guest_halt_poll_ns).
//   - TCP on two CPUs measures the whole machine: client, servers,
//     forwarder and every kernel stack share them (gvs pinned to CPU 1,
//     the rest unpinned). The ratios to direct are the figures to read.
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
//	sudo make bench                          # the full run (under 10 minutes on 2 CPUs); BENCHFLAGS='--json out.json --svg out.svg'
//	sudo bin/gvs bench --quick               # every path once, shortly (under a minute; what CI runs through TestQuick)
//	sudo go run ./bench/cmd/gvs-bench --paths kernel,gvs-dr --tcp-paths - --sizes 64,512,1518
//	sudo bin/gvs bench --keep -v             # print every command and leave the namespaces for a look
//	sudo bin/gvs bench --paths - --tcp-paths gvs-nat --profile prof   # gvs's CPU profile of each TCP point
//
// It needs root (network namespaces, AF_PACKET), the ip command, and gvs
// and gvsadm: `gvs bench` measures its own binary with the gvsadm beside
// it (or on $PATH), --gvs and --gvsadm name others, and otherwise both are
// built from the module the command runs in (the go command and the
// source tree). It removes everything it created when it ends, also on
// Ctrl-C or SIGTERM (a second Ctrl-C kills it at once; then
// `ip netns list | grep gvsb` shows what to delete).
package bench
