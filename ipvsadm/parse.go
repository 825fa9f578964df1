package ipvsadm

import (
	"math"
	"math/bits"
	"net/netip"
	"strings"

	"github.com/gvs-project/gvs/control"
)

// Kind is the command of a command line, in ipvsadm's CMD_* order.
type Kind int

// Commands. The first fourteen are ipvsadm's CMD_ADD..CMD_ZERO (their
// order indexes the option matrix); Help and Version are -h and -v,
// which ipvsadm handles before any check.
const (
	KindNone        Kind = iota
	KindAdd              // -A, --add-service
	KindEdit             // -E, --edit-service
	KindDel              // -D, --delete-service
	KindFlush            // -C, --clear
	KindList             // -L, -l, --list
	KindAddDest          // -a, --add-server
	KindDelDest          // -d, --delete-server
	KindEditDest         // -e, --edit-server
	KindTimeout          // --set tcp tcpfin udp
	KindStartDaemon      // --start-daemon
	KindStopDaemon       // --stop-daemon
	KindRestore          // -R, --restore
	KindSave             // -S, --save
	KindZero             // -Z, --zero
	KindHelp             // -h, --help
	KindVersion          // -v, --version
	// gvs's FULLNAT local addresses, with DPVS's ipvsadm commands:
	KindAddLaddr // -P, --add-laddr -t|-u service -z address
	KindDelLaddr // -Q, --del-laddr -t|-u service -z address
	KindGetLaddr // -G, --get-laddr [-t|-u service]
	// gvs's frame trace:
	KindTrace // --trace on|off [-t|-u service]
)

// cmdnames is ipvsadm's cmdnames[], indexed by Kind-1.
var cmdnames = [...]string{
	"add-service", "edit-service", "delete-service", "flush", "list",
	"add-server", "delete-server", "edit-server", "set", "start-daemon",
	"stop-daemon", "restore", "save", "zero",
}

func (k Kind) String() string {
	switch {
	case k >= KindAdd && k <= KindZero:
		return cmdnames[k-1]
	case k == KindHelp:
		return "help"
	case k == KindVersion:
		return "version"
	case k == KindAddLaddr:
		return "add-laddr"
	case k == KindDelLaddr:
		return "del-laddr"
	case k == KindGetLaddr:
		return "get-laddr"
	case k == KindTrace:
		return "trace"
	}
	return "none"
}

// Options is the set of options given, ipvsadm's OPT_* bits.
type Options uint64

// Option bits, in ipvsadm 1.31's OPTC_* order (the matrix's columns).
const (
	OptNumeric Options = 1 << iota
	OptConnection
	OptService
	OptScheduler
	OptPersistent
	OptNetmask
	OptServer
	OptForward
	OptWeight
	OptUThreshold
	OptLThreshold
	OptMcast
	OptTimeout
	OptDaemon
	OptStats
	OptRate
	OptThresholds
	OptPersistentConn
	OptNoSort
	OptSyncID
	OptExact
	OptOnePacket
	OptPE
	OptSchedFlags
	OptMcastGroup
	OptMcastPort
	OptMcastTTL
	OptSyncMaxlen
	OptTunInfo
	OptTunType
	OptTunPort
	OptTunNoCsum
	OptTunCsum
	OptTunRemCsum

	numberOfOpt = iota
)

// optnames is ipvsadm's optnames[], indexed by option bit.
var optnames = [numberOfOpt]string{
	"numeric", "connection", "service-address", "scheduler", "persistent",
	"netmask", "real-server", "forwarding-method", "weight", "u-threshold",
	"l-threshold", "mcast-interface", "timeout", "daemon", "stats", "rate",
	"thresholds", "persistent-conn", "nosort", "syncid", "exact", "ops",
	"pe", "sched-flags", "mcast-group", "mcast-port", "mcast-ttl",
	"sync-maxlen", "tun-info", "tun-type", "tun-port", "tun-nocsum",
	"tun-csum", "tun-remcsum",
}

// OptJSON is gvsadm's --json, outside ipvsadm's matrix: it is allowed
// with the list command only (checked by processOptions).
const OptJSON Options = 1 << numberOfOpt

// OptLaddr is -z, the FULLNAT local address of -P and -Q (gvs, after
// DPVS's ipvsadm), outside ipvsadm's matrix too.
const OptLaddr Options = 1 << (numberOfOpt + 1)

func optName(o Options) string {
	switch o {
	case OptJSON:
		return "json"
	case OptLaddr:
		return "laddr"
	}
	return optnames[bits.TrailingZeros64(uint64(o))]
}

// commandsVOptions is ipvsadm 1.31's commands_v_options table:
// '+' compulsory, 'x' illegal, '1' exclusive, ' ' optional.
var commandsVOptions = [14]string{
	//  -n  -c  svc -s  -p  -M  -r  fwd -w  -x  -y  -mc tot dmn -st -rt thr -pc srt sid -ex ops -pe -b  grp prt ttl siz tin typ tpr noc csm rem
	/*ADD*/ "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx",
	/*EDIT*/ "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx",
	/*DEL*/ "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	/*FLUSH*/ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	/*LIST*/ " 11xxxxxxxxx11       xxxxxxx xxxxx",
	/*ADDSRV*/ "xx+xxx+    xxxxxxxxxxxxxxxxxx     ",
	/*DELSRV*/ "xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx",
	/*EDITSRV*/ "xx+xxx+    xxxxxxxxxxxxxxxxxx     ",
	/*TIMEOUT*/ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	/*STARTD*/ "xxxxxxxxxxx xxxxxxx xxxx    xxxxxx",
	/*STOPD*/ "xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx",
	/*RESTORE*/ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	/*SAVE*/ " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	/*ZERO*/ "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
}

// Format is ipvsadm's FMT_* printing flags.
type Format uint

// Printing flags.
const (
	FmtNumeric        Format = 1 << iota // -n
	FmtRule                              // -S: ipvsadm command lines
	FmtStats                             // --stats
	FmtRate                              // --rate
	FmtThresholds                        // --thresholds
	FmtPersistentConn                    // --persistent-conn
	FmtNoSort                            // --nosort
	FmtExact                             // --exact
	FmtTunInfo                           // --tun-info
	FmtJSON                              // --json (gvs only): one JSON document
)

// Scheduler flag bits (IP_VS_SVC_F_SCHED1..3); sh-fallback and
// mh-fallback are SCHED1, sh-port and mh-port SCHED2.
const (
	schedFlag1   = 0x0008
	schedFlag2   = 0x0010
	schedFlag3   = 0x0020
	schedFlagAll = schedFlag1 | schedFlag2 | schedFlag3
)

// Tunnel types (IP_VS_CONN_F_TUNNEL_TYPE_*) and encapsulation flags.
const (
	tunIPIP = 0
	tunGUE  = 1
	tunGRE  = 2

	tunFlagCsum    = 1 << 0
	tunFlagRemCsum = 1 << 1
)

var tunnames = [...]string{"ipip", "gue", "gre"}

// tunnelTypesVOptions is ipvsadm's tunnel_types_v_options over
// tun-port, tun-nocsum, tun-csum, tun-remcsum.
var tunnelTypesVOptions = [3]string{
	/* ipip */ "xxxx",
	/* gue */ "+111",
	/* gre */ "x11x",
}

var tunopts = [4]Options{OptTunPort, OptTunNoCsum, OptTunCsum, OptTunRemCsum}

const (
	// maxTimeout is MAX_TIMEOUT, 31 days: the bound of -p and --set.
	maxTimeout = 86400 * 31
	// defaultPersistentTimeout is libipvs's IPVS_SVC_PERSISTENT_TIMEOUT,
	// 6*60 seconds (ipvsadm's man page says 300; its code uses 360).
	defaultPersistentTimeout = 360
	// defaultScheduler is DEF_SCHED.
	defaultScheduler = "wlc"
	// schedNameMax is IP_VS_SCHEDNAME_MAXLEN - 1: ipvsadm copies at most
	// this many bytes of -s.
	schedNameMax = 15
	// peNameMax is IP_VS_PENAME_MAXLEN, the bytes of --pe kept.
	peNameMax = 32
	// schedFlagsArgMax is sizeof(sched_flags_arg) - 1: snprintf keeps
	// this many bytes of -b.
	schedFlagsArgMax = 127
	// intMax is INT_MAX, the bound of -x and -y.
	intMax = math.MaxInt32
)

// Option tags for options without a short name (ipvsadm's TAG_*, which
// start above the ASCII range so that a short name can be its own tag).
const (
	tagSet = 128 + iota
	tagStartDaemon
	tagStopDaemon
	tagMcastInterface
	tagTimeout
	tagDaemon
	tagStats
	tagRate
	tagThresholds
	tagPersistentConn
	tagSort
	tagNoSort
	tagPE
	tagSCTPService
	tagMcastGroup
	tagMcastPort
	tagMcastTTL
	tagSyncMaxlen
	tagTunInfo
	tagTunType
	tagTunPort
	tagTunNoCsum
	tagTunCsum
	tagTunRemCsum
	tagFullNat // gvs extension
	tagJSON    // gvs extension
	tagTrace   // gvs extension
)

// optionsTable is ipvsadm 1.31's options_table plus gvs's --fullnat.
var optionsTable = []poptOption{
	{"add-service", 'A', argNone, 'A'},
	{"edit-service", 'E', argNone, 'E'},
	{"delete-service", 'D', argNone, 'D'},
	{"clear", 'C', argNone, 'C'},
	{"list", 'L', argNone, 'L'},
	{"list", 'l', argNone, 'l'},
	{"zero", 'Z', argNone, 'Z'},
	{"add-server", 'a', argNone, 'a'},
	{"edit-server", 'e', argNone, 'e'},
	{"delete-server", 'd', argNone, 'd'},
	{"set", 0, argNone, tagSet},
	{"help", 'h', argNone, 'h'},
	{"version", 'v', argNone, 'v'},
	{"restore", 'R', argNone, 'R'},
	{"save", 'S', argNone, 'S'},
	{"start-daemon", 0, argString, tagStartDaemon},
	{"stop-daemon", 0, argString, tagStopDaemon},
	{"tcp-service", 't', argString, 't'},
	{"udp-service", 'u', argString, 'u'},
	{"sctp-service", 0, argString, tagSCTPService},
	{"fwmark-service", 'f', argString, 'f'},
	{"scheduler", 's', argString, 's'},
	{"persistent", 'p', argOptional, 'p'},
	{"netmask", 'M', argString, 'M'},
	{"real-server", 'r', argString, 'r'},
	{"masquerading", 'm', argNone, 'm'},
	{"ipip", 'i', argNone, 'i'},
	{"gatewaying", 'g', argNone, 'g'},
	{"weight", 'w', argString, 'w'},
	{"u-threshold", 'x', argString, 'x'},
	{"l-threshold", 'y', argString, 'y'},
	{"numeric", 'n', argNone, 'n'},
	{"connection", 'c', argNone, 'c'},
	{"mcast-interface", 0, argString, tagMcastInterface},
	{"syncid", 0, argString, 'I'},
	{"timeout", 0, argNone, tagTimeout},
	{"daemon", 0, argNone, tagDaemon},
	{"stats", 0, argNone, tagStats},
	{"rate", 0, argNone, tagRate},
	{"thresholds", 0, argNone, tagThresholds},
	{"persistent-conn", 0, argNone, tagPersistentConn},
	{"nosort", 0, argNone, tagNoSort},
	{"sort", 0, argNone, tagSort},
	{"exact", 'X', argNone, 'X'},
	{"ipv6", '6', argNone, '6'},
	{"ops", 'o', argNone, 'o'},
	{"pe", 0, argString, tagPE},
	{"sched-flags", 'b', argString, 'b'},
	{"mcast-group", 0, argString, tagMcastGroup},
	{"mcast-port", 0, argString, tagMcastPort},
	{"mcast-ttl", 0, argString, tagMcastTTL},
	{"sync-maxlen", 0, argString, tagSyncMaxlen},
	{"tun-info", 0, argNone, tagTunInfo},
	{"tun-type", 0, argString, tagTunType},
	{"tun-port", 0, argString, tagTunPort},
	{"tun-nocsum", 0, argNone, tagTunNoCsum},
	{"tun-csum", 0, argNone, tagTunCsum},
	{"tun-remcsum", 0, argNone, tagTunRemCsum},
	{"fullnat", 0, argNone, tagFullNat},
	{"json", 0, argNone, tagJSON},
	{"add-laddr", 'P', argNone, 'P'},
	{"del-laddr", 'Q', argNone, 'Q'},
	{"get-laddr", 'G', argNone, 'G'},
	{"laddr", 'z', argString, 'z'},
	{"trace", 0, argString, tagTrace},
}

// Command is one parsed ipvsadm command line.
//
// Service and Dest hold everything the line sets, with ipvsadm's
// defaults applied (scheduler wlc, weight 1, forwarding route, the real
// server's port following the service's for -g and -i). Request turns a
// configuration command into a control.Request.
type Command struct {
	Kind    Kind
	Options Options
	Format  Format

	// Service is the virtual service: its key (Protocol, Addr, Port)
	// and, for -A/-E, its settings. Dests, Stats and Rates are unused.
	Service control.Service
	// Dest is the real server of -a/-e/-d. Counters are unused.
	Dest control.Dest
	// Timeouts are the values of --set.
	Timeouts control.Timeouts

	// TunnelType is --tun-type (ipip, the only type gvs has, by default).
	TunnelType string
	// Laddr is the FULLNAT local address of -P and -Q (-z).
	Laddr netip.Addr
	// Trace is --trace's argument: control.TraceOn or TraceOff.
	Trace string

	schedFlags uint32 // IP_VS_SVC_F_SCHED* bits of -b
	netmask    uint32 // -M in host order; 0xffffffff by default
}

// HasService reports whether the line names a virtual service.
func (c *Command) HasService() bool { return c.Options&OptService != 0 }

// Parse parses one ipvsadm command line, without the program name (it is
// also used for each line of -R). Host and service names are resolved
// with the system's resolver. A rejected line returns an *Error carrying
// ipvsadm's message and exit status.
func Parse(args []string) (*Command, error) {
	return parseArgs(args, &SystemNames{}, programName)
}

// parser holds the state of ipvsadm's parse_options and process_options.
type parser struct {
	names Names
	prog  string
	c     *Command

	svcAF     int // address family of the service (0, 4 or 6)
	svcFwmark uint32
	destAF    int
	persist   bool
	onePacket bool
	tunType   int
	tunFlags  int
}

// parseArgs parses args (without argv[0]); prog is the name used in
// ipvsadm's "Try `prog -h'" message.
func parseArgs(args []string, names Names, prog string) (*Command, error) {
	argv := make([]string, 0, len(args)+1)
	argv = append(argv, prog)
	for _, a := range args {
		// Arguments are C strings: nothing after a NUL byte exists.
		if i := strings.IndexByte(a, 0); i >= 0 {
			a = a[:i]
		}
		argv = append(argv, a)
	}
	p := &parser{
		names: names,
		prog:  prog,
		c: &Command{
			Dest:       control.Dest{Weight: 1, Forward: control.FwdRoute},
			TunnelType: tunnames[tunIPIP],
			netmask:    0xffffffff,
		},
	}
	if err := p.parseOptions(argv); err != nil {
		return nil, err
	}
	if p.c.Kind == KindHelp || p.c.Kind == KindVersion {
		return p.c, nil
	}
	if err := p.processOptions(); err != nil {
		return nil, err
	}
	return p.c, nil
}

func (p *parser) tryhelp() *Error {
	return &Error{Status: ExitCommand,
		Msg: "Try `" + p.prog + " -h' or '" + p.prog + " --help' for more information."}
}

func (p *parser) setOption(o Options) error {
	if p.c.Options&o != 0 {
		return fail("multiple '%s' options specified", optName(o))
	}
	p.c.Options |= o
	return nil
}

// parseOptions is ipvsadm's parse_options.
func (p *parser) parseOptions(argv []string) error {
	c := p.c
	ctx := newPopt(optionsTable, argv)
	schedFlagsArg := ""

	rc := ctx.nextOpt()
	if rc < 0 {
		return p.tryhelp()
	}
	switch rc {
	case 'A':
		c.Kind = KindAdd
	case 'E':
		c.Kind = KindEdit
	case 'D':
		c.Kind = KindDel
	case 'a':
		c.Kind = KindAddDest
	case 'e':
		c.Kind = KindEditDest
	case 'd':
		c.Kind = KindDelDest
	case 'C':
		c.Kind = KindFlush
	case 'L', 'l':
		c.Kind = KindList
	case 'Z':
		c.Kind = KindZero
	case tagSet:
		c.Kind = KindTimeout
	case 'R':
		c.Kind = KindRestore
	case 'S':
		c.Kind = KindSave
	case tagStartDaemon, tagStopDaemon:
		c.Kind = KindStartDaemon
		if rc == tagStopDaemon {
			c.Kind = KindStopDaemon
		}
		if ctx.arg != "master" && ctx.arg != "backup" {
			if rc == tagStartDaemon {
				return fail("illegal start-daemon parameter specified")
			}
			return fail("illegal start_daemon specified")
		}
	case 'h':
		c.Kind = KindHelp
		return nil
	case 'v':
		c.Kind = KindVersion
		return nil
	case 'P':
		c.Kind = KindAddLaddr
	case 'Q':
		c.Kind = KindDelLaddr
	case 'G':
		c.Kind = KindGetLaddr
	case tagTrace:
		c.Kind = KindTrace
		if ctx.arg != control.TraceOn && ctx.arg != control.TraceOff {
			return fail("illegal trace setting `%s' specified: on or off", ctx.arg)
		}
		c.Trace = ctx.arg
	default:
		return p.tryhelp()
	}

	for {
		rc = ctx.nextOpt()
		if rc < 0 {
			break
		}
		arg := ctx.arg
		var err error
		switch rc {
		case 't', 'u', tagSCTPService:
			err = p.optService(rc, arg)
		case 'f':
			if err = p.setOption(OptService); err == nil {
				err = p.optFwmark(arg)
			}
		case 's':
			if err = p.setOption(OptScheduler); err == nil {
				c.Service.Scheduler = truncate(arg, schedNameMax)
			}
		case 'p':
			if err = p.setOption(OptPersistent); err == nil {
				p.persist = true
				c.Service.Timeout = defaultPersistentTimeout
				if ctx.hasArg {
					var t int64
					t, err = parseTimeout(arg, 1, maxTimeout)
					c.Service.Timeout = uint32(t)
				}
			}
		case 'M':
			if err = p.setOption(OptNetmask); err == nil {
				m, ok := parseNetmask(arg, p.names)
				if !ok {
					err = fail("illegal virtual server persistent mask specified")
				}
				c.netmask = m
			}
		case 'r':
			if err = p.setOption(OptServer); err == nil {
				err = p.optServer(arg)
			}
		case 'i', 'g', 'm', tagFullNat:
			if err = p.setOption(OptForward); err == nil {
				c.Dest.Forward = map[int]string{'i': control.FwdTunnel, 'g': control.FwdRoute,
					'm': control.FwdMasq, tagFullNat: control.FwdFullNat}[rc]
			}
		case 'w':
			if err = p.setOption(OptWeight); err == nil {
				n := stringToNumber(arg, 0, 65535)
				if n == -1 {
					err = fail("illegal weight specified")
				}
				c.Dest.Weight = int32(n)
			}
		case 'x':
			if err = p.setOption(OptUThreshold); err == nil {
				n := stringToNumber(arg, 0, intMax)
				if n == -1 {
					err = fail("illegal u_threshold specified")
				}
				c.Dest.UThreshold = uint32(n)
			}
		case 'y':
			if err = p.setOption(OptLThreshold); err == nil {
				n := stringToNumber(arg, 0, intMax)
				if n == -1 {
					err = fail("illegal l_threshold specified")
				}
				c.Dest.LThreshold = uint32(n)
			}
		case 'c':
			err = p.setOption(OptConnection)
		case 'n':
			err = p.setOption(OptNumeric)
			c.Format |= FmtNumeric
		case tagMcastInterface:
			err = p.setOption(OptMcast)
		case 'I':
			if err = p.setOption(OptSyncID); err == nil && stringToNumber(arg, 0, 255) == -1 {
				err = fail("illegal syncid specified")
			}
		case tagTimeout:
			err = p.setOption(OptTimeout)
		case tagDaemon:
			err = p.setOption(OptDaemon)
		case tagStats:
			err = p.setOption(OptStats)
			c.Format |= FmtStats
		case tagRate:
			err = p.setOption(OptRate)
			c.Format |= FmtRate
		case tagThresholds:
			err = p.setOption(OptThresholds)
			c.Format |= FmtThresholds
		case tagPersistentConn:
			err = p.setOption(OptPersistentConn)
			c.Format |= FmtPersistentConn
		case tagNoSort:
			err = p.setOption(OptNoSort)
			c.Format |= FmtNoSort
		case tagSort:
			// Sorting is the default; --sort is a no-op.
		case 'X':
			err = p.setOption(OptExact)
			c.Format |= FmtExact
		case '6':
			if p.svcFwmark == 0 {
				err = fail("-6 used before -f\n")
			}
		case 'o':
			err = p.setOption(OptOnePacket)
			p.onePacket = true
		case tagPE:
			if err = p.setOption(OptPE); err == nil {
				c.Service.PE = truncate(arg, peNameMax)
			}
		case 'b':
			if err = p.setOption(OptSchedFlags); err == nil {
				schedFlagsArg = truncate(arg, schedFlagsArgMax)
			}
		case tagMcastGroup:
			if err = p.setOption(OptMcastGroup); err == nil {
				err = checkMcastGroup(arg)
			}
		case tagMcastPort:
			if err = p.setOption(OptMcastPort); err == nil && stringToNumber(arg, 1, 65535) == -1 {
				err = fail("illegal mcast-port specified")
			}
		case tagMcastTTL:
			if err = p.setOption(OptMcastTTL); err == nil && stringToNumber(arg, 1, 255) == -1 {
				err = fail("illegal mcast-ttl specified")
			}
		case tagSyncMaxlen:
			// 65535 - 20 - 8: the largest UDP payload in an IPv4 packet.
			if err = p.setOption(OptSyncMaxlen); err == nil && stringToNumber(arg, 1, 65535-20-8) == -1 {
				err = fail("illegal sync-maxlen specified")
			}
		case tagTunInfo:
			err = p.setOption(OptTunInfo)
			c.Format |= FmtTunInfo
		case tagTunType:
			if err = p.setOption(OptTunType); err == nil {
				t := -1
				for i, n := range tunnames {
					if arg == n {
						t = i
					}
				}
				if t < 0 {
					err = fail("illegal tunnel type specified")
				} else {
					p.tunType, c.TunnelType = t, tunnames[t]
				}
			}
		case tagTunPort:
			if err = p.setOption(OptTunPort); err == nil && stringToNumber(arg, 1, 65535) == -1 {
				err = fail("illegal tunnel port specified")
			}
		case tagJSON:
			err = p.setOption(OptJSON)
			c.Format |= FmtJSON
		case 'z':
			if err = p.setOption(OptLaddr); err == nil {
				a, perr := netip.ParseAddr(arg)
				switch {
				case perr != nil || a.Zone() != "":
					err = fail("illegal local address `%s' specified", arg)
				case !a.Unmap().Is4():
					err = unsupported("IPv6 local addresses are not supported yet")
				default:
					c.Laddr = a.Unmap()
				}
			}
		case tagTunNoCsum:
			err = p.setOption(OptTunNoCsum)
		case tagTunCsum:
			err = p.setOption(OptTunCsum)
			p.tunFlags |= tunFlagCsum
		case tagTunRemCsum:
			err = p.setOption(OptTunRemCsum)
			p.tunFlags |= tunFlagRemCsum
		default:
			err = fail("invalid option `%s'", ctx.badOption())
		}
		if err != nil {
			return err
		}
	}
	if rc < poptEnd {
		return &Error{Status: ExitCommand, Msg: ctx.badOption() + ": " + poptStrerror(rc)}
	}

	if c.Kind == KindTimeout {
		a0, ok0 := ctx.getArg()
		a1, ok1 := ctx.getArg()
		a2, ok2 := ctx.getArg()
		if !ok0 || !ok1 || !ok2 {
			return fail("--set option requires 3 timeout values")
		}
		var t [3]int64
		for i, a := range []string{a0, a1, a2} {
			var err error
			if t[i], err = parseTimeout(a, 0, maxTimeout); err != nil {
				return err
			}
		}
		c.Timeouts = control.Timeouts{TCP: uint32(t[0]), TCPFin: uint32(t[1]), UDP: uint32(t[2])}
	}
	if a, ok := ctx.getArg(); ok {
		return fail("unexpected argument %s", a)
	}
	if schedFlagsArg != "" {
		sched := c.Service.Scheduler
		if sched == "" {
			sched = defaultScheduler
		}
		f, err := parseSchedFlags(sched, schedFlagsArg)
		if err != nil {
			return err
		}
		c.schedFlags = f
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func parseTimeout(s string, min, max int64) (int64, error) {
	n := stringToNumber(s, min, max)
	if n == -1 {
		return 0, fail("invalid timeout value `%s' specified", s)
	}
	return n, nil
}

func checkMcastGroup(arg string) error {
	if strings.Contains(arg, ":") {
		a, err := netip.ParseAddr(arg)
		if err != nil || !a.Is6() || a.Zone() != "" || !a.IsMulticast() {
			return fail("invalid IPv6 mcast-group `%s'", arg)
		}
		return nil
	}
	a, err := netip.ParseAddr(arg)
	if err != nil || !a.Is4() || !a.IsMulticast() {
		return fail("invalid IPv4 mcast-group `%s'", arg)
	}
	return nil
}

// optService handles -t, -u and --sctp-service.
func (p *parser) optService(rc int, arg string) error {
	if err := p.setOption(OptService); err != nil {
		return err
	}
	proto := map[int]string{'t': control.TCP, 'u': control.UDP, tagSCTPService: "sctp"}[rc]
	p.c.Service.Protocol = proto
	ep := endpoint{af: p.svcAF, addr: p.c.Service.Addr, port: p.c.Service.Port}
	r := parseService(arg, proto, &ep, p.names)
	p.svcAF, p.c.Service.Addr, p.c.Service.Port = ep.af, ep.addr, ep.port
	if r&serviceAddr == 0 {
		return fail("illegal virtual server address[:port] specified")
	}
	if proto == "sctp" {
		return unsupported("SCTP services (--sctp-service) are not supported by gvs")
	}
	if ep.af == 6 {
		return unsupported("IPv6 services are not supported yet")
	}
	return nil
}

// optFwmark handles -f: ipvsadm's checks, then gvs's refusal.
func (p *parser) optFwmark(arg string) error {
	n, end, overflow := strtol10(arg)
	if end != len(arg) || end == 0 || overflow || n <= 0 || n > math.MaxUint32 {
		return fail("invalid fwmark value `%s' specified", arg)
	}
	p.svcFwmark = uint32(n)
	return unsupported("fwmark services (-f) are not supported by gvs")
}

// optServer handles -r: parse_service on a copy of the service, so a
// port name is looked up for the service's protocol and a missing port
// is the service's (as far as it is known at this point of the line).
func (p *parser) optServer(arg string) error {
	c := p.c
	ep := endpoint{af: p.svcAF, addr: c.Service.Addr, port: c.Service.Port}
	r := parseService(arg, c.Service.Protocol, &ep, p.names)
	p.destAF, c.Dest.Addr, c.Dest.Port = ep.af, ep.addr, ep.port
	if r&serviceAddr == 0 {
		return fail("illegal real server address[:port] specified")
	}
	if r == serviceAddr {
		c.Dest.Port = c.Service.Port
	}
	if ep.af == 6 {
		return unsupported("IPv6 real servers are not supported yet")
	}
	return nil
}

// parseSchedFlags is ipvsadm's parse_sched_flags: comma-separated flags,
// sh-* only with sh and mh-* only with mh.
func parseSchedFlags(sched, arg string) (uint32, error) {
	var f uint32
	for _, flag := range strings.Split(arg, ",") {
		if flag == "" {
			continue // strtok skips empty fields
		}
		var bit uint32
		need := ""
		switch flag {
		case "flag-1":
			bit = schedFlag1
		case "flag-2":
			bit = schedFlag2
		case "flag-3":
			bit = schedFlag3
		case "sh-fallback":
			bit, need = schedFlag1, "sh"
		case "sh-port":
			bit, need = schedFlag2, "sh"
		case "mh-fallback":
			bit, need = schedFlag1, "mh"
		case "mh-port":
			bit, need = schedFlag2, "mh"
		default:
			return 0, fail("invalid scheduler flag `%s'", flag)
		}
		f |= bit
		if need != "" && sched != need {
			return 0, fail("incompatible scheduler flag `%s'", flag)
		}
	}
	return f, nil
}

// genericOptCheck is ipvsadm's generic_opt_check.
func genericOptCheck(k Kind, opts Options) error {
	row := commandsVOptions[k-1]
	name := cmdnames[k-1]
	count, last := 0, 0
	for j := 0; j < numberOfOpt; j++ {
		if opts&(1<<j) == 0 {
			if row[j] == '+' {
				return fail("You need to supply the '%s' option for the '%s' command", optnames[j], name)
			}
			continue
		}
		switch row[j] {
		case 'x':
			return fail("Illegal '%s' option with the '%s' command", optnames[j], name)
		case '1':
			count++
			if count == 1 {
				last = j
				continue
			}
			return fail("The option '%s' conflicts with the '%s' option in the '%s' command",
				optnames[j], optnames[last], name)
		}
	}
	return nil
}

// laddrOptCheck checks -P, -Q and -G as genericOptCheck checks ipvsadm's
// commands: -P and -Q need a service and -z; -G takes a service and -n;
// nothing else goes with them.
func laddrOptCheck(k Kind, opts Options) error {
	allowed := OptService | OptLaddr
	if k == KindGetLaddr {
		allowed = OptService | OptNumeric
	} else {
		for _, need := range []Options{OptService, OptLaddr} {
			if opts&need == 0 {
				return fail("You need to supply the '%s' option for the '%s' command", optName(need), k)
			}
		}
	}
	for o := Options(1); o != 0 && o <= OptLaddr; o <<= 1 {
		if opts&o != 0 && allowed&o == 0 {
			return fail("Illegal '%s' option with the '%s' command", optName(o), k)
		}
	}
	return nil
}

// traceOptCheck checks --trace as genericOptCheck checks ipvsadm's
// commands: it takes a service (-t, -u) and nothing else.
func traceOptCheck(opts Options) error {
	for o := Options(1); o != 0 && o <= OptLaddr; o <<= 1 {
		if opts&o != 0 && o != OptService {
			return fail("Illegal '%s' option with the '%s' command", optName(o), KindTrace)
		}
	}
	return nil
}

// tunnelOptCheck is ipvsadm's tunnel_opt_check.
func tunnelOptCheck(t int, opts Options) error {
	row := tunnelTypesVOptions[t]
	count := 0
	var last Options
	for j, o := range tunopts {
		if opts&o == 0 {
			if row[j] == '+' {
				return fail("You need to supply the '%s' option for the '%s' tunnel type", optName(o), tunnames[t])
			}
			continue
		}
		switch row[j] {
		case 'x':
			return fail("Illegal '%s' option with the '%s' tunnel type", optName(o), tunnames[t])
		case '1':
			count++
			if count == 1 {
				last = o
				continue
			}
			return fail("The option '%s' conflicts with the '%s' option in the '%s' tunnel type",
				optName(o), optName(last), tunnames[t])
		}
	}
	return nil
}

// processOptions is the checking half of ipvsadm's process_options,
// followed by gvs's own refusals.
func (p *parser) processOptions() error {
	c := p.c
	if c.Kind == KindTrace {
		return traceOptCheck(c.Options)
	}
	if c.Kind >= KindAddLaddr {
		return laddrOptCheck(c.Kind, c.Options)
	}
	if c.Options&OptLaddr != 0 {
		return fail("Illegal '%s' option with the '%s' command", optName(OptLaddr), c.Kind)
	}
	if err := genericOptCheck(c.Kind, c.Options); err != nil {
		return err
	}
	if c.Options&OptJSON != 0 && c.Kind != KindList {
		// genericOptCheck's message, for the option outside its matrix.
		return fail("Illegal '%s' option with the '%s' command", optName(OptJSON), c.Kind)
	}
	if c.Kind == KindAdd || c.Kind == KindEdit {
		if p.svcFwmark == 0 && c.Service.Port == 0 && !p.persist {
			return fail("Zero port specified for non-persistent service")
		}
		if p.onePacket && p.svcFwmark == 0 && c.Service.Protocol != control.UDP {
			return fail("One-Packet Scheduling is only for UDP virtual services")
		}
		if c.Service.Scheduler == "" {
			c.Service.Scheduler = defaultScheduler
		}
	}
	if c.Kind == KindAddDest || c.Kind == KindEditDest {
		fwd := c.Dest.Forward
		if p.svcFwmark == 0 && (fwd == control.FwdTunnel || fwd == control.FwdRoute) {
			c.Dest.Port = c.Service.Port
		}
		if p.destAF != p.svcAF && fwd != control.FwdTunnel {
			return fail("Different address family is allowed only for tunneling servers")
		}
		if c.Options&(OptTunType|OptTunPort|OptTunNoCsum|OptTunCsum|OptTunRemCsum) != 0 &&
			fwd != control.FwdTunnel {
			return fail("Tunnel options conflict with forward method")
		}
		if err := tunnelOptCheck(p.tunType, c.Options); err != nil {
			return err
		}
		if p.tunType != tunIPIP {
			return unsupported("tunnel type `%s' is not supported by gvs", tunnames[p.tunType])
		}
	}
	if c.Kind == KindList {
		o := c.Options
		if (o&(OptConnection|OptTimeout|OptDaemon) != 0 && o&(OptStats|OptRate|OptThresholds) != 0) ||
			(o&(OptTimeout|OptDaemon) != 0 && o&OptPersistentConn != 0) {
			return fail("options conflicts in the list command")
		}
		// --json lists the table (and with -c the connections too);
		// the timeouts and the sync daemons have no JSON form.
		if o&OptJSON != 0 && o&(OptTimeout|OptDaemon) != 0 {
			return fail("options conflicts in the list command")
		}
	}
	switch c.Kind {
	case KindStartDaemon, KindStopDaemon:
		return unsupported("the connection sync daemon (--%s) is not supported by gvs yet", c.Kind)
	}

	// Fill in the protocol-level settings.
	c.Service.Persistent = p.persist
	c.Service.OnePacket = p.onePacket
	if !p.persist {
		c.Service.Timeout = 0
	}
	if c.Kind == KindAdd || c.Kind == KindEdit {
		prefix, ok := maskPrefix(c.netmask)
		switch {
		case !ok:
			return unsupported("netmask %s is not supported by gvs: it must be contiguous", dotted(c.netmask))
		case prefix == 0:
			return unsupported("netmask 0.0.0.0 is not supported by gvs")
		case prefix < 32:
			c.Service.Netmask = uint8(prefix)
		}
		c.Service.SchedFlags = schedFlagNames(c.Service.Scheduler, c.schedFlags)
	}
	return nil
}

// maskPrefix returns the prefix length of a contiguous mask.
func maskPrefix(m uint32) (int, bool) {
	n := bits.LeadingZeros32(^m)
	return n, m == ^uint32(0)<<(32-n) || n == 32
}

func dotted(m uint32) string {
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()
}

// schedFlagNames names flag bits as ipvsadm prints them for the
// scheduler (print_sched_flags), plus flag-3 wherever it is set so that
// no bit is lost on the wire.
func schedFlagNames(sched string, f uint32) []string {
	var out []string
	switch sched {
	case "sh", "mh":
		if f&schedFlag1 != 0 {
			out = append(out, sched+"-fallback")
		}
		if f&schedFlag2 != 0 {
			out = append(out, sched+"-port")
		}
	default:
		if f&schedFlag1 != 0 {
			out = append(out, "flag-1")
		}
		if f&schedFlag2 != 0 {
			out = append(out, "flag-2")
		}
	}
	if f&schedFlag3 != 0 {
		out = append(out, "flag-3")
	}
	return out
}

// schedFlagBits is the inverse of schedFlagNames; unknown names are
// ignored.
func schedFlagBits(names []string) uint32 {
	var f uint32
	for _, n := range names {
		switch n {
		case "flag-1", "sh-fallback", "mh-fallback":
			f |= schedFlag1
		case "flag-2", "sh-port", "mh-port":
			f |= schedFlag2
		case "flag-3":
			f |= schedFlag3
		}
	}
	return f
}
