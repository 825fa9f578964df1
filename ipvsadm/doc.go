// Package ipvsadm is gvsadm: a drop-in for ipvsadm 1.31 that drives the
// gvs daemon over its control socket instead of the kernel's IPVS.
//
// Everything a script can observe is ipvsadm's: the commands and options
// (with popt's grammar: combined short options such as -Ln or -At addr,
// --long=arg, -p's optional argument, options in any order after the
// command), the argument rules (inet_aton addresses, names resolved after
// numbers, the command/option matrix), the error messages and exit
// statuses (2 for a refused line, 255 for popt errors and for requests the
// daemon refuses, 1 for failed listings), the listings byte for byte
// (including truncated names, K/M/G/T scaling and libipvs's sort order,
// whose address comparison wraps around), and the -S/-R format.
//
// The source of truth is ipvsadm 1.31 itself: ipvsadm.c and
// libipvs/libipvs.c as released on 2019/12/24 (read from the louygan/ipvsadm
// mirror, which carries IPVSADM_VERSION_DATE "2019/12/24" and the GRE
// patch), and popt 1.16+ for the option grammar. Comments name the C
// functions each piece follows.
//
// # Structure
//
// Parse turns one command line into a Command (also used for each line
// of -R); Command.Request turns a configuration command into the
// control.Request gvs applies. WriteList, WriteService, WriteConns and
// WriteTimeouts print the listings from reply data, resolving names
// through a Names (SystemNames in production, StaticNames in tests, so
// golden files are deterministic). Main ties these to a Doer, which
// cmd/gvsadm implements with the control socket.
//
// # Differences from ipvsadm
//
// gvs has no fwmark or SCTP services, no IPv6, no GUE or GRE tunnels and
// no connection sync daemon: the options are accepted and checked exactly
// as ipvsadm checks them, then refused with a message saying so (exit 2;
// the error matches ErrNotSupported). Persistence netmasks must be
// contiguous and not 0.0.0.0, because the protocol carries a prefix
// length. gvsadm adds one forwarding method, --fullnat (listed FullNat,
// saved --fullnat), and one line for it in -h. -v prints
// "gvsadm vX.Y.Z (compatible with ipvsadm v1.31, IPVS v1.2.1)".
//
// -R parses the whole input before sending anything, then sends it as one
// batch that gvs applies all or nothing (ipvsadm applies line by line and
// stops at the first bad line, keeping what it did). Errors name the line.
// Blank lines and '#' comments are skipped, a leading "ipvsadm" or
// "gvsadm" word is dropped, and listing commands are refused.
//
// Daemon errors print libipvs's ipvs_strerror text for the operation
// ("Service already exists", "No such destination", ...), except for codes
// gvs uses with its own meaning (EOPNOTSUPP, EMSGSIZE, EPROTONOSUPPORT,
// EIO) and unknown ones, whose daemon message is printed.
package ipvsadm
