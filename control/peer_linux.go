package control

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerGroupsGuess is the number of groups peerGroups first makes room
// for: a user is rarely in more, and when it is the kernel says how much
// room it needs.
const peerGroupsGuess = 32

// peerGroups returns the supplementary group ids of the process at the
// other end of the connected unix socket fd, as they were when it called
// connect (getsockopt SOL_SOCKET SO_PEERGROUPS, Linux 4.13 and later). The
// ids are as seen from the caller's user namespace.
//
// x/sys has no wrapper for an option that returns an array of gid_t, so
// this calls getsockopt itself.
func peerGroups(fd int) ([]uint32, error) {
	n := peerGroupsGuess
	// The peer's groups are fixed at connect time, so one retry with the
	// size the kernel asked for is enough; the bound only guards against
	// a kernel that keeps answering ERANGE.
	for range 3 {
		buf := make([]uint32, n)
		size := uint32(len(buf) * 4) // socklen_t, in bytes
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch {
		case errno == unix.ERANGE:
			// The kernel wrote the size it needs (ngroups *
			// sizeof(gid_t)) to size.
			if need := int(size / 4); need > n {
				n = need
			} else {
				n *= 2
			}
			continue
		case errno != 0:
			return nil, errno
		}
		if size%4 != 0 || int(size/4) > len(buf) {
			return nil, fmt.Errorf("getsockopt SO_PEERGROUPS returned %d bytes for a %d-byte buffer", size, len(buf)*4)
		}
		return buf[: size/4 : size/4], nil
	}
	return nil, errors.New("getsockopt SO_PEERGROUPS kept asking for a larger buffer")
}
