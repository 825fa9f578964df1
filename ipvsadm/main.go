package ipvsadm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/gvs-project/gvs/control"
)

// Doer sends one request to the daemon and returns its reply. An error
// means the exchange itself failed; a refusal is Reply.Error.
type Doer interface {
	Do(*control.Request) (*control.Reply, error)
}

// Main runs gvsadm with the arguments after the program name and returns
// the exit status. dial is called only when a command needs the daemon
// (never for -h, -v, a rejected line or an empty -R).
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer, dial func() (Doer, error)) int {
	r := &runner{stdin: stdin, stdout: stdout, stderr: stderr, dial: dial, names: &SystemNames{}, prog: programName}
	return r.run(args)
}

// runner is one gvsadm invocation.
type runner struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	dial           func() (Doer, error)
	names          Names
	prog           string

	doer Doer
}

func (r *runner) errorf(format string, args ...any) {
	fmt.Fprintf(r.stderr, format, args...)
}

func (r *runner) run(args []string) int {
	if len(args) == 0 {
		// "list the table if there is no other argument"
		return r.listAll(0)
	}
	c, err := parseArgs(args, r.names, r.prog)
	if err != nil {
		return r.fail(err)
	}
	switch c.Kind {
	case KindHelp:
		WriteUsage(r.stdout, r.prog)
		return ExitOK
	case KindVersion:
		WriteVersion(r.stdout)
		return ExitOK
	case KindList:
		return r.list(c)
	case KindSave:
		return r.listAll(c.Format | FmtRule)
	case KindRestore:
		return r.restore()
	case KindGetLaddr:
		return r.getLaddr(c)
	case KindTrace:
		return r.trace(c)
	}
	req, err := c.Request()
	if err != nil {
		return r.fail(err)
	}
	rep, code := r.do(req)
	if code != ExitOK {
		return code
	}
	if rep.Error != nil {
		r.errorf("%s\n", ipvsStrerror(opFunc(req.Op), rep.Error))
		return ExitCommand
	}
	return ExitOK
}

// fail prints a parse error as ipvsadm does and returns its status.
func (r *runner) fail(err error) int {
	var e *Error
	if errors.As(err, &e) {
		r.errorf("%s\n", e.Msg)
		return e.Status
	}
	r.errorf("%s: %v\n", r.prog, err)
	return ExitFail
}

// do sends req, dialling first if needed. A transport failure is
// reported here and returned as a non-zero status.
func (r *runner) do(req *control.Request) (*control.Reply, int) {
	if r.doer == nil {
		d, err := r.dial()
		if err != nil {
			r.errorf("%s: %v\n", r.prog, err)
			return nil, ExitFail
		}
		r.doer = d
	}
	rep, err := r.doer.Do(req)
	if err != nil {
		r.errorf("%s: %v\n", r.prog, err)
		return nil, ExitFail
	}
	if rep == nil {
		r.errorf("%s: empty reply from gvs\n", r.prog)
		return nil, ExitFail
	}
	if rep.Error != nil && rep.Error.Code == control.CodePermission {
		// The daemon refused us as a peer, whatever the request.
		// ipvsadm run by a user the kernel refuses fails at ipvs_init
		// ("Can't initialize ipvs: Permission denied (you must be
		// root)", exit 2) before any command; gvsadm exits the same way
		// but prints the daemon's message, which names the uid and the
		// group that would be let in.
		r.errorf("%s: %s\n", r.prog, ipvsStrerror(fnGeneric, rep.Error))
		return nil, ExitFail
	}
	return rep, ExitOK
}

// listErr reports a failed listing request as ipvsadm does
// (ipvs_strerror, exit 1).
func (r *runner) listErr(fn libFunc, e *control.Error) int {
	r.errorf("%s\n", ipvsStrerror(fn, e))
	return ExitList
}

// trace runs --trace on|off [service]: gvs's own command, whose errors
// (no libipvs text exists for them) print the daemon's message.
func (r *runner) trace(c *Command) int {
	req := &control.Request{Version: control.Version, Op: control.OpTrace, Trace: c.Trace}
	if c.HasService() {
		req.Service = &control.Service{Protocol: c.Service.Protocol, Addr: c.Service.Addr, Port: c.Service.Port}
	}
	rep, code := r.do(req)
	if code != ExitOK {
		return code
	}
	if rep.Error != nil {
		r.errorf("%s\n", rep.Error.Message)
		return ExitCommand
	}
	return ExitOK
}

// getLaddr runs -G: the FULLNAT local addresses of every service that
// has some, or of the one named.
func (r *runner) getLaddr(c *Command) int {
	req := &control.Request{Version: control.Version, Op: control.OpList}
	if c.HasService() {
		req.Service = &control.Service{Protocol: c.Service.Protocol, Addr: c.Service.Addr, Port: c.Service.Port}
	}
	rep, code := r.do(req)
	if code != ExitOK {
		return code
	}
	if rep.Error != nil {
		return r.listErr(fnGetService, rep.Error)
	}
	if err := WriteLaddrs(r.stdout, rep.Services, c.Format, r.names); err != nil {
		return ExitFail
	}
	return ExitOK
}

// list runs -L with its options.
func (r *runner) list(c *Command) int {
	if c.Format&FmtJSON != 0 {
		return r.listJSON(c)
	}
	switch {
	case c.Options&OptConnection != 0:
		rep, code := r.do(&control.Request{Version: control.Version, Op: control.OpConns})
		if code != ExitOK {
			return code
		}
		if rep.Error != nil {
			return r.listErr(fnGeneric, rep.Error)
		}
		WriteConns(r.stdout, rep.Conns, c.Format, r.names)
		return ExitOK
	case c.HasService():
		key := &control.Service{Protocol: c.Service.Protocol, Addr: c.Service.Addr, Port: c.Service.Port}
		rep, code := r.do(&control.Request{Version: control.Version, Op: control.OpList, Service: key})
		if code != ExitOK {
			return code
		}
		if rep.Error != nil {
			return r.listErr(fnGetService, rep.Error)
		}
		if len(rep.Services) == 0 {
			return r.listErr(fnGetService, &control.Error{Code: control.CodeNoService})
		}
		WriteService(r.stdout, &rep.Services[0], c.Format, r.names)
		return ExitOK
	case c.Options&OptTimeout != 0:
		rep, code := r.do(&control.Request{Version: control.Version, Op: control.OpTimeouts})
		if code != ExitOK {
			return code
		}
		if rep.Error != nil {
			return r.listErr(fnGeneric, rep.Error)
		}
		t := rep.Timeouts
		if t == nil {
			t = &control.Timeouts{}
		}
		WriteTimeouts(r.stdout, t)
		return ExitOK
	case c.Options&OptDaemon != 0:
		// gvs runs no connection sync daemon, so there is nothing to
		// list: ipvsadm prints nothing when neither daemon runs.
		return ExitOK
	}
	return r.listAll(c.Format)
}

// listAll is ipvsadm's list_all (and -S with FmtRule).
func (r *runner) listAll(f Format) int {
	var info *control.Info
	if f&FmtRule == 0 {
		rep, code := r.do(&control.Request{Version: control.Version, Op: control.OpInfo})
		if code != ExitOK {
			return code
		}
		if rep.Error != nil {
			return r.listErr(fnGeneric, rep.Error)
		}
		info = rep.Info
	}
	rep, code := r.do(&control.Request{Version: control.Version, Op: control.OpList})
	if code != ExitOK {
		return code
	}
	if rep.Error != nil {
		if f&FmtRule == 0 {
			// ipvsadm prints the header before asking for services.
			io.WriteString(r.stdout, headerLine(info))
		}
		return r.listErr(fnGetServices, rep.Error)
	}
	WriteList(r.stdout, info, rep.Services, f, r.names)
	return ExitOK
}

// listJSON runs -L --json: the info, the services (or the one named) and
// with -c the connections, written as one document only once everything
// has arrived, so that a failure prints ipvsadm's message and exit status
// and no partial document.
func (r *runner) listJSON(c *Command) int {
	rep, code := r.do(&control.Request{Version: control.Version, Op: control.OpInfo})
	if code != ExitOK {
		return code
	}
	if rep.Error != nil {
		return r.listErr(fnGeneric, rep.Error)
	}
	info := rep.Info
	req := &control.Request{Version: control.Version, Op: control.OpList}
	fn := fnGetServices
	if c.HasService() {
		req.Service = &control.Service{Protocol: c.Service.Protocol, Addr: c.Service.Addr, Port: c.Service.Port}
		fn = fnGetService
	}
	rep, code = r.do(req)
	if code != ExitOK {
		return code
	}
	if rep.Error != nil {
		return r.listErr(fn, rep.Error)
	}
	services := rep.Services
	if c.HasService() && len(services) == 0 {
		return r.listErr(fnGetService, &control.Error{Code: control.CodeNoService})
	}
	var conns []control.Conn
	withConns := c.Options&OptConnection != 0
	if withConns {
		rep, code = r.do(&control.Request{Version: control.Version, Op: control.OpConns})
		if code != ExitOK {
			return code
		}
		if rep.Error != nil {
			return r.listErr(fnGeneric, rep.Error)
		}
		conns = rep.Conns
	}
	if err := WriteJSON(r.stdout, info, services, conns, withConns, c.Format); err != nil {
		r.errorf("%s: %v\n", r.prog, err)
		return ExitList
	}
	return ExitOK
}

// headerLine is list_all's first line:
// "IP Virtual Server version %d.%d.%d (size=%d)\n".
func headerLine(info *control.Info) string {
	ver, size := defaultIPVSVersion, 0
	if info != nil {
		if info.IPVSVersion != "" {
			ver = info.IPVSVersion
		}
		size = info.ConnTableSize
	}
	return fmt.Sprintf("IP Virtual Server version %s (size=%d)\n", ver, size)
}

// restoreLine is one command of a -R input with its line number.
type restoreLine struct {
	line int
	cmd  *Command
	req  *control.Request
}

// ParseRestore parses ipvsadm -S output (as -R reads it): one command per
// line, with or without a leading "ipvsadm" or "gvsadm"; blank lines and
// '#' comments are skipped. It returns the OpBatch carrying every command
// in order and, for each command, its 1-based line number. A line that
// does not parse fails the whole input with an *Error naming the line.
func ParseRestore(input string, names Names) (*control.Request, []int, error) {
	lines, err := parseRestore(input, names, programName)
	if err != nil {
		return nil, nil, err
	}
	batch := &control.Request{Version: control.Version, Op: control.OpBatch}
	nums := make([]int, len(lines))
	for i, l := range lines {
		batch.Commands = append(batch.Commands, *l.req)
		nums[i] = l.line
	}
	return batch, nums, nil
}

// restoreFields splits a line as ipvsadm's config_stream_read does (on
// spaces, tabs and carriage returns), after cutting a '#' comment.
func restoreFields(line string) []string {
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	f := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' })
	if len(f) > 0 {
		switch path.Base(f[0]) {
		case "ipvsadm", "gvsadm":
			f = f[1:]
		}
	}
	return f
}

func parseRestore(input string, names Names, prog string) ([]restoreLine, error) {
	var out []restoreLine
	for i, line := range strings.Split(input, "\n") {
		n := i + 1
		args := restoreFields(line)
		if len(args) == 0 {
			continue
		}
		c, err := parseArgs(args, names, prog)
		if err != nil {
			var e *Error
			if errors.As(err, &e) {
				return nil, &Error{Status: e.Status, Msg: fmt.Sprintf("line %d: %s", n, e.Msg), unsupported: e.unsupported}
			}
			return nil, &Error{Status: ExitFail, Msg: fmt.Sprintf("line %d: %v", n, err)}
		}
		req, err := c.Request()
		if err != nil {
			return nil, &Error{Status: ExitFail,
				Msg: fmt.Sprintf("line %d: the '%s' command cannot be restored", n, c.Kind)}
		}
		out = append(out, restoreLine{line: n, cmd: c, req: req})
	}
	return out, nil
}

// maxRestoreInput bounds what -R reads. Each rule of ipvsadm -S output
// encodes to a longer JSON command, so a table whose rules alone pass
// this size could not fit in one control.MaxMessageSize batch anyway.
const maxRestoreInput = control.MaxMessageSize

// restore runs -R: every line of stdin is parsed first, then all of them
// go to the daemon in one OpBatch, applied all or nothing.
func (r *runner) restore() int {
	data, err := io.ReadAll(io.LimitReader(r.stdin, maxRestoreInput+1))
	if err != nil {
		r.errorf("%s: reading standard input: %v\n", r.prog, err)
		return ExitFail
	}
	if len(data) > maxRestoreInput {
		r.errorf("%s: the restore input is larger than %d bytes\n", r.prog, maxRestoreInput)
		return ExitFail
	}
	batch, nums, err := ParseRestore(string(data), r.names)
	if err != nil {
		return r.fail(err)
	}
	if len(batch.Commands) == 0 {
		return ExitOK
	}
	if b, err := json.Marshal(batch); err == nil && len(b) >= control.MaxMessageSize {
		r.errorf("%s: the restore is too large for one request (%d bytes, at most %d)\n",
			r.prog, len(b), control.MaxMessageSize-1)
		return ExitFail
	}
	rep, code := r.do(batch)
	if code != ExitOK {
		return code
	}
	if e := rep.Error; e != nil {
		if e.Index >= 0 && e.Index < len(nums) {
			r.errorf("line %d: %s\n", nums[e.Index], ipvsStrerror(opFunc(batch.Commands[e.Index].Op), e))
		} else {
			r.errorf("%s\n", ipvsStrerror(fnGeneric, e))
		}
		return ExitCommand
	}
	return ExitOK
}
