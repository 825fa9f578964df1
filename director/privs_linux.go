//go:build linux

package director

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// capNames are Linux's capabilities by number (include/uapi/linux/
// capability.h, Linux 5.9 and later: 0 to CAP_LAST_CAP 40).
var capNames = [...]string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// capMask turns capability names into a mask.
func capMask(names []string) (uint64, error) {
	var m uint64
	for _, n := range names {
		i := -1
		for j, cn := range capNames {
			if cn == n {
				i = j
			}
		}
		if i < 0 {
			return 0, fmt.Errorf("unknown capability %q", n)
		}
		m |= 1 << i
	}
	return m, nil
}

// capNamesOf lists a mask's capabilities by name (by number beyond the
// names known here).
func capNamesOf(m uint64) []string {
	var out []string
	for i := range 64 {
		if m&(1<<i) == 0 {
			continue
		}
		if i < len(capNames) {
			out = append(out, capNames[i])
		} else {
			out = append(out, "cap_"+strconv.Itoa(i))
		}
	}
	return out
}

// lastCap is the kernel's highest capability number.
func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 0 && n < 64 {
			return n
		}
	}
	return len(capNames) - 1
}

func dropPrivileges(keepNames []string) (Privileges, error) {
	keep, err := capMask(keepNames)
	if err != nil {
		return Privileges{}, err
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return Privileges{}, fmt.Errorf("capget: %w", err)
	}
	effective := uint64(data[0].Effective) | uint64(data[1].Effective)<<32
	permitted := uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32

	// no_new_privs first: it needs no capability, and from here on no
	// execve of this process (a check command, say) can gain any.
	if _, _, e := syscall.AllThreadsSyscall6(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); e != 0 {
		if e == syscall.ENOTSUP {
			return Privileges{}, ErrCgo
		}
		return Privileges{}, fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", e)
	}
	// The bounding set, while CAP_SETPCAP is still effective (without it
	// the bounding set stays: nothing can be gained from it anyway once
	// no_new_privs is set and the permitted set is reduced).
	if effective&(1<<unix.CAP_SETPCAP) != 0 {
		for c := range lastCap() + 1 {
			if keep&(1<<c) != 0 {
				continue
			}
			if in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err != nil || in != 1 {
				continue
			}
			if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0); e != 0 {
				return Privileges{}, fmt.Errorf("prctl(PR_CAPBSET_DROP, %s): %w", capNamesOf(1 << c)[0], e)
			}
		}
	}
	// Ambient capabilities (Linux 4.3 and later; EINVAL before).
	if _, _, e := syscall.AllThreadsSyscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); e != 0 && e != syscall.EINVAL {
		return Privileges{}, fmt.Errorf("prctl(PR_CAP_AMBIENT_CLEAR_ALL): %w", e)
	}
	// Effective and permitted: what is kept (of what there was);
	// inheritable: nothing. Lowering needs no capability.
	want := keep & permitted
	data = [2]unix.CapUserData{
		{Effective: uint32(want), Permitted: uint32(want)},
		{Effective: uint32(want >> 32), Permitted: uint32(want >> 32)},
	}
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return Privileges{}, fmt.Errorf("capset: %w", e)
	}
	return checkThreads(want)
}

// checkThreads reads every thread's capability sets and no_new_privs
// from /proc/self/task/*/status and checks them against want.
func checkThreads(want uint64) (Privileges, error) {
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) == 0 {
		return Privileges{}, fmt.Errorf("listing the threads in /proc/self/task: %v", err)
	}
	p := Privileges{Kept: capNamesOf(want)}
	var bounding uint64
	var errs []error
	for _, path := range tasks {
		st, err := readTaskStatus(path)
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread has exited
		}
		if err != nil {
			return Privileges{}, err
		}
		p.Threads++
		if st.CapEff != want || st.CapPrm != want || st.CapInh != 0 || st.CapAmb != 0 || !st.NoNewPrivs {
			errs = append(errs, fmt.Errorf("thread %s still has effective %s, permitted %s, inheritable %s, ambient %s, no_new_privs %v",
				filepath.Base(filepath.Dir(path)), capList(capNamesOf(st.CapEff)), capList(capNamesOf(st.CapPrm)),
				capList(capNamesOf(st.CapInh)), capList(capNamesOf(st.CapAmb)), st.NoNewPrivs))
		}
		bounding |= st.CapBnd
	}
	p.Bounding = capNamesOf(bounding)
	return p, errors.Join(errs...)
}

// taskStatus is the part of /proc/PID/task/TID/status about privileges.
type taskStatus struct {
	CapInh, CapPrm, CapEff, CapBnd, CapAmb uint64
	NoNewPrivs                             bool
}

// readTaskStatus reads a thread's (or process's) status file.
func readTaskStatus(path string) (taskStatus, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return taskStatus{}, err
	}
	var st taskStatus
	fields := map[string]*uint64{"CapInh": &st.CapInh, "CapPrm": &st.CapPrm, "CapEff": &st.CapEff,
		"CapBnd": &st.CapBnd, "CapAmb": &st.CapAmb}
	seen := 0
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if p := fields[k]; p != nil {
			if *p, err = strconv.ParseUint(v, 16, 64); err != nil {
				return taskStatus{}, fmt.Errorf("%s: %s: %w", path, k, err)
			}
			seen++
		}
		if k == "NoNewPrivs" {
			st.NoNewPrivs = v == "1"
		}
	}
	if seen != len(fields) {
		return taskStatus{}, fmt.Errorf("%s: capability lines missing", path)
	}
	return st, nil
}
