// Package cpustat reads the CPU time counters the bench tool divides by
// forwarded packets: the machine's per-state totals from /proc/stat and one
// process's user and system time from /proc/<pid>/stat.
//
// Both files count in USER_HZ ticks (TicksPerSecond, 100 on every Linux
// architecture the project targets). On a kernel built without
// CONFIG_IRQ_TIME_ACCOUNTING, as the development VM's is, the counters are
// sampled by the scheduler tick: a tick charges its whole period to the
// state the CPU is in at that instant (user, system, softirq...). The
// figures are therefore statistical, with a resolution of one tick per CPU,
// and only meaningful over intervals of many ticks (a 5 s point spans 500
// ticks per CPU at USER_HZ, more at the kernel's own HZ).
//
// Softirq work that runs at the end of a system call (local_bh_enable, the
// usual case on veth) is counted both as the machine's softirq time and as
// the running task's system time: the kernel adds every system tick to the
// task's stime, and only the /proc/stat bucket depends on whether the CPU
// was serving a softirq.
//
// The parsers take readers or byte slices, so they are tested on fixtures
// without root or a particular machine.
package cpustat
