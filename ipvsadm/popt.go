package ipvsadm

import "strings"

// This file is a small reimplementation of the parts of popt (1.16 and
// later: poptGetNextOpt, poptGetArg, poptBadOption, poptStrerror) that
// ipvsadm relies on, so that gvsadm accepts and rejects exactly the
// command lines ipvsadm does:
//
//   - options and non-option arguments may be mixed; non-options are
//     collected as "leftovers" (poptGetArg), "--" makes the rest leftovers;
//   - "--long" and "--long=arg"; no abbreviations; a single dash is a
//     cluster of short options ("-Ln", "-At addr", "-tVIP:80");
//   - a short option with an argument takes the rest of its cluster
//     ("-s" "rr" and "-srr" are the same; "-t=x" drops the '='), otherwise
//     the next argument even if it starts with '-';
//   - an optional argument (-p) is taken from the next argument only if
//     that does not start with '-'.

// argKind is how an option takes its argument.
type argKind uint8

const (
	argNone     argKind = iota // POPT_ARG_NONE
	argString                  // POPT_ARG_STRING
	argOptional                // POPT_ARG_STRING | POPT_ARGFLAG_OPTIONAL
)

// poptOption is one row of ipvsadm's options_table.
type poptOption struct {
	long  string
	short byte // 0: no short form
	arg   argKind
	val   int
}

// popt return codes (popt.h).
const (
	poptEnd            = -1
	poptErrNoArg       = -10
	poptErrBadOpt      = -11
	poptErrUnwantedArg = -12
)

func poptStrerror(rc int) string {
	switch rc {
	case poptErrNoArg:
		return "missing argument"
	case poptErrBadOpt:
		return "unknown option"
	case poptErrUnwantedArg:
		return "option does not take an argument"
	}
	return "unknown error"
}

// popt is a parsing context over argv (argv[0] is the program name and is
// skipped, as poptGetContext does).
type popt struct {
	opts []poptOption
	argv []string
	next int

	// nextChar is the rest of a short-option cluster; hasNextChar
	// distinguishes "" (popt's non-NULL empty string) from none.
	nextChar    string
	hasNextChar bool

	restLeftover bool
	leftovers    []string
	nextLeftover int

	// arg is the argument of the option last returned; hasArg is false
	// for an optional argument that was not given (popt's NULL).
	arg    string
	hasArg bool
}

func newPopt(opts []poptOption, argv []string) *popt {
	return &popt{opts: opts, argv: argv, next: 1}
}

func (p *popt) findLong(name string, oneDash bool) *poptOption {
	if oneDash {
		// No ipvsadm option has POPT_ARGFLAG_ONEDASH, so "-name" is
		// never a long option.
		return nil
	}
	for i := range p.opts {
		if p.opts[i].long != "" && p.opts[i].long == name {
			return &p.opts[i]
		}
	}
	return nil
}

func (p *popt) findShort(c byte) *poptOption {
	if c == 0 {
		return nil
	}
	for i := range p.opts {
		if p.opts[i].short == c {
			return &p.opts[i]
		}
	}
	return nil
}

// nextOpt is poptGetNextOpt: it returns the val of the next option (its
// argument in p.arg), poptEnd when argv is exhausted, or a poptErr code.
func (p *popt) nextOpt() int {
	for {
		var opt *poptOption
		longArg, haveLongArg := "", false

		if !p.hasNextChar && p.next == len(p.argv) {
			return poptEnd
		}
		if !p.hasNextChar {
			orig := p.argv[p.next]
			p.next++
			if p.restLeftover || orig == "" || orig[0] != '-' || orig == "-" {
				p.leftovers = append(p.leftovers, orig)
				continue
			}
			if orig == "--" {
				p.restLeftover = true
				continue
			}
			s, oneDash := orig[1:], true
			if s[0] == '-' {
				s, oneDash = s[1:], false
			}
			name := s
			if i := strings.IndexByte(s, '='); i >= 0 {
				name, longArg, haveLongArg = s[:i], s[i+1:], true
			}
			opt = p.findLong(name, oneDash)
			if opt == nil && !oneDash {
				return poptErrBadOpt
			}
			if opt == nil {
				p.nextChar, p.hasNextChar = orig[1:], true
				longArg, haveLongArg = "", false
			}
		}
		if p.hasNextChar {
			nc := p.nextChar
			p.nextChar, p.hasNextChar = "", false
			if nc == "" {
				return poptErrBadOpt
			}
			opt = p.findShort(nc[0])
			if opt == nil {
				return poptErrBadOpt
			}
			if rest := nc[1:]; rest != "" {
				if rest[0] == '=' {
					rest = rest[1:]
				}
				p.nextChar, p.hasNextChar = rest, true
			}
		}

		switch opt.arg {
		case argNone:
			if haveLongArg || (p.hasNextChar && strings.HasPrefix(p.nextChar, "=")) {
				return poptErrUnwantedArg
			}
		default:
			p.arg, p.hasArg = "", false
			switch {
			case haveLongArg:
				p.arg, p.hasArg = longArg, true
			case p.hasNextChar:
				p.arg, p.hasArg = strings.TrimPrefix(p.nextChar, "="), true
				p.nextChar, p.hasNextChar = "", false
			case p.next == len(p.argv):
				if opt.arg != argOptional {
					return poptErrNoArg
				}
			case opt.arg == argOptional && strings.HasPrefix(p.argv[p.next], "-"):
				// Optional argument left out.
			default:
				p.arg, p.hasArg = p.argv[p.next], true
				p.next++
			}
		}
		return opt.val
	}
}

// badOption is poptBadOption(con, POPT_BADOPTION_NOALIAS): the argv
// element last consumed.
func (p *popt) badOption() string {
	if p.next == 0 {
		return ""
	}
	return p.argv[p.next-1]
}

// getArg is poptGetArg: the next leftover, if any.
func (p *popt) getArg() (string, bool) {
	if p.nextLeftover < len(p.leftovers) {
		s := p.leftovers[p.nextLeftover]
		p.nextLeftover++
		return s, true
	}
	return "", false
}
