package director

import (
	"errors"
	"fmt"
	"strings"
)

// What gvs keeps of root's powers once it serves.
//
// Everything gvs needs a privilege for happens in New: the AF_PACKET rings
// and ARP sockets (CAP_NET_RAW), the nftables table (CAP_NET_ADMIN), the
// control socket (CAP_CHOWN for --socket-group). After that, while it
// serves, gvs:
//
//   - reads and writes frames on sockets already open (no capability: the
//     kernel checks CAP_NET_RAW when a packet socket is created, not when
//     it is used);
//   - rewrites its nftables sets whenever gvsadm or a reload changes the
//     services, and deletes its table at exit: every nfnetlink message
//     needs CAP_NET_ADMIN (nfnetlink_rcv checks it for the sending
//     thread), and the socket is opened in the thread's own namespace, so
//     no setns (ingress.Filter.Set);
//   - asks the routing table for next hops and lists addresses (rtnetlink
//     dumps and RTM_GETROUTE: no capability);
//   - accepts gvsadm's connections and reads their credentials
//     (SO_PEERCRED: no capability), removes the socket file at exit (its
//     owner, root, may);
//   - reads the --rules file again on SIGHUP: as plain root, so the file
//     must be readable by its owner root (or by everyone) without
//     CAP_DAC_OVERRIDE, as /etc files are.
//
// So gvs keeps CAP_NET_ADMIN and nothing else (KeptCapabilities). It drops
// the rest from the effective, permitted, inheritable and ambient sets
// and from the bounding set, and sets no_new_privs, on every thread:
// capability sets belong to threads in Linux, and a Go program has many;
// syscall.AllThreadsSyscall runs the system call on each of them. Go
// provides that only in programs built without cgo: `make build` builds
// gvs with CGO_ENABLED=0. A gvs built with cgo (a plain `go build` on a
// host with a C compiler, or -race) cannot drop them and says so at start.
// The uid stays 0: files owned by root remain writable to gvs.

// KeptCapabilities are the capabilities gvs keeps after start.
var KeptCapabilities = []string{"CAP_NET_ADMIN"}

// ErrCgo is returned by DropPrivileges in a gvs built with cgo, where Go
// cannot change the capabilities of all threads.
var ErrCgo = errors.New("this gvs was built with cgo, where Go cannot change the capabilities of every thread " +
	"(build it with CGO_ENABLED=0, as make build does)")

// Privileges is what DropPrivileges left the process with.
type Privileges struct {
	// Kept are the capabilities every thread still has (effective and
	// permitted), by name.
	Kept []string
	// Bounding are the capabilities left in the bounding set (all of
	// Kept, and more only if gvs could not drop them: without
	// CAP_SETPCAP).
	Bounding []string
	// Threads is how many threads were checked.
	Threads int
}

func (p Privileges) String() string {
	return fmt.Sprintf("effective and permitted: %s; bounding set: %s; on %d threads",
		capList(p.Kept), capList(p.Bounding), p.Threads)
}

func capList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}

// DropPrivileges drops every capability but KeptCapabilities on every
// thread of the process, and sets no_new_privs, so that nothing gvs runs
// later can gain privileges. Call it once New has opened everything and
// the start-up rules are loaded. It checks the result in
// /proc/self/task/*/status and returns what remains. In a gvs built with
// cgo it changes nothing and returns ErrCgo.
func (d *Director) DropPrivileges() (Privileges, error) {
	return dropPrivileges(KeptCapabilities)
}
