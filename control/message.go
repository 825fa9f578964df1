package control

import (
	"fmt"
	"net/netip"
)

// Version is the protocol version this package speaks. A request with
// another version is refused with CodeVersion, before anything is applied.
const Version = 1

// MaxMessageSize bounds one encoded request or reply (one line of JSON).
// A restore of tens of thousands of rules fits; anything larger is refused.
const MaxMessageSize = 8 << 20

// Op names a request. The set mirrors ipvsadm's commands.
type Op string

const (
	OpAddService  Op = "add-service"  // ipvsadm -A
	OpEditService Op = "edit-service" // ipvsadm -E
	OpDelService  Op = "del-service"  // ipvsadm -D
	OpClear       Op = "clear"        // ipvsadm -C
	OpAddDest     Op = "add-dest"     // ipvsadm -a
	OpEditDest    Op = "edit-dest"    // ipvsadm -e
	OpDelDest     Op = "del-dest"     // ipvsadm -d
	OpZero        Op = "zero"         // ipvsadm -Z [service]
	OpSetTimeouts Op = "set-timeouts" // ipvsadm --set tcp tcpfin udp
	OpBatch       Op = "batch"        // ipvsadm -R: Commands applied all or nothing
	OpList        Op = "list"         // ipvsadm -L [service]: Services (with Dests)
	OpConns       Op = "conns"        // ipvsadm -L -c: Conns
	OpTimeouts    Op = "timeouts"     // ipvsadm -L --timeout: Timeouts
	OpInfo        Op = "info"         // version and connection table size
	OpAddLaddr    Op = "add-laddr"    // gvsadm -P: a FULLNAT local address (Service, Laddr)
	OpDelLaddr    Op = "del-laddr"    // gvsadm -Q
	OpTrace       Op = "trace"        // gvsadm --trace on|off [service]: Trace, Service
)

// batchOps are the ops an OpBatch may carry: those that change the
// configuration.
var batchOps = map[Op]bool{
	OpAddService: true, OpEditService: true, OpDelService: true, OpClear: true,
	OpAddDest: true, OpEditDest: true, OpDelDest: true, OpZero: true, OpSetTimeouts: true,
	OpAddLaddr: true, OpDelLaddr: true,
}

// knownOps are all the ops of this version.
var knownOps = map[Op]bool{
	OpAddService: true, OpEditService: true, OpDelService: true, OpClear: true,
	OpAddDest: true, OpEditDest: true, OpDelDest: true, OpZero: true, OpSetTimeouts: true,
	OpBatch: true, OpList: true, OpConns: true, OpTimeouts: true, OpInfo: true,
	OpAddLaddr: true, OpDelLaddr: true, OpTrace: true,
}

// validate checks what the protocol itself requires of a request: a known
// op, Commands only in an OpBatch, and only configuration ops (without
// Commands of their own) inside it. Whether the fields make sense for the
// op (a service address, a known scheduler, ...) is the Handler's to say.
func (r *Request) validate() *Error {
	if !knownOps[r.Op] {
		return &Error{Code: CodeInvalid, Message: fmt.Sprintf("unknown operation %.64q", r.Op), Index: -1}
	}
	if r.Op != OpBatch {
		if r.Commands != nil {
			return &Error{Code: CodeInvalid, Message: fmt.Sprintf("operation %q does not take commands (only %q does)", r.Op, OpBatch), Index: -1}
		}
		return nil
	}
	for i := range r.Commands {
		c := &r.Commands[i]
		if c.Version != 0 && c.Version != Version {
			return &Error{Code: CodeVersion, Index: i,
				Message: fmt.Sprintf("command %d: protocol version %d not supported (gvs speaks version %d)", i, c.Version, Version)}
		}
		if !batchOps[c.Op] {
			return &Error{Code: CodeInvalid, Message: fmt.Sprintf("operation %.64q is not allowed in a batch", c.Op), Index: i}
		}
		if c.Commands != nil {
			return &Error{Code: CodeInvalid, Message: fmt.Sprintf("operation %q does not take commands", c.Op), Index: i}
		}
	}
	return nil
}

// Request is one message from gvsadm to gvs.
type Request struct {
	Version int `json:"version"`
	Op      Op  `json:"op"`

	// Service names the virtual service of a service or destination
	// command (its key fields), and carries the settings for add/edit.
	// For OpList and OpZero it is optional: nil means all services.
	Service *Service `json:"service,omitempty"`
	// Dest is the real server of a destination command.
	Dest *Dest `json:"dest,omitempty"`
	// Laddr is the FULLNAT local address of OpAddLaddr and OpDelLaddr.
	Laddr netip.Addr `json:"laddr,omitempty"`
	// Timeouts is the argument of OpSetTimeouts (0 keeps a value).
	Timeouts *Timeouts `json:"timeouts,omitempty"`
	// Trace is the argument of OpTrace: TraceOn or TraceOff.
	Trace string `json:"trace,omitempty"`
	// Commands are the requests of an OpBatch, in order. Only
	// configuration-changing ops are allowed inside a batch.
	Commands []Request `json:"commands,omitempty"`
}

// Reply is gvs's answer to one Request.
type Reply struct {
	Version int    `json:"version"`
	Error   *Error `json:"error,omitempty"`

	Info     *Info     `json:"info,omitempty"`
	Services []Service `json:"services,omitempty"`
	Conns    []Conn    `json:"conns,omitempty"`
	Timeouts *Timeouts `json:"timeouts,omitempty"`
}

// Error codes. They mirror the errno values the kernel's IPVS returns, so
// that gvsadm can print ipvsadm's message for the same mistake.
const (
	CodeExists       = "EEXIST"     // service or destination already exists
	CodeNoService    = "ESRCH"      // no such service
	CodeNoDest       = "ENOENT"     // no such destination, or unknown scheduler
	CodeInvalid      = "EINVAL"     // the request is malformed or not valid
	CodeNotSupported = "EOPNOTSUPP" // a feature gvs does not have
	CodePermission   = "EPERM"      // the peer may not use the socket
	CodeVersion      = "EPROTONOSUPPORT"
	CodeTooLarge     = "EMSGSIZE"
	CodeInternal     = "EIO"
	CodeRange        = "ERANGE" // lower threshold above the upper one (as the kernel)
	// CodeRefused is gvs's own refusal of something IPVS would accept
	// (for example a DR real server that is not on the director's LAN).
	// ipvsadm has no text for it: gvsadm prints Message.
	CodeRefused = "EREFUSED"
)

// Error is a refused request. Message is meant for people and is printed
// by gvsadm as it is. For a batch, Index is the 0-based position of the
// failing command (and -1 otherwise).
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Index   int    `json:"index"`
}

func (e *Error) Error() string { return e.Message }

// Values of Request.Trace.
const (
	TraceOn  = "on"
	TraceOff = "off"
)

// Protocol names, as ipvsadm prints them in upper case in listings.
const (
	TCP = "tcp"
	UDP = "udp"
)

// Forwarding methods, as ipvsadm's -g, -i and -m select them.
const (
	FwdRoute  = "route"  // -g, direct routing (DR), listed as Route
	FwdTunnel = "tunnel" // -i, IPIP, listed as Tunnel
	FwdMasq   = "masq"   // -m, NAT, listed as Masq
	// FwdFullNat is gvs's own method (no ipvsadm equivalent): both the
	// client and the virtual address are rewritten (SNAT + DNAT), so
	// replies return through the director whatever the real server's
	// routes. gvsadm selects it with --fullnat, lists it as FullNat and
	// saves it as --fullnat.
	FwdFullNat = "fullnat"
)

// Service is a virtual service: its key (Protocol, Addr, Port), its
// settings, and in replies its destinations and counters.
type Service struct {
	Protocol string     `json:"protocol"`
	Addr     netip.Addr `json:"addr"`
	Port     uint16     `json:"port"`

	Scheduler  string   `json:"scheduler,omitempty"`
	SchedFlags []string `json:"sched_flags,omitempty"` // -b
	Persistent bool     `json:"persistent,omitempty"`  // -p
	Timeout    uint32   `json:"timeout,omitempty"`     // persistence timeout, seconds
	Netmask    uint8    `json:"netmask,omitempty"`     // -M as a prefix length; 0 means /32
	OnePacket  bool     `json:"one_packet,omitempty"`  // -o
	PE         string   `json:"pe,omitempty"`          // --pe

	Dests []Dest `json:"dests,omitempty"`
	Stats Stats  `json:"stats"`
	Rates Stats  `json:"rates"`
	// LocalAddrs are the service's FULLNAT local addresses (listings).
	LocalAddrs []netip.Addr `json:"local_addrs,omitempty"`
}

// Dest is a real server of a service.
type Dest struct {
	Addr       netip.Addr `json:"addr"`
	Port       uint16     `json:"port"`
	Forward    string     `json:"forward,omitempty"`
	Weight     int32      `json:"weight"`
	UThreshold uint32     `json:"u_threshold,omitempty"`
	LThreshold uint32     `json:"l_threshold,omitempty"`

	// Set lets an edit change only what was given on the command line.
	// It lists the JSON names of the fields to apply ("weight",
	// "forward", "u_threshold", "l_threshold"); empty means all.
	Set []string `json:"set,omitempty"`

	ActiveConns   uint32 `json:"active_conns"`
	InactiveConns uint32 `json:"inactive_conns"`
	PersistConns  uint32 `json:"persist_conns"`
	Stats         Stats  `json:"stats"`
	Rates         Stats  `json:"rates"`
}

// Stats are the counters ipvsadm --stats prints. In Rates the same fields
// hold per-second values (CPS, InPPS, OutPPS, InBPS, OutBPS).
type Stats struct {
	Conns    uint64 `json:"conns"`
	InPkts   uint64 `json:"in_pkts"`
	OutPkts  uint64 `json:"out_pkts"`
	InBytes  uint64 `json:"in_bytes"`
	OutBytes uint64 `json:"out_bytes"`
}

// Conn is one entry of the connection table as ipvsadm -Lc shows it.
type Conn struct {
	Protocol string         `json:"protocol"`
	Client   netip.AddrPort `json:"client"`
	Virtual  netip.AddrPort `json:"virtual"`
	Dest     netip.AddrPort `json:"dest"`
	State    string         `json:"state"`
	// Expires is the time left before the entry expires, in seconds.
	Expires uint32 `json:"expires"`
	// Template marks a persistence template.
	Template bool `json:"template,omitempty"`
}

// Timeouts are the TCP, TCP FIN and UDP timeouts in seconds, as ipvsadm
// --set takes them and -L --timeout prints them.
type Timeouts struct {
	TCP    uint32 `json:"tcp"`
	TCPFin uint32 `json:"tcp_fin"`
	UDP    uint32 `json:"udp"`
}

// Info describes the daemon.
type Info struct {
	// Version is gvs's own version.
	Version string `json:"version"`
	// IPVSVersion is the IPVS version whose behaviour gvs follows.
	IPVSVersion string `json:"ipvs_version"`
	// ConnTableSize is the bucket count of the connection table, which
	// ipvsadm prints as "size=N".
	ConnTableSize int `json:"conn_table_size"`
	// Counters are the daemon's own counters by name (frames by verdict,
	// ICMP errors sent, connection-table and ARP events), for
	// diagnostics and tests; names are stable, values only grow.
	Counters map[string]uint64 `json:"counters,omitempty"`
}
