package ipvsadm

import (
	"errors"
	"fmt"

	"github.com/gvs-project/gvs/control"
)

// Exit statuses, as ipvsadm 1.31 returns them.
const (
	// ExitOK is a successful command.
	ExitOK = 0
	// ExitList is a failed listing: ipvsadm calls exit(1) when
	// ipvs_get_services, ipvs_get_service or ipvs_get_timeout fails.
	ExitList = 1
	// ExitFail is ipvsadm's fail(2, ...): a bad argument or option
	// combination, and "Can't initialize ipvs".
	ExitFail = 2
	// ExitCommand is the status of a command the kernel (here the daemon)
	// refused, and of popt errors and "Try `ipvsadm -h'": ipvsadm's main
	// returns -1, which the shell sees as 255.
	ExitCommand = 255
)

// ErrNotSupported is matched (errors.Is) by every error about an ipvsadm
// feature that gvs does not have (fwmark and SCTP services, IPv6, GUE and
// GRE tunnels, the sync daemon).
var ErrNotSupported = errors.New("not supported by gvs")

// Error is a command line that gvsadm refuses, or a request the daemon
// refused. Msg is the text ipvsadm prints for the same mistake (without
// the trailing newline) and Status its exit status.
type Error struct {
	Status int
	Msg    string
	// unsupported marks gvs limitations (see ErrNotSupported).
	unsupported bool
}

func (e *Error) Error() string { return e.Msg }

// Is reports whether target is ErrNotSupported and e is a gvs limitation.
func (e *Error) Is(target error) bool { return target == ErrNotSupported && e.unsupported }

func fail(format string, args ...any) *Error {
	return &Error{Status: ExitFail, Msg: fmt.Sprintf(format, args...)}
}

func unsupported(format string, args ...any) *Error {
	return &Error{Status: ExitFail, Msg: fmt.Sprintf(format, args...), unsupported: true}
}

// libFunc names the libipvs function whose errno ipvs_strerror
// translates; its message table is keyed by function and errno.
type libFunc int

const (
	fnGeneric libFunc = iota // ipvs_flush, ipvs_set_timeout, ...: generic rows only
	fnAddService
	fnUpdateService
	fnDelService
	fnZeroService
	fnAddDest
	fnUpdateDest
	fnDelDest
	fnGetServices
	fnGetDests
	fnGetService
	fnAddLaddr // DPVS's dpvs_add_laddr
	fnDelLaddr // DPVS's dpvs_del_laddr
)

// strerrorRow is one row of libipvs's ipvs_strerror table
// (libipvs/libipvs.c, ipvsadm 1.31). fn == fnGeneric matches any function.
type strerrorRow struct {
	fn   libFunc
	code string
	msg  string
}

var strerrorTable = []strerrorRow{
	{fnAddService, "EEXIST", "Service already exists"},
	{fnAddService, "ENOENT", "Scheduler or persistence engine not found"},
	{fnUpdateService, "ESRCH", "No such service"},
	{fnUpdateService, "ENOENT", "Scheduler or persistence engine not found"},
	{fnDelService, "ESRCH", "No such service"},
	{fnZeroService, "ESRCH", "No such service"},
	{fnAddDest, "ESRCH", "Service not defined"},
	{fnAddDest, "EEXIST", "Destination already exists"},
	{fnUpdateDest, "ESRCH", "Service not defined"},
	{fnUpdateDest, "ENOENT", "No such destination"},
	{fnDelDest, "ESRCH", "Service not defined"},
	{fnDelDest, "ENOENT", "No such destination"},
	{fnGetServices, "ESRCH", "No such service"},
	{fnGetDests, "ESRCH", "No such service"},
	{fnGetService, "ESRCH", "No such service"},
	// DPVS's ipvsadm, for the local-address commands gvsadm borrows.
	{fnAddLaddr, "ESRCH", "Service not defined"},
	{fnAddLaddr, "EEXIST", "Local address already exists"},
	{fnDelLaddr, "ESRCH", "Service not defined"},
	{fnDelLaddr, "ENOENT", "No such local address"},
	// EPERM: "Permission denied (you must be root)"; see daemonOwnCodes.
	{fnGeneric, "EPERM", "Permission denied (you must be root)"},
	{fnGeneric, "EINVAL", "Invalid operation.  Possibly wrong module version, address not unicast, ..."},
	{fnGeneric, "ENOPROTOOPT", "Protocol not available"},
	{fnGeneric, "ENOMEM", "Memory allocation problem"},
	// libipvs also maps EOPNOTSUPP ("Operation not supported with IPv6")
	// and EMSGSIZE ("Module is wrong version"). gvs uses those codes for
	// other things (a missing feature, an oversized request), so for them
	// the daemon's own message is printed instead; see daemonOwnCodes.
	{fnGeneric, "EAFNOSUPPORT", "Operation not supported with specified address family"},
}

// daemonOwnCodes are the codes whose daemon Message is printed as it is,
// because libipvs's text for the errno would mislead.
var daemonOwnCodes = map[string]bool{
	// libipvs says "Permission denied (you must be root)"; gvs may also
	// admit a group, and its message names the peer's uid and the group.
	control.CodePermission:   true,
	control.CodeNotSupported: true,
	control.CodeTooLarge:     true,
	control.CodeVersion:      true,
	control.CodeInternal:     true,
	control.CodeBusy:         true, // strerror's "Device or resource busy" would not say to retry
}

// strerrorText is glibc's strerror for the errno names that can reach
// ipvs_strerror's fallback.
var strerrorText = map[string]string{
	"EEXIST": "File exists",
	"ESRCH":  "No such process",
	"ENOENT": "No such file or directory",
	"EBUSY":  "Device or resource busy",
	"EAGAIN": "Resource temporarily unavailable",
	"ENOSPC": "No space left on device",
	"ERANGE": "Numerical result out of range",
}

// ipvsStrerror returns the text ipvsadm prints for a daemon error raised
// by the operation fn: libipvs's ipvs_strerror for the codes it knows, the
// daemon's Message otherwise.
func ipvsStrerror(fn libFunc, e *control.Error) string {
	if daemonOwnCodes[e.Code] {
		return e.Message
	}
	for _, r := range strerrorTable {
		if (r.fn == fnGeneric || r.fn == fn) && r.code == e.Code {
			return r.msg
		}
	}
	if s, ok := strerrorText[e.Code]; ok {
		return s
	}
	if e.Message != "" {
		return e.Message
	}
	return e.Code
}

// opFunc is the libipvs function ipvsadm calls for a request op.
func opFunc(op control.Op) libFunc {
	switch op {
	case control.OpAddService:
		return fnAddService
	case control.OpEditService:
		return fnUpdateService
	case control.OpDelService:
		return fnDelService
	case control.OpZero:
		return fnZeroService
	case control.OpAddDest:
		return fnAddDest
	case control.OpEditDest:
		return fnUpdateDest
	case control.OpDelDest:
		return fnDelDest
	case control.OpAddLaddr:
		return fnAddLaddr
	case control.OpDelLaddr:
		return fnDelLaddr
	}
	return fnGeneric
}
