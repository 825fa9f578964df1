package ipvsadm

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gvs-project/gvs/control"
	"github.com/gvs-project/gvs/health"
)

// gvs's health checks, outside ipvsadm's grammar:
//
//	-a|-e ... --check tcp|http|udp|cmd|none [--check-port port]
//	          [--check-interval d] [--check-timeout d] [--check-rise n] [--check-fall n]
//	          [--check-url url] [--check-status code] [--check-digest hex]
//	          [--check-payload text] [--check-cmd "program args..."]
//	-A|-E ... --on-failure quiesce|remove
//	-L --checks [-n] [service]
//
// -S writes them as comment lines of gvs's own, which ipvsadm skips:
//
//	-A -t 192.168.150.100:80 -s rr
//	# gvs-check -t 192.168.150.100:80 --on-failure remove
//	-a -t 192.168.150.100:80 -r 192.168.150.12:80 -g -w 1
//	# gvs-check -t 192.168.150.100:80 -r 192.168.150.12:80 --check http --check-interval 5s ...
//
// and -R (and gvs --rules) reads them back into the -A/-E or -a/-e line
// before them of the same service or server.

// Option tags of the check options (after parse.go's, the last of which
// is tagTrace).
const (
	tagCheck = tagTrace + 1 + iota
	tagCheckPort
	tagCheckInterval
	tagCheckTimeout
	tagCheckRise
	tagCheckFall
	tagCheckURL
	tagCheckStatus
	tagCheckDigest
	tagCheckPayload
	tagCheckCmd
	tagOnFailure
	tagChecks
)

// checkOptionsTable are the check options, appended to optionsTable.
var checkOptionsTable = []poptOption{
	{"check", 0, argString, tagCheck},
	{"check-port", 0, argString, tagCheckPort},
	{"check-interval", 0, argString, tagCheckInterval},
	{"check-timeout", 0, argString, tagCheckTimeout},
	{"check-rise", 0, argString, tagCheckRise},
	{"check-fall", 0, argString, tagCheckFall},
	{"check-url", 0, argString, tagCheckURL},
	{"check-status", 0, argString, tagCheckStatus},
	{"check-digest", 0, argString, tagCheckDigest},
	{"check-payload", 0, argString, tagCheckPayload},
	{"check-cmd", 0, argString, tagCheckCmd},
	{"on-failure", 0, argString, tagOnFailure},
	{"checks", 0, argNone, tagChecks},
}

func init() { optionsTable = append(optionsTable, checkOptionsTable...) }

// Option bits of the check options, above OptLaddr, in tag order.
const (
	OptCheck Options = OptLaddr << (1 + iota)
	OptCheckPort
	OptCheckInterval
	OptCheckTimeout
	OptCheckRise
	OptCheckFall
	OptCheckURL
	OptCheckStatus
	OptCheckDigest
	OptCheckPayload
	OptCheckCmd
	OptOnFailure
	OptChecks

	// optCheckDetails are the --check-* options, which need --check.
	optCheckDetails = OptCheckPort | OptCheckInterval | OptCheckTimeout | OptCheckRise | OptCheckFall |
		OptCheckURL | OptCheckStatus | OptCheckDigest | OptCheckPayload | OptCheckCmd
	optCheckAll = OptCheck | optCheckDetails
)

// FmtChecks is -L --checks: the check listing.
const FmtChecks = FmtJSON << 1

// checkOptName names a check option bit ("" for others).
func checkOptName(o Options) string {
	if o < OptCheck || o > OptChecks || bits.OnesCount64(uint64(o)) != 1 {
		return ""
	}
	return checkOptionsTable[bits.TrailingZeros64(uint64(o/OptCheck))].long
}

// checkOption handles one check option of a command line; handled is
// false for other options.
func (p *parser) checkOption(rc int, arg string) (handled bool, err error) {
	if rc < tagCheck || rc > tagChecks {
		return false, nil
	}
	o := OptCheck << (rc - tagCheck)
	if err := p.setOption(o); err != nil {
		return true, err
	}
	c := p.c
	if rc != tagOnFailure && rc != tagChecks && c.Check == nil {
		c.Check = &control.Check{}
	}
	ms := func(what string) (uint32, error) {
		d, err := health.ParseDuration(arg)
		if err != nil || d <= 0 || d%time.Millisecond != 0 {
			return 0, fail("illegal check %s `%s' specified (seconds, or a whole number of milliseconds: 200ms, 2s)", what, arg)
		}
		return uint32(d / time.Millisecond), nil
	}
	switch rc {
	case tagCheck:
		if arg != control.CheckNone {
			if _, err := health.ParseKind(arg); err != nil {
				return true, fail("illegal check `%s' specified (tcp, http, udp, cmd or none)", arg)
			}
		}
		c.Check.Kind = arg
	case tagCheckPort:
		n := stringToNumber(arg, 1, 65535)
		if n == -1 {
			return true, fail("illegal check port specified")
		}
		c.Check.Port = uint16(n)
	case tagCheckInterval:
		c.Check.IntervalMS, err = ms("interval")
	case tagCheckTimeout:
		c.Check.TimeoutMS, err = ms("timeout")
	case tagCheckRise, tagCheckFall:
		n := stringToNumber(arg, 1, health.MaxCount)
		name := map[int]string{tagCheckRise: "rise", tagCheckFall: "fall"}[rc]
		if n == -1 {
			return true, fail("illegal check %s specified (1..%d)", name, health.MaxCount)
		}
		if rc == tagCheckRise {
			c.Check.Rise = uint32(n)
		} else {
			c.Check.Fall = uint32(n)
		}
	case tagCheckURL:
		c.Check.URL = arg
	case tagCheckStatus:
		n := stringToNumber(arg, 100, 599)
		if n == -1 {
			return true, fail("illegal check status specified (100..599)")
		}
		c.Check.Status = uint32(n)
	case tagCheckDigest:
		c.Check.Digest = arg
	case tagCheckPayload:
		c.Check.Payload = arg
	case tagCheckCmd:
		words, werr := splitWords(arg)
		if werr != nil || len(words) == 0 {
			return true, fail("illegal check command `%s' specified", arg)
		}
		c.Check.Cmd = words
	case tagOnFailure:
		if arg != "quiesce" && arg != "remove" {
			return true, fail("illegal on-failure `%s' specified (quiesce or remove)", arg)
		}
		c.Service.OnFailure = arg
	case tagChecks:
		c.Format |= FmtChecks
	}
	return true, err
}

// checkOptCheck checks which commands the check options go with, as
// genericOptCheck does for ipvsadm's, and that a check is complete.
func checkOptCheck(c *Command) error {
	illegal := func(o Options) error {
		return fail("Illegal '%s' option with the '%s' command", optName(o), c.Kind)
	}
	for o := OptCheck; o <= OptChecks; o <<= 1 {
		if c.Options&o == 0 {
			continue
		}
		switch {
		case o&optCheckAll != 0 && c.Kind != KindAddDest && c.Kind != KindEditDest:
			return illegal(o)
		case o == OptOnFailure && c.Kind != KindAdd && c.Kind != KindEdit:
			return illegal(o)
		case o == OptChecks && c.Kind != KindList:
			return illegal(o)
		}
	}
	if c.Options&OptChecks != 0 && c.Options&(OptConnection|OptTimeout|OptDaemon|OptStats|OptRate|OptThresholds|
		OptPersistentConn|OptTunInfo|OptJSON) != 0 {
		return fail("options conflicts in the list command")
	}
	if err := checkComplete(c.Check, c.Options); err != nil {
		return err
	}
	if c.Kind == KindAddDest || c.Kind == KindEditDest {
		// processOptions gives -g and -i servers the service's port.
		port := c.Dest.Port
		if c.Dest.Forward == control.FwdRoute || c.Dest.Forward == control.FwdTunnel {
			port = c.Service.Port
		}
		return checkPort(c.Check, port)
	}
	return nil
}

// checkPort refuses a check that would probe port 0: that of a real
// server of a port-0 service, without --check-port.
func checkPort(ch *control.Check, destPort uint16) error {
	if ch == nil || ch.Port != 0 || destPort != 0 || ch.Kind == control.CheckNone || ch.Kind == control.CheckCmd {
		return nil
	}
	return fail("a real server of a port-0 service has no port to check: give --check-port")
}

// checkComplete checks a check's options together: the --check-* options
// need --check, none takes no other, and the whole must be a check gvs
// accepts (health.Spec.Normalize).
func checkComplete(ch *control.Check, opts Options) error {
	if opts&optCheckDetails != 0 && opts&OptCheck == 0 {
		o := Options(1) << bits.TrailingZeros64(uint64(opts&optCheckDetails))
		return fail("the '%s' option needs the 'check' option", optName(o))
	}
	if ch == nil {
		return nil
	}
	if ch.Kind == control.CheckNone {
		if opts&optCheckDetails != 0 {
			o := Options(1) << bits.TrailingZeros64(uint64(opts&optCheckDetails))
			return fail("the '%s' option conflicts with '--check none'", optName(o))
		}
		return nil
	}
	kind, _ := health.ParseKind(ch.Kind)
	spec := health.Spec{Kind: kind, Port: ch.Port, Interval: time.Duration(ch.IntervalMS) * time.Millisecond,
		Timeout: time.Duration(ch.TimeoutMS) * time.Millisecond, Rise: int(ch.Rise), Fall: int(ch.Fall),
		URL: ch.URL, Status: int(ch.Status), Digest: ch.Digest, Payload: ch.Payload, Command: ch.Cmd}
	if err := spec.Normalize(); err != nil {
		return fail("%s", strings.TrimSuffix(err.Error(), ": "+health.ErrInvalid.Error()))
	}
	return nil
}

// effective returns the services as the scheduler sees them, for the
// ipvsadm listings: a real server its health check has down shows the
// weight it has now (0), or is left out if its service removes failed
// servers, as ipvsadm shows the kernel's table under keepalived. The
// configuration (-S, --checks) keeps the configured weights.
func effective(services []control.Service) []control.Service {
	out := slices.Clone(services)
	for i := range out {
		ds := out[i].Dests
		if !slices.ContainsFunc(ds, func(d control.Dest) bool { return d.Health != nil }) {
			continue
		}
		var keep []control.Dest
		for _, d := range ds {
			if h := d.Health; h != nil {
				if !h.InService {
					continue
				}
				d.Weight = h.Weight
			}
			keep = append(keep, d)
		}
		out[i].Dests = keep
	}
	return out
}

// gvsCheckWord starts gvs's own lines in a rules file, after '#'.
const gvsCheckWord = "gvs-check"

// gvsCheckLine returns the rest of a "# gvs-check ..." line.
func gvsCheckLine(line string) (string, bool) {
	t := strings.TrimLeft(line, " \t")
	t, ok := strings.CutPrefix(t, "#")
	if !ok {
		return "", false
	}
	t = strings.TrimLeft(t, " \t")
	rest, ok := strings.CutPrefix(t, gvsCheckWord)
	if !ok || (rest != "" && !strings.ContainsAny(rest[:1], " \t\r")) {
		return "", false
	}
	return rest, true
}

// parseGvsCheck parses the rest of a "# gvs-check" line: a service (-t,
// -u) and its --on-failure, or a service, a real server (-r) and its
// --check options.
func parseGvsCheck(rest string, names Names, prog string) (*Command, error) {
	words, err := splitWords(rest)
	if err != nil {
		return nil, fail("%v", err)
	}
	p := &parser{names: names, prog: prog, c: &Command{}}
	ctx := newPopt(optionsTable, append([]string{prog}, words...))
	rc := 0
	for {
		rc = ctx.nextOpt()
		if rc < 0 {
			break
		}
		switch rc {
		case 't', 'u', tagSCTPService:
			err = p.optService(rc, ctx.arg)
		case 'r':
			if err = p.setOption(OptServer); err == nil {
				err = p.optServer(ctx.arg)
			}
		default:
			var handled bool
			if handled, err = p.checkOption(rc, ctx.arg); !handled || rc == tagChecks {
				err = fail("a gvs-check line takes -t or -u, -r and the check options, not `%s'", optionText(rc))
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if rc < poptEnd {
		return nil, &Error{Status: ExitCommand, Msg: ctx.badOption() + ": " + poptStrerror(rc)}
	}
	if a, ok := ctx.getArg(); ok {
		return nil, fail("unexpected argument %s", a)
	}
	c := p.c
	switch {
	case !c.HasService():
		return nil, fail("a gvs-check line needs a service (-t or -u)")
	case c.Options&OptServer != 0:
		c.Kind = KindEditDest
		if c.Options&OptCheck == 0 {
			return nil, fail("a gvs-check line with a real server needs the 'check' option")
		}
	default:
		c.Kind = KindEdit
		if c.Options&OptOnFailure == 0 {
			return nil, fail("a gvs-check line with a service alone needs the 'on-failure' option")
		}
	}
	if err := checkOptCheck(c); err != nil {
		return nil, err
	}
	return c, nil
}

// optionText names an option by its popt value, as it is written.
func optionText(rc int) string {
	for _, o := range optionsTable {
		if o.val != rc {
			continue
		}
		if o.short != 0 {
			return "-" + string(o.short)
		}
		return "--" + o.long
	}
	return "?"
}

// mergeGvsCheck applies a gvs-check line to the last line before it that
// adds or edits the same service (--on-failure) or real server (--check).
func mergeGvsCheck(lines []restoreLine, c *Command) error {
	for i := len(lines) - 1; i >= 0; i-- {
		req := lines[i].req
		if req.Service == nil || req.Service.Protocol != c.Service.Protocol || req.Service.Addr != c.Service.Addr ||
			req.Service.Port != c.Service.Port {
			continue
		}
		switch {
		case c.Kind == KindEdit && (req.Op == control.OpAddService || req.Op == control.OpEditService):
			if req.Service.OnFailure != "" {
				return fail("the service's on-failure is set twice (line %d)", lines[i].line)
			}
			req.Service.OnFailure = c.Service.OnFailure
			return nil
		case c.Kind == KindEdit && req.Op == control.OpDelService:
			return fail("the service was deleted on line %d", lines[i].line)
		case c.Kind == KindEditDest && (req.Op == control.OpAddDest || req.Op == control.OpEditDest) &&
			req.Dest.Addr == c.Dest.Addr && req.Dest.Port == c.Dest.Port:
			if req.Dest.Check != nil {
				return fail("the real server's check is set twice (line %d)", lines[i].line)
			}
			if err := checkPort(c.Check, req.Dest.Port); err != nil {
				return err
			}
			ch := *c.Check
			req.Dest.Check = &ch
			return nil
		}
	}
	what := "-A or -E line of service " + c.Service.Addr.String() + ":" + strconv.Itoa(int(c.Service.Port))
	if c.Kind == KindEditDest {
		what = "-a or -e line of real server " + c.Dest.Addr.String() + ":" + strconv.Itoa(int(c.Dest.Port))
	}
	return fail("gvs-check: no %s before it", what)
}

// writeServiceCheckRule writes -S's gvs-check line of a service whose
// failed servers are removed (quiesce, the default, needs none).
func writeServiceCheckRule(w *writer, se *control.Service, svcName string) {
	if se.OnFailure == "remove" {
		w.printf("# %s %s --on-failure %s\n", gvsCheckWord, svcName, se.OnFailure)
	}
}

// writeCheckRule writes -S's gvs-check line of a real server's check.
func writeCheckRule(w *writer, svcName, dname string, e *control.Dest) {
	ch := e.Check
	if ch == nil {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s %s -r %s --check %s", gvsCheckWord, svcName, dname, ch.Kind)
	if ch.Port != 0 {
		fmt.Fprintf(&b, " --check-port %d", ch.Port)
	}
	if ch.IntervalMS != 0 {
		fmt.Fprintf(&b, " --check-interval %v", time.Duration(ch.IntervalMS)*time.Millisecond)
	}
	if ch.TimeoutMS != 0 {
		fmt.Fprintf(&b, " --check-timeout %v", time.Duration(ch.TimeoutMS)*time.Millisecond)
	}
	if ch.Rise != 0 {
		fmt.Fprintf(&b, " --check-rise %d", ch.Rise)
	}
	if ch.Fall != 0 {
		fmt.Fprintf(&b, " --check-fall %d", ch.Fall)
	}
	if ch.URL != "" {
		fmt.Fprintf(&b, " --check-url %s", quoteWord(ch.URL))
	}
	if ch.Status != 0 {
		fmt.Fprintf(&b, " --check-status %d", ch.Status)
	}
	if ch.Digest != "" {
		fmt.Fprintf(&b, " --check-digest %s", quoteWord(ch.Digest))
	}
	if ch.Payload != "" {
		fmt.Fprintf(&b, " --check-payload %s", quoteWord(ch.Payload))
	}
	if len(ch.Cmd) > 0 {
		fmt.Fprintf(&b, " --check-cmd %s", quoteWord(joinWords(ch.Cmd)))
	}
	b.WriteString("\n")
	w.str(b.String())
}

// WriteChecks writes gvsadm -L --checks: every service with what its
// failed servers get, and each real server's check and its state, sorted
// as -L sorts (unless FmtNoSort):
//
//	Prot LocalAddress:Port            OnFailure
//	  -> RemoteAddress:Port           Check State Weight Probes    Failed    Downs Ups   Seq       LastError
//	TCP  192.168.150.100:80           quiesce
//	  -> 192.168.150.12:80            http  UP    1      120       0         0     0     239
//	  -> 192.168.150.13:80            http  DOWN  0      120       15        1     0     241       connection refused
//
// Weight is what the scheduler uses now (the configured weight is in
// -S); a server without a check shows "none".
func WriteChecks(out io.Writer, services []control.Service, f Format, names Names) error {
	w := &writer{w: out}
	if f&FmtNoSort == 0 {
		services = slices.Clone(services)
		sortServices(services)
	}
	w.printf("%s %s\n", padRight("Prot LocalAddress:Port", 33), "OnFailure")
	w.printf("  -> %s %s\n", padRight("RemoteAddress:Port", 28),
		"Check State Weight Probes    Failed    Downs Ups   Seq       LastError")
	for i := range services {
		se := &services[i]
		svcName := padRight(protocolName(se.Protocol), 4) + " " + addrportToAnyname(se.Addr, se.Port, se.Protocol, f, names)
		if se.Addr.Unmap().Is4() {
			svcName = cut(svcName, svcNameCut)
		}
		onFailure := se.OnFailure
		if onFailure == "" {
			onFailure = "quiesce"
		}
		w.printf("%s %s\n", padRight(svcName, 33), onFailure)
		dests := se.Dests
		if f&FmtNoSort == 0 {
			dests = slices.Clone(dests)
			sortDests(dests)
		}
		for j := range dests {
			e := &dests[j]
			dname := addrportToAnyname(e.Addr, e.Port, se.Protocol, f, names)
			if e.Addr.Unmap().Is4() {
				dname = cut(dname, destNameCut)
			}
			h := e.Health
			if e.Check == nil || h == nil {
				w.printf("  -> %s %-5s %-5s %d\n", padRight(dname, 28), "none", "-", e.Weight)
				continue
			}
			line := fmt.Sprintf("  -> %s %-5s %-5s %-6d %-9d %-9d %-5d %-5d %-9d %s", padRight(dname, 28), e.Check.Kind,
				strings.ToUpper(h.State), h.Weight, h.Probes, h.Failed, h.Downs, h.Ups, h.LastSeq, h.LastError)
			w.str(strings.TrimRight(line, " ") + "\n")
		}
	}
	return w.err
}

// listChecks runs -L --checks.
func (r *runner) listChecks(c *Command) int {
	req := &control.Request{Version: control.Version, Op: control.OpList}
	fn := fnGetServices
	if c.HasService() {
		req.Service = &control.Service{Protocol: c.Service.Protocol, Addr: c.Service.Addr, Port: c.Service.Port}
		fn = fnGetService
	}
	rep, code := r.do(req)
	if code != ExitOK {
		return code
	}
	if rep.Error != nil {
		return r.listErr(fn, rep.Error)
	}
	if c.HasService() && len(rep.Services) == 0 {
		return r.listErr(fnGetService, &control.Error{Code: control.CodeNoService})
	}
	if err := WriteChecks(r.stdout, rep.Services, c.Format, r.names); err != nil {
		return ExitFail
	}
	return ExitOK
}

// splitWords splits a command line as a POSIX shell splits words, for
// --check-cmd and gvs-check lines: blanks separate words; '...' quotes
// literally; "..." quotes with \" and \\ as escapes; a backslash outside
// quotes escapes the next character. No expansions.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case ch == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated ' quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case ch == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated \" quote")
			}
			inWord = true
		case ch == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("a backslash at the end")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// quoteWord quotes s for splitWords, only if it needs it: in single
// quotes if it has none, else in double quotes with " and \ escaped.
func quoteWord(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_@%+=:,./-", r))
	}) < 0 {
		return s
	}
	if !strings.Contains(s, "'") {
		return "'" + s + "'"
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// joinWords is the inverse of splitWords.
func joinWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = quoteWord(w)
	}
	return strings.Join(q, " ")
}
