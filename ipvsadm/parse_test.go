package ipvsadm

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/gvs-project/gvs/control"
)

// cmpOpts compares netip values by ==.
var cmpOpts = cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{})

func parseLab(args ...string) (*Command, error) { return parseArgs(args, labNames(), programName) }

// TestParseErrors checks ipvsadm 1.31's message and exit status for every
// way a line can be refused.
func TestParseErrors(t *testing.T) {
	tryhelp := "Try `gvsadm -h' or 'gvsadm --help' for more information."
	tests := []struct {
		args   string
		msg    string
		status int
	}{
		// The first option must be a command (parse_options' first switch).
		{"", tryhelp, 255},
		{"foo", tryhelp, 255},
		{"-n -L", tryhelp, 255},
		{"-t 1.2.3.4:80 -A", tryhelp, 255},
		{"--foo", tryhelp, 255},
		{"-K", tryhelp, 255},
		// gvs's FULLNAT local-address commands.
		{"-Q", "You need to supply the 'service-address' option for the 'del-laddr' command", 2},
		{"-P -t 1.2.3.4:80", "You need to supply the 'laddr' option for the 'add-laddr' command", 2},
		{"-P -t 1.2.3.4:80 -z 10.0.0.1 -w 2", "Illegal 'weight' option with the 'add-laddr' command", 2},
		{"-P -t 1.2.3.4:80 -z nonsense", "illegal local address `nonsense' specified", 2},
		{"-G -z 10.0.0.1", "Illegal 'laddr' option with the 'get-laddr' command", 2},
		{"-A -t 1.2.3.4:80 -z 10.0.0.1", "Illegal 'laddr' option with the 'add-service' command", 2},
		// gvs's --trace.
		{"--trace", tryhelp, 255}, // as --start-daemon without its argument
		{"--trace maybe", "illegal trace setting `maybe' specified: on or off", 2},
		{"--trace ON", "illegal trace setting `ON' specified: on or off", 2},
		{"--trace on -s rr", "Illegal 'scheduler' option with the 'trace' command", 2},
		{"--trace off -t 1.2.3.4:80 -z 10.0.0.1", "Illegal 'laddr' option with the 'trace' command", 2},
		{"--trace on -Lc", "invalid option `-Lc'", 2},
		{"--trace on extra", "unexpected argument extra", 2},
		{"-L --trace on", "invalid option `on'", 2}, // as -L --start-daemon master
		{"-- -L", tryhelp, 255},
		// Later commands are "invalid options"; "multiple commands" is
		// unreachable in 1.31.
		{"-L -A", "invalid option `-A'", 2},
		{"-LA", "invalid option `-LA'", 2},
		{"-L -h", "invalid option `-h'", 2},
		{"-L --start-daemon master", "invalid option `master'", 2},
		// popt errors after the first option.
		{"-L --foo", "--foo: unknown option", 255},
		{"-Lq", "-Lq: unknown option", 255},
		{"-A -t", "-t: missing argument", 255},
		{"-At", "-At: missing argument", 255},
		{"-L --numeric=yes", "--numeric=yes: option does not take an argument", 255},
		{"-L -I 1", "-I: unknown option", 255},
		{"-L=", "-L=: unknown option", 255},
		// set_option.
		{"-A -t 1.2.3.4:80 -u 1.2.3.4:80", "multiple 'service-address' options specified", 2},
		{"-a -t 1.2.3.4:80 -r 5.6.7.8 -g -m", "multiple 'forwarding-method' options specified", 2},
		{"-a -t 1.2.3.4:80 -r 5.6.7.8 -m --fullnat", "multiple 'forwarding-method' options specified", 2},
		{"-Lnn", "multiple 'numeric' options specified", 2},
		{"-A -t 1.2.3.4:80 -s rr -s wlc", "multiple 'scheduler' options specified", 2},
		// Addresses and values.
		{"-A -t 1.2.3.4:http2", "illegal virtual server address[:port] specified", 2},
		{"-A -t 80", "illegal virtual server address[:port] specified", 2},
		{"-A -t nowhere.example:80", "illegal virtual server address[:port] specified", 2},
		{"-A -t 1.2.3.4:65536", "illegal virtual server address[:port] specified", 2},
		{"-A -t 1.2.3.4:", "illegal virtual server address[:port] specified", 2},
		{"-A -t 1.2.3.256:80", "illegal virtual server address[:port] specified", 2},
		{"-A -t [1.2.3.4:80", "illegal virtual server address[:port] specified", 2},
		{"-A -t [1.2.3.4]80", "illegal virtual server address[:port] specified", 2},
		{"-A -u 1.2.3.4:http", "illegal virtual server address[:port] specified", 2},
		{"-a -t 1.2.3.4:80 -r 5.6.7.8:x", "illegal real server address[:port] specified", 2},
		{"-a -t 1.2.3.4:80 -r 5.6.7.8 -w 65536", "illegal weight specified", 2},
		{"-a -t 1.2.3.4:80 -r 5.6.7.8 -w -1", "illegal weight specified", 2},
		{"-a -t 1.2.3.4:80 -r 5.6.7.8 -w 1x", "illegal weight specified", 2},
		{"-a -t 1.2.3.4:80 -r 5.6.7.8 -x 2147483648", "illegal u_threshold specified", 2},
		{"-a -t 1.2.3.4:80 -r 5.6.7.8 -y abc", "illegal l_threshold specified", 2},
		{"-A -t 1.2.3.4:80 -p 0", "invalid timeout value `0' specified", 2},
		{"-A -t 1.2.3.4:80 -p 2678401", "invalid timeout value `2678401' specified", 2},
		{"-A -t 1.2.3.4:80 -p foo", "invalid timeout value `foo' specified", 2},
		{"-A -t 1.2.3.4:80 -M 255.255.255.x", "illegal virtual server persistent mask specified", 2},
		{"-A -t 1.2.3.4:80 -b foo", "invalid scheduler flag `foo'", 2},
		{"-A -t 1.2.3.4:80 -b sh-port", "incompatible scheduler flag `sh-port'", 2},
		{"-A -t 1.2.3.4:80 -s rr -b flag-1,mh-fallback", "incompatible scheduler flag `mh-fallback'", 2},
		{"-A -t 1.2.3.4:80 -6", "-6 used before -f\n", 2},
		{"--set 1 2", "--set option requires 3 timeout values", 2},
		{"--set 1 2 x", "invalid timeout value `x' specified", 2},
		{"--set 1 2 3 4", "unexpected argument 4", 2},
		{"-L 1.2.3.4", "unexpected argument 1.2.3.4", 2},
		{"foo -A bar -t 1.2.3.4:80", "unexpected argument foo", 2},
		{"-C -- -n", "unexpected argument -n", 2},
		{"--start-daemon slave", "illegal start-daemon parameter specified", 2},
		{"--stop-daemon x", "illegal start_daemon specified", 2},
		{"--start-daemon master --syncid 256", "illegal syncid specified", 2},
		{"--start-daemon master --mcast-port 0", "illegal mcast-port specified", 2},
		{"--start-daemon master --mcast-ttl 256", "illegal mcast-ttl specified", 2},
		{"--start-daemon master --sync-maxlen 65508", "illegal sync-maxlen specified", 2},
		{"--start-daemon master --mcast-group 10.0.0.1", "invalid IPv4 mcast-group `10.0.0.1'", 2},
		{"--start-daemon master --mcast-group ::1", "invalid IPv6 mcast-group `::1'", 2},
		{"-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-type vxlan", "illegal tunnel type specified", 2},
		{"-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-port 0", "illegal tunnel port specified", 2},
		// generic_opt_check.
		{"-A", "You need to supply the 'service-address' option for the 'add-service' command", 2},
		{"-a -t 1.2.3.4:80", "You need to supply the 'real-server' option for the 'add-server' command", 2},
		{"-d -r 5.6.7.8", "You need to supply the 'service-address' option for the 'delete-server' command", 2},
		{"-A -t 1.2.3.4:80 -n", "Illegal 'numeric' option with the 'add-service' command", 2},
		{"-A -t 1.2.3.4:80 -r 5.6.7.8", "Illegal 'real-server' option with the 'add-service' command", 2},
		{"-A -t 1.2.3.4:80 -w 3", "Illegal 'weight' option with the 'add-service' command", 2},
		{"-E -t 1.2.3.4:80 --tun-type ipip", "Illegal 'tun-type' option with the 'edit-service' command", 2},
		{"-D -t 1.2.3.4:80 -s rr", "Illegal 'scheduler' option with the 'delete-service' command", 2},
		{"-C -n", "Illegal 'numeric' option with the 'flush' command", 2},
		{"-C -t 1.2.3.4:80", "Illegal 'service-address' option with the 'flush' command", 2},
		{"-L -s rr", "Illegal 'scheduler' option with the 'list' command", 2},
		{"-L -o", "Illegal 'ops' option with the 'list' command", 2},
		{"-a -t 1.2.3.4:80 -r 5.6.7.8 -p", "Illegal 'persistent' option with the 'add-server' command", 2},
		{"-d -t 1.2.3.4:80 -r 5.6.7.8 -m", "Illegal 'forwarding-method' option with the 'delete-server' command", 2},
		{"-d -t 1.2.3.4:80 -r 5.6.7.8 -w 1", "Illegal 'weight' option with the 'delete-server' command", 2},
		{"-e -t 1.2.3.4:80 -r 5.6.7.8 --tun-info", "Illegal 'tun-info' option with the 'edit-server' command", 2},
		{"--set 1 2 3 -n", "Illegal 'numeric' option with the 'set' command", 2},
		{"-R -n", "Illegal 'numeric' option with the 'restore' command", 2},
		{"-S -c", "Illegal 'connection' option with the 'save' command", 2},
		{"-S --nosort", "Illegal 'nosort' option with the 'save' command", 2},
		{"-Z -n", "Illegal 'numeric' option with the 'zero' command", 2},
		{"--start-daemon master -n", "Illegal 'numeric' option with the 'start-daemon' command", 2},
		{"--stop-daemon master --mcast-interface eth0", "Illegal 'mcast-interface' option with the 'stop-daemon' command", 2},
		{"-L -c -t 1.2.3.4:80", "The option 'service-address' conflicts with the 'connection' option in the 'list' command", 2},
		{"-L --timeout --daemon", "The option 'daemon' conflicts with the 'timeout' option in the 'list' command", 2},
		{"-L -t 1.2.3.4:80 --timeout", "The option 'timeout' conflicts with the 'service-address' option in the 'list' command", 2},
		// process_options.
		{"-A -t 1.2.3.4", "Zero port specified for non-persistent service", 2},
		{"-E -t 1.2.3.4:0", "Zero port specified for non-persistent service", 2},
		{"-A -t 1.2.3.4:53 -o", "One-Packet Scheduling is only for UDP virtual services", 2},
		{"-a -t 1.2.3.4:80 -r 5.6.7.8 --tun-type ipip", "Tunnel options conflict with forward method", 2},
		{"-a -t 1.2.3.4:80 -r 5.6.7.8 -m --tun-csum", "Tunnel options conflict with forward method", 2},
		{"-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-port 6080", "Illegal 'tun-port' option with the 'ipip' tunnel type", 2},
		{"-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-csum", "Illegal 'tun-csum' option with the 'ipip' tunnel type", 2},
		{"-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-type gue", "You need to supply the 'tun-port' option for the 'gue' tunnel type", 2},
		{"-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-type gue --tun-port 1 --tun-csum --tun-remcsum",
			"The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type", 2},
		{"-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-type gre --tun-remcsum", "Illegal 'tun-remcsum' option with the 'gre' tunnel type", 2},
		{"-L --stats -c", "options conflicts in the list command", 2},
		{"-L --rate --timeout", "options conflicts in the list command", 2},
		{"-L --thresholds --daemon", "options conflicts in the list command", 2},
		{"-L --persistent-conn --timeout", "options conflicts in the list command", 2},
		// gvsadm's --json: a list option outside ipvsadm's matrix.
		{"-L --json --json", "multiple 'json' options specified", 2},
		{"-L --json=yes", "--json=yes: option does not take an argument", 255},
		{"--json -L", tryhelp, 255},
		{"-A -t 1.2.3.4:80 --json", "Illegal 'json' option with the 'add-service' command", 2},
		{"-S --json", "Illegal 'json' option with the 'save' command", 2},
		{"-R --json", "Illegal 'json' option with the 'restore' command", 2},
		{"-Z --json", "Illegal 'json' option with the 'zero' command", 2},
		{"-C --json", "Illegal 'json' option with the 'flush' command", 2},
		{"-A -t 1.2.3.4:80 -n --json", "Illegal 'numeric' option with the 'add-service' command", 2},
		{"-L --json --timeout", "options conflicts in the list command", 2},
		{"-L --daemon --json", "options conflicts in the list command", 2},
		{"-L --json -c -t 1.2.3.4:80", "The option 'service-address' conflicts with the 'connection' option in the 'list' command", 2},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			_, err := parseLab(strings.Fields(tt.args)...)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want %q", err, tt.msg)
			}
			if e.Msg != tt.msg || e.Status != tt.status {
				t.Errorf("got %q (%d), want %q (%d)", e.Msg, e.Status, tt.msg, tt.status)
			}
			if errors.Is(err, ErrNotSupported) {
				t.Errorf("%q matches ErrNotSupported", e.Msg)
			}
		})
	}
}

// TestParseUnsupported checks gvs's refusals of what ipvsadm accepts.
func TestParseUnsupported(t *testing.T) {
	tests := []struct{ args, msg string }{
		{"-A -f 1", "fwmark services (-f) are not supported by gvs"},
		{"-A --sctp-service 1.2.3.4:80", "SCTP services (--sctp-service) are not supported by gvs"},
		{"-A -t [2001:db8::1]:80", "IPv6 services are not supported yet"},
		{"-A -t ::1", "IPv6 services are not supported yet"},
		{"-a -t 1.2.3.4:80 -r [2001:db8::2]:80 -i", "IPv6 real servers are not supported yet"},
		{"-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-type gue --tun-port 6080", "tunnel type `gue' is not supported by gvs"},
		{"-e -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-type gre --tun-csum", "tunnel type `gre' is not supported by gvs"},
		{"--start-daemon master", "the connection sync daemon (--start-daemon) is not supported by gvs yet"},
		{"--stop-daemon backup --syncid 3", "the connection sync daemon (--stop-daemon) is not supported by gvs yet"},
		{"-A -t 1.2.3.4:80 -p -M 255.0.255.0", "netmask 255.0.255.0 is not supported by gvs: it must be contiguous"},
		{"-A -t 1.2.3.4:80 -p -M 0.0.0.0", "netmask 0.0.0.0 is not supported by gvs"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			_, err := parseLab(strings.Fields(tt.args)...)
			var e *Error
			if !errors.As(err, &e) || e.Msg != tt.msg || e.Status != ExitFail {
				t.Fatalf("err = %v, want %q (exit 2)", err, tt.msg)
			}
			if !errors.Is(err, ErrNotSupported) {
				t.Errorf("%q does not match ErrNotSupported", e.Msg)
			}
		})
	}
	// ipvsadm's own checks come before gvs's: a bad fwmark is ipvsadm's error.
	if _, err := parseLab("-A", "-f", "0"); err == nil || err.Error() != "invalid fwmark value `0' specified" {
		t.Errorf("-f 0: %v", err)
	}
}

// TestParseCommands checks what each accepted line asks for, as the
// request gvs receives.
func TestParseCommands(t *testing.T) {
	vip := addr("192.168.150.100")
	rs := addr("192.168.150.12")
	key := &control.Service{Protocol: control.TCP, Addr: vip, Port: 80}
	svc := func(s control.Service) *control.Service {
		if s.Protocol == "" {
			s.Protocol = control.TCP
		}
		if !s.Addr.IsValid() {
			s.Addr = vip
		}
		if s.Port == 0 {
			s.Port = 80
		}
		return &s
	}
	dest := func(d control.Dest) *control.Dest {
		if !d.Addr.IsValid() {
			d.Addr = rs
		}
		return &d
	}
	req := func(op control.Op, s *control.Service, d *control.Dest) *control.Request {
		return &control.Request{Version: control.Version, Op: op, Service: s, Dest: d}
	}
	tests := []struct {
		args string
		want *control.Request
	}{
		// Services: wlc by default, everything sent.
		{"-A -t 192.168.150.100:80", req(control.OpAddService, svc(control.Service{Scheduler: "wlc"}), nil)},
		{"-A -t 192.168.150.100:80 -s rr", req(control.OpAddService, svc(control.Service{Scheduler: "rr"}), nil)},
		{"--add-service --tcp-service=192.168.150.100:80 --scheduler=rr", req(control.OpAddService, svc(control.Service{Scheduler: "rr"}), nil)},
		{"-At 192.168.150.100:80 -srr", req(control.OpAddService, svc(control.Service{Scheduler: "rr"}), nil)},
		{"-At192.168.150.100:80", req(control.OpAddService, svc(control.Service{Scheduler: "wlc"}), nil)},
		{"-A -t=192.168.150.100:80", req(control.OpAddService, svc(control.Service{Scheduler: "wlc"}), nil)},
		{"-A -t vip.lab.example:http", req(control.OpAddService, svc(control.Service{Scheduler: "wlc"}), nil)},
		{"-A -t vip.lab.example:www", req(control.OpAddService, svc(control.Service{Scheduler: "wlc"}), nil)},
		{"-A -t 192.168.150.100:+80", req(control.OpAddService, svc(control.Service{Scheduler: "wlc"}), nil)},
		{"-A -t 0xc0.0250.0x96.100:80", req(control.OpAddService, svc(control.Service{Scheduler: "wlc"}), nil)},
		{"-A -t 192.168.38500:80", req(control.OpAddService, svc(control.Service{Scheduler: "wlc"}), nil)},
		{"-A -t 3232274020:80", req(control.OpAddService, svc(control.Service{Scheduler: "wlc"}), nil)},
		// -p with and without its optional argument.
		{"-A -t 192.168.150.100:80 -p", req(control.OpAddService, svc(control.Service{Scheduler: "wlc", Persistent: true, Timeout: 360}), nil)},
		{"-A -t 192.168.150.100:80 -p 600", req(control.OpAddService, svc(control.Service{Scheduler: "wlc", Persistent: true, Timeout: 600}), nil)},
		{"-A -t 192.168.150.100:80 -p600 -s rr", req(control.OpAddService, svc(control.Service{Scheduler: "rr", Persistent: true, Timeout: 600}), nil)},
		{"-A -t 192.168.150.100:80 -p -s rr", req(control.OpAddService, svc(control.Service{Scheduler: "rr", Persistent: true, Timeout: 360}), nil)},
		{"-A -t 192.168.150.100:80 --persistent=60", req(control.OpAddService, svc(control.Service{Scheduler: "wlc", Persistent: true, Timeout: 60}), nil)},
		{"-A -t 192.168.150.100:0 -p", req(control.OpAddService, &control.Service{Protocol: control.TCP, Addr: vip, Scheduler: "wlc", Persistent: true, Timeout: 360}, nil)},
		{"-A -t 192.168.150.100:80 -p 60 -M 255.255.255.0", req(control.OpAddService, svc(control.Service{Scheduler: "wlc", Persistent: true, Timeout: 60, Netmask: 24}), nil)},
		{"-A -t 192.168.150.100:80 -p -M 255.255.255.255", req(control.OpAddService, svc(control.Service{Scheduler: "wlc", Persistent: true, Timeout: 360}), nil)},
		{"-A -t 192.168.150.100:80 -p -M mask.lab.example", req(control.OpAddService, svc(control.Service{Scheduler: "wlc", Persistent: true, Timeout: 360, Netmask: 24}), nil)},
		{"-A -u 192.168.150.100:53 -s sh -b sh-fallback,sh-port -o", req(control.OpAddService,
			svc(control.Service{Protocol: control.UDP, Port: 53, Scheduler: "sh", SchedFlags: []string{"sh-fallback", "sh-port"}, OnePacket: true}), nil)},
		{"-A -t 192.168.150.100:80 -b flag-2,,flag-1", req(control.OpAddService, svc(control.Service{Scheduler: "wlc", SchedFlags: []string{"flag-1", "flag-2"}}), nil)},
		{"-A -t 192.168.150.100:80 -s mh -b mh-port", req(control.OpAddService, svc(control.Service{Scheduler: "mh", SchedFlags: []string{"mh-port"}}), nil)},
		{"-A -t 192.168.150.100:80 --pe sip -p", req(control.OpAddService, svc(control.Service{Scheduler: "wlc", PE: "sip", Persistent: true, Timeout: 360}), nil)},
		{"-A -t 192.168.150.100:80 -s abcdefghijklmnopq", req(control.OpAddService, svc(control.Service{Scheduler: "abcdefghijklmno"}), nil)},
		{"-E -t 192.168.150.100:80", req(control.OpEditService, svc(control.Service{Scheduler: "wlc"}), nil)},
		{"-D -t 192.168.150.100:80", req(control.OpDelService, key, nil)},
		{"--delete-service -t vip.lab.example:http", req(control.OpDelService, key, nil)},
		{"-C", req(control.OpClear, nil, nil)},
		{"--clear", req(control.OpClear, nil, nil)},
		// Real servers: weight 1 and route by default; -g and -i take the
		// service's port; -m and --fullnat keep their own or the service's.
		{"-a -t 192.168.150.100:80 -r 192.168.150.12", req(control.OpAddDest, key, dest(control.Dest{Port: 80, Forward: control.FwdRoute, Weight: 1}))},
		{"-a -t 192.168.150.100:80 -r 192.168.150.12 -g -w 1", req(control.OpAddDest, key, dest(control.Dest{Port: 80, Forward: control.FwdRoute, Weight: 1}))},
		{"-a -t 192.168.150.100:80 -r 192.168.150.12:8080 -g", req(control.OpAddDest, key, dest(control.Dest{Port: 80, Forward: control.FwdRoute, Weight: 1}))},
		{"-a -t 192.168.150.100:80 -r 192.168.150.12:8080 -i", req(control.OpAddDest, key, dest(control.Dest{Port: 80, Forward: control.FwdTunnel, Weight: 1}))},
		{"-a -t 192.168.150.100:80 -r 192.168.150.12 -i --tun-type ipip", req(control.OpAddDest, key, dest(control.Dest{Port: 80, Forward: control.FwdTunnel, Weight: 1}))},
		{"-a -t 192.168.150.100:80 -r 192.168.150.12:8080 -m -w 0", req(control.OpAddDest, key, dest(control.Dest{Port: 8080, Forward: control.FwdMasq, Weight: 0}))},
		{"-a -t 192.168.150.100:80 -r 192.168.150.12 -m", req(control.OpAddDest, key, dest(control.Dest{Port: 80, Forward: control.FwdMasq, Weight: 1}))},
		{"-a -t 192.168.150.100:80 -r 192.168.150.12:http-alt --fullnat -w 65535 -x 100 -y 10", req(control.OpAddDest, key,
			dest(control.Dest{Port: 8080, Forward: control.FwdFullNat, Weight: 65535, UThreshold: 100, LThreshold: 10}))},
		{"-a -r 192.168.150.12 -m -t 192.168.150.100:80", req(control.OpAddDest, key, dest(control.Dest{Port: 0, Forward: control.FwdMasq, Weight: 1}))},
		{"-a -t 192.168.150.100:80 -r [192.168.150.12]:8080 -m", req(control.OpAddDest, key, dest(control.Dest{Port: 80, Forward: control.FwdMasq, Weight: 1}))},
		{"-e -t 192.168.150.100:80 -r 192.168.150.12 -w 5", req(control.OpEditDest, key, dest(control.Dest{Port: 80, Forward: control.FwdRoute, Weight: 5}))},
		{"-d -t 192.168.150.100:80 -r 192.168.150.12", req(control.OpDelDest, key, dest(control.Dest{Port: 80}))},
		{"-d -t 192.168.150.100:80 -r 192.168.150.12:8080", req(control.OpDelDest, key, dest(control.Dest{Port: 8080}))},
		{"-d -t 192.168.150.100:80 -r rs12.lab.example", req(control.OpDelDest, key, dest(control.Dest{Port: 80}))},
		// Zero, timeouts.
		{"-Z", req(control.OpZero, nil, nil)},
		{"-Z -t 192.168.150.100:80", req(control.OpZero, key, nil)},
		{"-Z -t 0.0.0.0:0", req(control.OpZero, nil, nil)},
		{"--zero --tcp-service 192.168.150.100:80", req(control.OpZero, key, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			c, err := parseLab(strings.Fields(tt.args)...)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Request()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpOpts); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSet(t *testing.T) {
	c, err := parseLab("--set", "900", "120", "300")
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Request()
	if err != nil {
		t.Fatal(err)
	}
	want := &control.Request{Version: control.Version, Op: control.OpSetTimeouts,
		Timeouts: &control.Timeouts{TCP: 900, TCPFin: 120, UDP: 300}}
	if diff := cmp.Diff(want, r, cmpOpts); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Arguments may come before the command, and 0 keeps a value.
	c, err = parseLab("0", "--set", "0", "2678400")
	if err != nil {
		t.Fatal(err)
	}
	if c.Timeouts != (control.Timeouts{TCP: 0, TCPFin: 0, UDP: 2678400}) {
		t.Errorf("timeouts = %+v", c.Timeouts)
	}
}

// TestParseList checks the listing commands: their options and formats.
func TestParseList(t *testing.T) {
	tests := []struct {
		args string
		opts Options
		f    Format
	}{
		{"-L", 0, 0},
		{"-l", 0, 0},
		{"--list", 0, 0},
		{"-Ln", OptNumeric, FmtNumeric},
		{"-L -n", OptNumeric, FmtNumeric},
		{"-Lnc", OptNumeric | OptConnection, FmtNumeric},
		{"-ln --stats", OptNumeric | OptStats, FmtNumeric | FmtStats},
		{"-L --rate --exact", OptRate | OptExact, FmtRate | FmtExact},
		{"-LX --stats", OptExact | OptStats, FmtExact | FmtStats},
		{"-L --thresholds --sort", OptThresholds, FmtThresholds},
		{"-L --persistent-conn -c", OptPersistentConn | OptConnection, FmtPersistentConn},
		{"-L --nosort --tun-info", OptNoSort | OptTunInfo, FmtNoSort | FmtTunInfo},
		{"-L --timeout", OptTimeout, 0},
		{"-L --daemon", OptDaemon, 0},
		{"-Ln -t 192.168.150.100:80", OptNumeric | OptService, FmtNumeric},
		{"-Sn", OptNumeric, FmtNumeric},
		{"-S", 0, 0},
		{"-L --json", OptJSON, FmtJSON},
		{"-Lnc --json", OptNumeric | OptConnection | OptJSON, FmtNumeric | FmtJSON},
		{"-l --json --stats --nosort", OptJSON | OptStats | OptNoSort, FmtJSON | FmtStats | FmtNoSort},
		{"-L --json -t 192.168.150.100:80", OptJSON | OptService, FmtJSON},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			c, err := parseLab(strings.Fields(tt.args)...)
			if err != nil {
				t.Fatal(err)
			}
			if c.Options != tt.opts || c.Format != tt.f {
				t.Errorf("options %#x format %#x, want %#x %#x", c.Options, c.Format, tt.opts, tt.f)
			}
			if _, err := c.Request(); !errors.Is(err, ErrNotConfig) {
				t.Errorf("Request: %v, want ErrNotConfig", err)
			}
		})
	}
}

// TestParseExported checks Parse itself (numeric input only: no lookups).
func TestParseExported(t *testing.T) {
	c, err := Parse([]string{"-A", "-t", "192.168.150.100:80", "-s", "rr"})
	if err != nil || c.Kind != KindAdd || c.Service.Scheduler != "rr" {
		t.Fatalf("Parse = %+v, %v", c, err)
	}
	for _, args := range [][]string{{"-h"}, {"-h", "--bogus"}, {"x", "--help"}} {
		c, err := Parse(args)
		if err != nil || c.Kind != KindHelp {
			t.Errorf("Parse(%q) = %+v, %v; want help", args, c, err)
		}
	}
	if c, err := Parse([]string{"-v"}); err != nil || c.Kind != KindVersion {
		t.Errorf("Parse(-v) = %+v, %v", c, err)
	}
}

func TestInetAton(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" = rejected
	}{
		{"1.2.3.4", "1.2.3.4"},
		{"1.2.3", "1.2.0.3"},
		{"1.2", "1.0.0.2"},
		{"16909060", "1.2.3.4"},
		{"0x01020304", "1.2.3.4"},
		{"010.0.0.1", "8.0.0.1"},
		{"1.2.3.4 trailing", "1.2.3.4"},
		{"1.2.0xffff", "1.2.255.255"},
		{"1.2.0x10000", ""},
		{"255.255.255.255", "255.255.255.255"},
		{"4294967295", "255.255.255.255"},
		{"4294967296", ""},
		{"1.2.3.256", ""},
		{"1.2.65536", ""},
		{"256.1.1.1", ""},
		{"1..2", ""},
		{"1.2.3.4.5", ""},
		{"08.1.1.1", ""},
		{"0x", ""},
		{"x1", ""},
		{"", ""},
		{"1.2.3.4x", ""},
		{"1.", ""},
	}
	for _, tt := range tests {
		a, ok := inetAton(tt.in)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tt.want {
			t.Errorf("inetAton(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStringToNumber(t *testing.T) {
	tests := []struct {
		in       string
		min, max int64
		want     int64
	}{
		{"80", 0, 65535, 80},
		{" 80", 0, 65535, 80},
		{"+80", 0, 65535, 80},
		{"-0", 0, 65535, 0},
		{"80 ", 0, 65535, -1},
		{"", 0, 65535, -1},
		{"0x50", 0, 65535, -1},
		{"65536", 0, 65535, -1},
		{"99999999999999999999", 0, 1 << 62, -1},
		{"-5", 0, 10, -1},
	}
	for _, tt := range tests {
		if got := stringToNumber(tt.in, tt.min, tt.max); got != tt.want {
			t.Errorf("stringToNumber(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
