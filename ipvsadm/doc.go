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
// saved --fullnat), one list option, --json (see below), one command,
// --trace on|off [-t|-u service] (switches gvs's frame trace on or off
// for every service or one; it takes no other option, prints nothing on
// success and the daemon's message on refusal, exit 255, and cannot be
// restored), and a line for each in -h. -v prints
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
//
// A user the daemon does not admit (EPERM: neither root nor a member of
// the group of gvs --socket-group) gets the daemon's message, such as
// "gvsadm: permission denied: uid 1000 is neither root nor a member of
// group gvsadm (gid 4343)", and exit status 2, whatever the command:
// ipvsadm run by a user the kernel refuses fails the same way before any
// command ("Can't initialize ipvs: Permission denied (you must be root)",
// exit 2), but gvsadm names the group that would let the user in. When the
// socket file's mode refuses the user, connecting fails with "cannot
// reach gvs at PATH: permission denied", also exit 2.
//
// # JSON listing
//
// gvsadm -L --json (also -l, and with -n, -c or a service) is gvs's own:
// one JSON document for scripts instead of the listing. --json is a long
// option only, allowed with the list command only (elsewhere it is
// refused as ipvsadm refuses an option the command does not take) and not
// with --timeout or --daemon. -c adds the connections; a service (-t, -u)
// lists only that service ("No such service", exit 1, if there is none);
// --nosort keeps the daemon's order. Other list options (-n, --stats,
// --rate, --exact, --thresholds, --persistent-conn, --tun-info) change
// nothing: the document always carries every counter, exact (never
// scaled to K, M, ...), and numeric addresses (names are never looked
// up). Errors print ipvsadm's message and status and no document.
//
// The document is indented with two spaces and ends with a newline. Its
// fields always appear, in this order (a path per line; [] marks the
// elements of an array); integers are exact JSON integers up to 2^64-1
// (parse them as 64-bit integers, not as doubles):
//
//	schema                           integer  the schema version, JSONSchema (1)
//	version                          string   gvs's version ("" if the daemon did not say)
//	ipvs_version                     string   the IPVS version gvs follows, "1.2.1"
//	conn_table_size                  integer  the connection table's size, as -L prints "size=N"
//	services                         array    the services, sorted as -L sorts them; [] if none
//	services[].protocol              string   "TCP" or "UDP"
//	services[].address               string   the virtual address, "192.168.150.100"
//	services[].port                  integer  the virtual port
//	services[].scheduler             string   "rr", "wlc", ...
//	services[].flags                 array    scheduler flags as strings, as -b takes them
//	                                          ("sh-fallback", "sh-port", "flag-1", ...); [] if none
//	services[].persistent            boolean  -p
//	services[].timeout               integer  the persistence timeout in seconds; 0 if not persistent
//	services[].netmask               string   the persistence netmask (-M), "255.255.255.255" by default
//	services[].one_packet            boolean  one-packet scheduling (-o)
//	services[].pe                    string   the persistence engine (--pe); "" if none
//	services[].stats                 object   the --stats counters since the last -Z:
//	services[].stats.conns           integer  connections scheduled
//	services[].stats.in_pkts         integer  packets in (client to server)
//	services[].stats.out_pkts        integer  packets out
//	services[].stats.in_bytes        integer  bytes in
//	services[].stats.out_bytes       integer  bytes out
//	services[].rates                 object   the --rate columns, per second:
//	services[].rates.cps             integer  connections
//	services[].rates.in_pps          integer  packets in
//	services[].rates.out_pps         integer  packets out
//	services[].rates.in_bps          integer  bytes in
//	services[].rates.out_bps         integer  bytes out
//	services[].dests                 array    the real servers, sorted as -L sorts them; [] if none
//	services[].dests[].address       string   the real server's address
//	services[].dests[].port          integer  its port
//	services[].dests[].forward       string   "Route" (-g), "Masq" (-m), "Tunnel" (-i) or "FullNat" (--fullnat)
//	services[].dests[].weight        integer  -w
//	services[].dests[].active_conns  integer  ActiveConn
//	services[].dests[].inactive_conns integer InActConn
//	services[].dests[].persist_conns integer  PersistConn (persistence templates)
//	services[].dests[].u_threshold   integer  -x; 0 means none
//	services[].dests[].l_threshold   integer  -y; 0 means none
//	services[].dests[].stats         object   as services[].stats, with the same fields
//	services[].dests[].stats.conns   integer
//	services[].dests[].stats.in_pkts integer
//	services[].dests[].stats.out_pkts integer
//	services[].dests[].stats.in_bytes integer
//	services[].dests[].stats.out_bytes integer
//	services[].dests[].rates         object   as services[].rates, with the same fields
//	services[].dests[].rates.cps     integer
//	services[].dests[].rates.in_pps  integer
//	services[].dests[].rates.out_pps integer
//	services[].dests[].rates.in_bps  integer
//	services[].dests[].rates.out_bps integer
//	connections                      array    only with -c: the connection table as -Lc lists it; [] if empty
//	connections[].protocol           string   "TCP" or "UDP"
//	connections[].source             object   the client: address (string) and port (integer)
//	connections[].source.address     string
//	connections[].source.port        integer
//	connections[].virtual            object   the virtual service's address and port
//	connections[].virtual.address    string
//	connections[].virtual.port       integer
//	connections[].destination        object   the real server's address and port
//	connections[].destination.address string
//	connections[].destination.port   integer
//	connections[].state              string   "ESTABLISHED", "SYN_RECV", "TIME_WAIT", "UDP", "NONE", ...
//	connections[].expires            integer  seconds before the entry expires (-Lc prints mm:ss)
//	connections[].template           boolean  a persistence template rather than a connection
//
// Compatibility: within schema 1, fields are never removed, renamed or
// given another meaning, and their order stays; new fields may be added
// (ignore the ones you do not know). Anything else raises the schema. The
// golden files testdata/json*.golden show whole documents.
package ipvsadm
