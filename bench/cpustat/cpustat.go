package cpustat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// TicksPerSecond is USER_HZ, the unit of /proc/stat and /proc/<pid>/stat.
// sysconf(_SC_CLK_TCK) reports it; it is 100 on x86, arm64 and every other
// Linux architecture gvs builds for, and reading it without cgo would mean
// parsing the auxiliary vector for no gain.
const TicksPerSecond = 100

// tick is the length of one USER_HZ tick.
const tick = time.Second / TicksPerSecond

// ErrFormat is wrapped by every error about a file that does not parse.
var ErrFormat = errors.New("cpustat: unexpected format")

// CPU is one cpu line of /proc/stat, in ticks (see proc(5)). Guest time is
// already included in User and Nice and is not kept separately.
type CPU struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
}

// Busy is the time the CPU spent doing anything: everything but idle and
// iowait (and steal, which is time the hypervisor gave to someone else).
func (c CPU) Busy() uint64 { return c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ }

// Sub returns c - o, field by field (o is the earlier reading).
func (c CPU) Sub(o CPU) CPU {
	return CPU{
		User: c.User - o.User, Nice: c.Nice - o.Nice, System: c.System - o.System,
		Idle: c.Idle - o.Idle, IOWait: c.IOWait - o.IOWait, IRQ: c.IRQ - o.IRQ,
		SoftIRQ: c.SoftIRQ - o.SoftIRQ, Steal: c.Steal - o.Steal,
	}
}

// Stat is one reading of /proc/stat's cpu lines.
type Stat struct {
	Total  CPU   // the "cpu" line: the sum over all CPUs
	PerCPU []CPU // "cpuN" lines, indexed by N
}

// Sub returns s - o for the total and every CPU both readings have.
func (s Stat) Sub(o Stat) Stat {
	d := Stat{Total: s.Total.Sub(o.Total)}
	for i := range min(len(s.PerCPU), len(o.PerCPU)) {
		d.PerCPU = append(d.PerCPU, s.PerCPU[i].Sub(o.PerCPU[i]))
	}
	return d
}

// ReadStat reads /proc/stat.
func ReadStat() (Stat, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return Stat{}, err
	}
	defer f.Close()
	return ParseStat(f)
}

// ParseStat parses the cpu lines of a /proc/stat file. Lines other than
// cpu lines are skipped; a file without a "cpu" line is an error.
func ParseStat(r io.Reader) (Stat, error) {
	var s Stat
	found := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "cpu") {
			continue
		}
		// user nice system idle iowait irq softirq steal: 8 values;
		// kernels before 2.6.11 had fewer, and are not supported.
		if len(fields) < 9 {
			return Stat{}, fmt.Errorf("%w: /proc/stat line %q has %d fields, want at least 9", ErrFormat, sc.Text(), len(fields))
		}
		var v [8]uint64
		for i := range v {
			n, err := strconv.ParseUint(fields[1+i], 10, 64)
			if err != nil {
				return Stat{}, fmt.Errorf("%w: /proc/stat line %q: %v", ErrFormat, sc.Text(), err)
			}
			v[i] = n
		}
		c := CPU{User: v[0], Nice: v[1], System: v[2], Idle: v[3], IOWait: v[4], IRQ: v[5], SoftIRQ: v[6], Steal: v[7]}
		if fields[0] == "cpu" {
			s.Total = c
			found = true
			continue
		}
		n, err := strconv.Atoi(fields[0][len("cpu"):])
		if err != nil || n < 0 || n > 1<<16 {
			return Stat{}, fmt.Errorf("%w: /proc/stat line %q: bad CPU number", ErrFormat, sc.Text())
		}
		for len(s.PerCPU) <= n {
			s.PerCPU = append(s.PerCPU, CPU{})
		}
		s.PerCPU[n] = c
	}
	if err := sc.Err(); err != nil {
		return Stat{}, err
	}
	if !found {
		return Stat{}, fmt.Errorf("%w: no cpu line in /proc/stat", ErrFormat)
	}
	return s, nil
}

// Proc is a process's CPU time so far, in ticks, summed over its threads
// (fields 14 and 15 of /proc/<pid>/stat).
type Proc struct {
	UTime, STime uint64
}

// Total is user plus system time.
func (p Proc) Total() uint64 { return p.UTime + p.STime }

// ReadProc reads /proc/<pid>/stat.
func ReadProc(pid int) (Proc, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Proc{}, err
	}
	return ParseProc(b)
}

// ParseProc parses the contents of a /proc/<pid>/stat file. The command
// name (field 2) is in parentheses and may itself contain spaces and
// parentheses, so the fields are counted from the last ')'.
func ParseProc(b []byte) (Proc, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Proc{}, fmt.Errorf("%w: /proc/<pid>/stat without a command name", ErrFormat)
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return Proc{}, fmt.Errorf("%w: /proc/<pid>/stat has %d fields after the command name", ErrFormat, len(fields))
	}
	u, err1 := strconv.ParseUint(fields[utime], 10, 64)
	s, err2 := strconv.ParseUint(fields[stime], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return Proc{}, fmt.Errorf("%w: /proc/<pid>/stat: %v", ErrFormat, err)
	}
	return Proc{UTime: u, STime: s}, nil
}

// Duration converts ticks to a duration.
func Duration(ticks uint64) time.Duration { return time.Duration(ticks) * tick }

// LoadAvg returns the one-minute load average from /proc/loadavg.
func LoadAvg() (float64, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, err
	}
	return ParseLoadAvg(b)
}

// ParseLoadAvg parses the first field of a /proc/loadavg file.
func ParseLoadAvg(b []byte) (float64, error) {
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0, fmt.Errorf("%w: empty /proc/loadavg", ErrFormat)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return 0, fmt.Errorf("%w: /proc/loadavg: %v", ErrFormat, err)
	}
	return v, nil
}

// PIDsByComm returns the processes whose command name (/proc/<pid>/comm)
// starts with prefix, for example "ksoftirqd/" for the kernel's softirq
// threads.
func PIDsByComm(prefix string) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil {
			continue // gone meanwhile
		}
		if strings.HasPrefix(string(b), prefix) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// SumProcs returns the summed CPU time of the processes; ones that have
// exited are left out.
func SumProcs(pids []int) uint64 {
	var sum uint64
	for _, pid := range pids {
		if p, err := ReadProc(pid); err == nil {
			sum += p.Total()
		}
	}
	return sum
}
