// Package control is the control channel between gvsadm and the gvs
// daemon: the messages (message.go), the server gvs runs on its unix
// socket (server.go), and the client gvsadm uses (client.go).
//
// This comment is the protocol's reference: a client written from it
// alone, in any language, must work. It follows message.go, which is
// authoritative if they ever disagree (and that is a bug to fix here).
//
// # Transport and framing
//
// The transport is a unix stream socket, by default /run/gvs.sock (gvs
// --socket PATH, or $GVS_SOCKET for both programs). Every message is one
// JSON object (RFC 8259, UTF-8) on one line, terminated by '\n'. A message
// is at most MaxMessageSize (8 MiB) bytes, not counting its '\n'.
//
// The client sends requests; the server answers each with exactly one
// reply, in order, and keeps the connection open for the next request.
// A client may send several requests on one connection (gvsadm -L sends
// "info" then "list"), and should wait for each reply before sending the
// next. A final line without '\n' is never answered. The server closes a
// connection that sends nothing for 5 minutes (ServerConfig.IdleTimeout).
//
// Field names are as listed below, in lower case with underscores. The
// server also matches them regardless of case (it decodes with Go's
// encoding/json); clients must not rely on that. An omitted field has its
// zero value (0, "", false, null, or an empty list). Addresses are
// strings in dotted or colon form ("192.168.150.100", "::1"); an
// address:port pair is one string ("192.168.150.200:47554").
//
// # Versions
//
// This is version 1 (Version). Every request carries "version"; a reply
// carries the server's. There is no negotiation: a server speaks one
// version, and gvs and gvsadm of one release speak the same one.
//
//   - A request whose version is not the server's is refused with
//     EPROTONOSUPPORT, whatever else it holds: the version is checked
//     before the rest of the request is decoded, so a newer client sending
//     fields this server does not know learns about the version, not the
//     fields. A missing or null version is refused the same way; a version
//     that is not a number is EINVAL.
//   - The commands of a batch may carry a version too; if they do, it
//     must be the same (EPROTONOSUPPORT, Index set, otherwise).
//   - Within a version, the server may add: reply fields (clients must
//     ignore reply fields they do not know), optional request fields whose
//     absence keeps the old behaviour, ops, and error codes (a client
//     must treat an unknown code as a failure and show Message). An old
//     server refuses a new field or op with EINVAL, changing nothing.
//   - Removing or renaming a field, or changing what a field, op or code
//     means, raises the version.
//
// # Who may connect
//
// The socket file is created owned by the daemon's user (root) with mode
// 0600: only root can connect. gvs --socket-group GROUP (ServerConfig.Group:
// a name, or a numeric gid that needs no group entry) gives the file that
// group and mode 0660, so that the group's members can connect too. The
// file mode is set before anyone else can reach the socket.
//
// The file mode is not the only check. For every connection the server
// reads the peer's credentials as the kernel recorded them at connect
// time: uid, primary gid and pid (SO_PEERCRED) and the supplementary
// groups (SO_PEERGROUPS; SO_PEERCRED carries only the primary group). It
// serves root, the daemon's own uid, and, with a group, every peer whose
// primary group or any supplementary group is that group. Anyone else is
// refused even if the file was made readable to everyone: the server
// reads the first request (waiting at most 5 seconds), answers it with
// EPERM, for example
//
//	{"version":1,"error":{"code":"EPERM","message":"permission denied: uid 1000 is neither root nor a member of group gvsadm (gid 4343)","index":-1}}
//
// and closes the connection. Nothing from a refused peer reaches the
// daemon's handler, so it changes nothing. (gvsadm prints the message and
// exits with status 2, as ipvsadm does when the kernel refuses a user.) A
// peer whose file access is refused by the mode never connects; gvsadm
// then reports "permission denied" from connect.
//
// # Checks before anything is done
//
// In order, the server refuses with an error reply, and without acting on
// the request:
//
//   - a line longer than MaxMessageSize: EMSGSIZE, and the connection is
//     closed (the rest of the line is not read);
//   - a line that is not exactly one JSON object (not JSON, an array,
//     null, data after the object, ...): EINVAL;
//   - a version other than the server's: EPROTONOSUPPORT (above);
//   - a field the request or one of its objects does not have, or a
//     value of the wrong type (a string port, a malformed address):
//     EINVAL;
//   - an op this version does not have: EINVAL;
//   - "commands" on any op but "batch", and inside a batch an op that does
//     not change the configuration ("batch", "list", "conns", "timeouts",
//     "info") or a command carrying commands of its own: EINVAL, with
//     Index naming the command for the ones inside a batch.
//
// The daemon then checks the request's meaning (a service address, a known
// scheduler, the limits of a timeout, ...) and refuses it with the codes
// below, again changing nothing.
//
// # Requests
//
// A request is an object with these fields:
//
//	version   integer   Version, 1
//	op        string    the operation, below
//	service   object    a Service: the service a command is about (its key:
//	                    protocol, addr, port) and for add-service and
//	                    edit-service its settings
//	dest      object    a Dest: the real server of add-dest, edit-dest, del-dest
//	laddr     string    the FULLNAT local address of add-laddr, del-laddr
//	timeouts  object    a Timeouts: the values of set-timeouts
//	trace     string    "on" or "off", for trace
//	commands  array     the requests of a batch (same fields; "version" optional)
//
// Each op, with what it reads (other fields are ignored) and what its
// reply carries on success; every reply may instead carry "error":
//
//	op             ipvsadm       request fields                  reply on success
//	add-service    -A            service (key and settings)      nothing
//	edit-service   -E            service (key and settings)      nothing
//	del-service    -D            service (key)                   nothing
//	clear          -C            -                               nothing
//	add-dest       -a            service (key), dest             nothing
//	edit-dest      -e            service (key), dest             nothing
//	del-dest       -d            service (key), dest (addr, port) nothing
//	zero           -Z            service (key) or none for all   nothing
//	set-timeouts   --set         timeouts                        nothing
//	batch          -R            commands                        nothing
//	list           -L            service (key) or none for all   services
//	conns          -L -c         -                               conns
//	timeouts       -L --timeout  -                               timeouts
//	info           (-L header)   -                               info
//	add-laddr      -P (gvs)      service (key), laddr            nothing
//	del-laddr      -Q (gvs)      service (key), laddr            nothing
//	trace          --trace (gvs) trace, service (key) or none    nothing
//
// add-laddr gives a service a FULLNAT local address: the source address of
// its FULLNAT connections towards the real servers (ports taken from a
// pool per address). gvs owns it (answers ARP for it); it must not be an
// address of the director's kernel (EREFUSED). list shows them
// (local_addrs), as DPVS's ipvsadm -G does.
//
// trace switches gvs's frame trace (gvs --trace; see package trace) on
// or off while gvs runs: "on" without a service traces every service,
// with one adds that service; "off" without a service stops tracing,
// with one removes that service. It is not a batch command and changes
// no configuration (gvsadm -S does not save it). Errors: EINVAL for a
// trace value other than "on" and "off", or for switching one service
// off while every service is traced (switch off, then on for the
// services wanted); ESRCH for "on" with a service that does not exist;
// ENOENT for "off" with a service that is not traced; EOPNOTSUPP from a
// gvs built without the trace (-tags notrace).
//
// add-service and edit-service set every setting: edit-service replaces
// the whole service as the kernel's edit does (an empty scheduler means
// wlc), so gvsadm always sends all of them.
// edit-dest likewise sets forward, weight and both thresholds, unless
// dest.set lists the fields to change (see Dest). set-timeouts leaves a
// value of 0 unchanged; each value is at most 2678400 s (31 days, ipvsadm's
// limit). list with a service answers that one service or ESRCH. batch
// applies its commands all or nothing, in order: if one fails, none is
// applied, and the error's Index is the 0-based position of the command
// to blame (-1 if the failure is not one command's).
//
// Examples (one line each; wrapped here):
//
//	→ {"version":1,"op":"add-service","service":{"protocol":"tcp","addr":"192.168.150.100","port":80,"scheduler":"rr"}}
//	← {"version":1}
//	→ {"version":1,"op":"add-dest","service":{"protocol":"tcp","addr":"192.168.150.100","port":80},
//	   "dest":{"addr":"192.168.150.12","port":80,"forward":"route","weight":1}}
//	← {"version":1,"error":{"code":"EEXIST","message":"... destination already exists","index":-1}}
//	→ {"version":1,"op":"edit-dest","service":{"protocol":"tcp","addr":"192.168.150.100","port":80},
//	   "dest":{"addr":"192.168.150.12","port":80,"weight":5,"set":["weight"]}}
//	← {"version":1}
//	→ {"version":1,"op":"batch","commands":[{"op":"clear"},
//	   {"op":"add-service","service":{"protocol":"udp","addr":"192.168.150.100","port":53,"scheduler":"sh","sched_flags":["sh-port"]}},
//	   {"op":"set-timeouts","timeouts":{"tcp":900,"tcp_fin":120,"udp":300}}]}
//	← {"version":1}
//	→ {"version":1,"op":"list","service":{"protocol":"tcp","addr":"192.168.150.100","port":80}}
//	← {"version":1,"services":[{"protocol":"tcp","addr":"192.168.150.100","port":80,"scheduler":"rr",
//	   "dests":[{"addr":"192.168.150.12","port":80,"forward":"route","weight":5,"active_conns":1,
//	   "inactive_conns":0,"persist_conns":0,"stats":{"conns":1,"in_pkts":6,"out_pkts":0,"in_bytes":432,"out_bytes":0},
//	   "rates":{"conns":0,"in_pkts":0,"out_pkts":0,"in_bytes":0,"out_bytes":0}}],
//	   "stats":{"conns":1,"in_pkts":6,"out_pkts":0,"in_bytes":432,"out_bytes":0},
//	   "rates":{"conns":0,"in_pkts":0,"out_pkts":0,"in_bytes":0,"out_bytes":0}}]}
//	→ {"version":1,"op":"conns"}
//	← {"version":1,"conns":[{"protocol":"tcp","client":"192.168.150.200:47554","virtual":"192.168.150.100:80",
//	   "dest":"192.168.150.12:80","state":"ESTABLISHED","expires":899}]}
//	→ {"version":1,"op":"timeouts"}
//	← {"version":1,"timeouts":{"tcp":900,"tcp_fin":120,"udp":300}}
//	→ {"version":1,"op":"info"}
//	← {"version":1,"info":{"version":"0.1.0","ipvs_version":"1.2.1","conn_table_size":4096}}
//	→ {"version":1,"op":"trace","trace":"on","service":{"protocol":"tcp","addr":"192.168.150.100","port":80}}
//	← {"version":1}
//	→ {"version":1,"op":"list","filter":"tcp"}
//	← {"version":1,"error":{"code":"EINVAL","message":"malformed request: json: unknown field \"filter\"","index":-1}}
//
// # Replies
//
// A reply is an object with these fields; "version" is always there, the
// others only when they have something (an empty list is left out):
//
//	version   integer   the server's Version
//	error     object    an Error: the request was refused and changed nothing
//	services  array     Services, for list
//	conns     array     Conns, for conns
//	timeouts  object    Timeouts, for timeouts
//	info      object    Info, for info
//
// # Objects
//
// Service (the key is protocol, addr and port; in requests the counters
// and dests are ignored):
//
//	protocol     string    "tcp" or "udp"
//	addr         string    the virtual address
//	port         integer   the virtual port, 0..65535
//	scheduler    string    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", ...
//	sched_flags  array     scheduler flags as ipvsadm -b names them: "sh-fallback", "sh-port",
//	                       "mh-fallback", "mh-port", "flag-1", "flag-2", "flag-3"
//	persistent   boolean   -p
//	timeout      integer   the persistence timeout in seconds (with persistent)
//	netmask      integer   the persistence mask (-M) as a prefix length; 0 means 32
//	one_packet   boolean   one-packet scheduling (-o)
//	pe           string    a persistence engine (--pe); gvs has none and refuses one
//	dests        array     in replies, the real servers (Dest)
//	stats        object    in replies, the counters (Stats)
//	rates        object    in replies, the rates (Stats, per second)
//	local_addrs  array     in replies, the FULLNAT local addresses (add-laddr)
//
// Dest (the key within its service is addr and port):
//
//	addr            string    the real server's address
//	port            integer   its port (for route and tunnel, ipvsadm sends the service's)
//	forward         string    "route" (DR, -g, the default if empty), "masq" (NAT, -m),
//	                          "tunnel" (IPIP, -i) or "fullnat" (gvs's own: SNAT and DNAT)
//	weight          integer   -w (ipvsadm takes 0..65535)
//	u_threshold     integer   -x, upper connection threshold; 0 means none
//	l_threshold     integer   -y, lower connection threshold; 0 means none
//	set             array     edit-dest only: the fields to change ("forward", "weight",
//	                          "u_threshold", "l_threshold"); empty means all of them
//	active_conns    integer   in replies: ActiveConn
//	inactive_conns  integer   in replies: InActConn
//	persist_conns   integer   in replies: PersistConn
//	stats, rates    object    in replies: Stats
//
// Stats (ipvsadm --stats; in "rates" the same fields are per second):
//
//	conns, in_pkts, out_pkts, in_bytes, out_bytes    integers, 0..2^64-1
//
// Conn (one entry of ipvsadm -L -c):
//
//	protocol  string    "tcp" or "udp"
//	client    string    the client's address:port
//	virtual   string    the virtual service's address:port
//	dest      string    the real server's address:port
//	state     string    "ESTABLISHED", "SYN_RECV", "FIN_WAIT", "TIME_WAIT", "CLOSE", "UDP", "NONE", ...
//	expires   integer   seconds before the entry expires
//	template  boolean   a persistence template (left out when false)
//
// Timeouts (seconds; in set-timeouts 0 keeps a value):
//
//	tcp, tcp_fin, udp    integers
//
// Info:
//
//	version          string    gvs's version
//	ipvs_version     string    the IPVS version gvs follows ("1.2.1")
//	conn_table_size  integer   the connection table's size (ipvsadm's "size=N")
//	counters         object    the daemon's counters by name ("frames", "verdict.forwarded",
//	                           "verdict.no_dest", "icmp.sent", "tunnel.frag_needed", "conns.evicted",
//	                           "arp.failures", "trace.traced", "pcap.captured", ...): stable
//	                           names, values that only grow
//
// Error:
//
//	code     string    one of the codes below
//	message  string    for people; gvsadm prints libipvs's text for the codes
//	                   ipvsadm knows, and this message for the others
//	index    integer   in a batch, the 0-based position of the failing command; else -1
//
// # Error codes
//
// The codes are the errno names the kernel's IPVS returns for the same
// mistake, so that gvsadm can print ipvsadm's message:
//
//	EEXIST           the service or real server already exists
//	ESRCH            no such service
//	ENOENT           no such real server, or an unknown scheduler
//	EINVAL           the request is malformed or a value is not valid
//	ERANGE           a lower threshold above the upper one
//	EOPNOTSUPP       a feature gvs does not have (IPv6, SCTP, a persistence engine, ...)
//	EREFUSED         gvs refuses what IPVS would accept (a DR real server off the LAN, ...)
//	EPERM            the peer may not use the socket
//	EPROTONOSUPPORT  another protocol version
//	EMSGSIZE         a message larger than MaxMessageSize
//	EIO              an internal error in the daemon (it keeps running)
//
// # Limits
//
//   - MaxMessageSize: 8 MiB per line, request or reply. A restore of tens
//     of thousands of rules fits; gvsadm refuses a larger one before
//     sending it.
//   - The server's idle timeout is 5 minutes; a refused peer's first
//     request is awaited for 5 seconds.
//   - The client (Dial, Client.Do) connects within 5 seconds and bounds
//     each exchange to 2 minutes.
package control
