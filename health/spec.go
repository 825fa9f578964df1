package health

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kind is what a check does. The zero value is not a kind.
type Kind uint8

// The kinds of check.
const (
	TCP  Kind = iota + 1 // a TCP connection is accepted
	HTTP                 // an HTTP GET answers the expected status (and body digest)
	UDP                  // a datagram is answered
	Cmd                  // a command exits 0
)

var kindNames = map[Kind]string{TCP: "tcp", HTTP: "http", UDP: "udp", Cmd: "cmd"}

// String returns the kind's name as gvsadm's --check takes it.
func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// ParseKind parses a kind's name: tcp, http, udp or cmd.
func ParseKind(s string) (Kind, error) {
	for k, n := range kindNames {
		if n == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown check %q: one of tcp, http, udp, cmd", s)
}

// Defaults, used for the fields of a Spec left zero.
const (
	DefaultInterval = 5 * time.Second
	DefaultTimeout  = 2 * time.Second
	DefaultRise     = 2
	DefaultFall     = 3
	DefaultStatus   = 200
	DefaultPath     = "/"
)

// Limits a Spec must stay within.
const (
	// MinInterval and MaxInterval bound Interval: probes more often than
	// every 10 ms would load the servers for no use, and a check that
	// waits more than an hour between probes is not one.
	MinInterval = 10 * time.Millisecond
	MaxInterval = time.Hour
	// MinTimeout bounds Timeout from below; from above it is bounded by
	// Interval, so that probes of one server never overlap.
	MinTimeout = time.Millisecond
	// MaxCount bounds Rise and Fall.
	MaxCount = 100
	// MaxPayload bounds a UDP check's payload: it must fit one
	// unfragmented datagram on any Ethernet path (1500 - 20 - 8, rounded
	// down).
	MaxPayload = 1024
	// MaxArgs and MaxCmdLen bound a command check's argument list and
	// its total length.
	MaxArgs   = 64
	MaxCmdLen = 4096
	// MaxURL bounds an HTTP check's URL.
	MaxURL = 2048
	// MaxBody is how much of an HTTP answer's body is read (and hashed).
	MaxBody = 1 << 20
)

// Spec is one real server's check. Build it, call Normalize, and do not
// change it afterwards: a Monitor and the service table share it. The
// zero value is not valid (it has no Kind).
type Spec struct {
	Kind Kind
	// Port is the port probed; 0 means the real server's own port. A
	// command check receives it as GVS_REAL_PORT.
	Port uint16
	// Interval is the time from one probe's start to the next's;
	// Timeout bounds one probe.
	Interval, Timeout time.Duration
	// Rise is how many consecutive successful probes bring a down
	// server up; Fall how many consecutive failed probes take an up
	// server down.
	Rise, Fall int

	// URL is an HTTP check's request: a path ("/health") or an http://
	// URL, whose host goes in the Host header (the connection is always
	// to the real server). Default "/".
	URL string
	// Status is the HTTP status a healthy server answers (default 200).
	Status int
	// Digest, if set, is the hex MD5 (32 digits) or SHA-256 (64 digits)
	// of the body a healthy server answers.
	Digest string

	// Payload is what a UDP check sends (may be empty: an empty
	// datagram).
	Payload string

	// Command is a command check's program (an absolute path) and its
	// arguments.
	Command []string
}

// ErrInvalid is wrapped by every error of Normalize.
var ErrInvalid = errors.New("invalid check")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalid)
}

// Normalize fills in the defaults and checks the spec. Its error names
// the option that is wrong, by gvsadm's name for it.
func (s *Spec) Normalize() error {
	if _, ok := kindNames[s.Kind]; !ok {
		return invalid("--check: unknown kind %d", s.Kind)
	}
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Timeout == 0 {
		s.Timeout = min(DefaultTimeout, s.Interval)
	}
	if s.Rise == 0 {
		s.Rise = DefaultRise
	}
	if s.Fall == 0 {
		s.Fall = DefaultFall
	}
	switch {
	case s.Interval < MinInterval || s.Interval > MaxInterval:
		return invalid("--check-interval %v is outside %v..%v", s.Interval, MinInterval, MaxInterval)
	case s.Timeout < MinTimeout || s.Timeout > s.Interval:
		return invalid("--check-timeout %v is outside %v..%v (the interval)", s.Timeout, MinTimeout, s.Interval)
	case s.Rise < 1 || s.Rise > MaxCount:
		return invalid("--check-rise %d is outside 1..%d", s.Rise, MaxCount)
	case s.Fall < 1 || s.Fall > MaxCount:
		return invalid("--check-fall %d is outside 1..%d", s.Fall, MaxCount)
	}
	if s.Kind != HTTP {
		switch {
		case s.URL != "":
			return invalid("--check-url is for http checks, not %v", s.Kind)
		case s.Status != 0:
			return invalid("--check-status is for http checks, not %v", s.Kind)
		case s.Digest != "":
			return invalid("--check-digest is for http checks, not %v", s.Kind)
		}
	}
	if s.Kind != UDP && s.Payload != "" {
		return invalid("--check-payload is for udp checks, not %v", s.Kind)
	}
	if s.Kind != Cmd && len(s.Command) > 0 {
		return invalid("--check-cmd is for cmd checks, not %v", s.Kind)
	}
	switch s.Kind {
	case HTTP:
		if s.URL == "" {
			s.URL = DefaultPath
		}
		if _, _, err := s.request(); err != nil {
			return err
		}
		if s.Status == 0 {
			s.Status = DefaultStatus
		}
		if s.Status < 100 || s.Status > 599 {
			return invalid("--check-status %d is not an HTTP status (100..599)", s.Status)
		}
		if s.Digest != "" {
			s.Digest = strings.ToLower(s.Digest)
			if _, err := hex.DecodeString(s.Digest); err != nil || (len(s.Digest) != 32 && len(s.Digest) != 64) {
				return invalid("--check-digest %q is neither an MD5 (32 hex digits) nor a SHA-256 (64 hex digits)", s.Digest)
			}
		}
	case UDP:
		if len(s.Payload) > MaxPayload {
			return invalid("--check-payload is %d bytes, more than %d", len(s.Payload), MaxPayload)
		}
	case Cmd:
		n := 0
		for _, a := range s.Command {
			n += len(a) + 1
			if strings.IndexByte(a, 0) >= 0 {
				return invalid("--check-cmd: an argument holds a NUL byte")
			}
		}
		switch {
		case len(s.Command) == 0 || s.Command[0] == "":
			return invalid("a cmd check needs --check-cmd")
		case !filepath.IsAbs(s.Command[0]):
			return invalid("--check-cmd %q: the program must be an absolute path", s.Command[0])
		case len(s.Command) > MaxArgs:
			return invalid("--check-cmd has %d arguments, more than %d", len(s.Command), MaxArgs)
		case n > MaxCmdLen:
			return invalid("--check-cmd is %d bytes long, more than %d", n, MaxCmdLen)
		}
	}
	return nil
}

// request returns the Host header (empty: the server's address) and the
// request target of an HTTP check's URL.
func (s *Spec) request() (host, target string, err error) {
	if len(s.URL) > MaxURL {
		return "", "", invalid("--check-url is %d bytes long, more than %d", len(s.URL), MaxURL)
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return "", "", invalid("--check-url %q: %v", s.URL, err)
	}
	switch {
	case u.Scheme == "" && u.Host == "" && strings.HasPrefix(s.URL, "/"):
	case u.Scheme == "http" && u.Host != "" && u.User == nil:
		host = u.Host
	default:
		return "", "", invalid("--check-url %q is neither a path (/...) nor an http:// URL", s.URL)
	}
	if u.Fragment != "" || strings.ContainsAny(s.URL, " \t\r\n") {
		return "", "", invalid("--check-url %q: no fragment or white space", s.URL)
	}
	return host, u.RequestURI(), nil
}

// Equal reports whether two specs describe the same check.
func (s *Spec) Equal(o *Spec) bool {
	if s == nil || o == nil {
		return s == o
	}
	return s.Kind == o.Kind && s.Port == o.Port && s.Interval == o.Interval && s.Timeout == o.Timeout &&
		s.Rise == o.Rise && s.Fall == o.Fall && s.URL == o.URL && s.Status == o.Status &&
		s.Digest == o.Digest && s.Payload == o.Payload && slices.Equal(s.Command, o.Command)
}

// ParseDuration parses an interval or timeout as gvsadm takes it: a
// number of seconds ("5", "0.5") or a Go duration ("200ms", "1m30s").
func ParseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 || f > MaxInterval.Seconds() || f != f {
			return 0, fmt.Errorf("%q is not a duration between 0 and %v", s, MaxInterval)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > MaxInterval {
		return 0, fmt.Errorf("%q is not a duration between 0 and %v (seconds, or with a unit: 200ms, 2s)", s, MaxInterval)
	}
	return d, nil
}
