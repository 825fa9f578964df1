package ipvsadm

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gvs-project/gvs/control"
)

// TestLab runs the lab's commands through Main against the fake daemon
// (numeric arguments and -n only, so the system resolver is not asked).
func TestLab(t *testing.T) {
	g := newFakeGVS()
	dials := 0
	run := func(args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := Main(args, strings.NewReader(""), &out, &errb, func() (Doer, error) { dials++; return g, nil })
		return out.String(), errb.String(), code
	}
	for _, args := range [][]string{
		{"-A", "-t", "192.168.150.100:80", "-s", "rr"},
		{"-a", "-t", "192.168.150.100:80", "-r", "192.168.150.12", "-g", "-w", "1"},
	} {
		if out, errOut, code := run(args...); code != 0 || out != "" || errOut != "" {
			t.Fatalf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	g.conns = []control.Conn{{Protocol: "tcp", State: "ESTABLISHED", Expires: 899,
		Client:  netipAddrPort("192.168.150.200:47554"),
		Virtual: netipAddrPort("192.168.150.100:80"),
		Dest:    netipAddrPort("192.168.150.12:80")}}
	g.services[0].Dests[0].ActiveConns = 1

	out, _, code := run("-Ln")
	want := "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  192.168.150.100:80 rr\n" +
		"  -> 192.168.150.12:80            Route   1      1          0         \n"
	if code != 0 || out != want {
		t.Errorf("-Ln: exit %d\n%s", code, cmp.Diff(want, out))
	}
	out, _, code = run("-Lnc")
	want = "IPVS connection entries\n" +
		"pro expire state       source             virtual            destination\n" +
		"TCP 14:59  ESTABLISHED 192.168.150.200:47554 192.168.150.100:80 192.168.150.12:80\n"
	if code != 0 || out != want {
		t.Errorf("-Lnc: exit %d\n%s", code, cmp.Diff(want, out))
	}
	if dials != 4 {
		t.Errorf("%d dials for 4 commands", dials)
	}
	// What went to the daemon.
	if got := g.requests[0]; got.Op != control.OpAddService || got.Service.Scheduler != "rr" || got.Service.Port != 80 {
		t.Errorf("request 0 = %+v", got)
	}
	if got := g.requests[1]; got.Op != control.OpAddDest || got.Dest.Forward != control.FwdRoute ||
		got.Dest.Weight != 1 || got.Dest.Port != 80 || got.Dest.Addr != addr("192.168.150.12") {
		t.Errorf("request 1 = %+v %+v", got, got.Dest)
	}
}

// TestDaemonErrors checks that each refusal prints libipvs's text for the
// operation and exits as ipvsadm does.
func TestDaemonErrors(t *testing.T) {
	setup := func() *fakeGVS {
		g := newFakeGVS()
		g.services = []control.Service{{Protocol: control.TCP, Addr: addr("192.168.150.100"), Port: 80, Scheduler: "rr",
			Dests: []control.Dest{{Addr: addr("192.168.150.12"), Port: 80, Forward: control.FwdRoute, Weight: 1}}}}
		return g
	}
	tests := []struct {
		args   string
		stderr string
		status int
	}{
		{"-A -t 192.168.150.100:80", "Service already exists\n", 255},
		{"-A -t 192.168.150.100:81 -s nope", "Scheduler or persistence engine not found\n", 255},
		{"-E -t 192.168.150.100:81", "No such service\n", 255},
		{"-E -t 192.168.150.100:80 -s nope", "Scheduler or persistence engine not found\n", 255},
		{"-D -t 192.168.150.100:81", "No such service\n", 255},
		{"-Z -t 192.168.150.100:81", "No such service\n", 255},
		{"-a -t 192.168.150.100:81 -r 192.168.150.12", "Service not defined\n", 255},
		{"-a -t 192.168.150.100:80 -r 192.168.150.12", "Destination already exists\n", 255},
		{"-e -t 192.168.150.100:81 -r 192.168.150.12", "Service not defined\n", 255},
		{"-e -t 192.168.150.100:80 -r 192.168.150.13", "No such destination\n", 255},
		{"-d -t 192.168.150.100:81 -r 192.168.150.12", "Service not defined\n", 255},
		{"-d -t 192.168.150.100:80 -r 192.168.150.13", "No such destination\n", 255},
		{"-Ln -t 192.168.150.100:81", "No such service\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			out, errOut, code := runWith(t, setup(), "", strings.Fields(tt.args)...)
			if out != "" || errOut != tt.stderr || code != tt.status {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q", code, out, errOut, tt.status, tt.stderr)
			}
		})
	}
}

// replyDoer answers every request with one reply.
type replyDoer struct{ rep *control.Reply }

func (d replyDoer) Do(*control.Request) (*control.Reply, error) { return d.rep, nil }

func TestDaemonErrorText(t *testing.T) {
	tests := []struct {
		code, msg, want string
	}{
		{control.CodeInvalid, "bad weight", "Invalid operation.  Possibly wrong module version, address not unicast, ...\n"},
		{control.CodeNotSupported, "scheduler flag sh-port is not supported by gvs", "scheduler flag sh-port is not supported by gvs\n"},
		{control.CodeInternal, "disk on fire", "disk on fire\n"},
		{control.CodeNoDest, "x", "No such file or directory\n"}, // -C has no ENOENT row
		{"EWEIRD", "the daemon says so", "the daemon says so\n"},
	}
	for _, tt := range tests {
		d := replyDoer{&control.Reply{Version: control.Version, Error: &control.Error{Code: tt.code, Message: tt.msg, Index: -1}}}
		_, errOut, code := runWith(t, d, "", "-C")
		if errOut != tt.want || code != 255 {
			t.Errorf("%s: exit %d, stderr %q, want %q", tt.code, code, errOut, tt.want)
		}
	}
	// Listings exit 1.
	d := replyDoer{&control.Reply{Version: control.Version, Error: &control.Error{Code: control.CodeInternal, Message: "boom", Index: -1}}}
	if _, errOut, code := runWith(t, d, "", "-Ln"); errOut != "boom\n" || code != 1 {
		t.Errorf("-Ln: exit %d, stderr %q", code, errOut)
	}
}

// TestPermissionDenied: a peer the daemon refuses gets the daemon's
// message (it names the uid and the group) and ipvsadm's exit status for
// a user the kernel refuses (2, from "Can't initialize ipvs"), whatever
// the command, and nothing on stdout.
func TestPermissionDenied(t *testing.T) {
	const msg = "permission denied: uid 1000 is neither root nor a member of group gvsadm (gid 4343)"
	d := replyDoer{&control.Reply{Version: control.Version, Error: &control.Error{Code: control.CodePermission, Message: msg, Index: -1}}}
	for _, args := range [][]string{
		nil, {"-C"}, {"-Ln"}, {"-L", "--json"}, {"-Lnc"}, {"-S"}, {"-L", "--timeout"}, {"-R"},
		{"-A", "-t", "192.168.150.100:80"}, {"-Ln", "-t", "192.168.150.100:80"},
	} {
		out, errOut, code := runWith(t, d, "-C\n", args...)
		if out != "" || errOut != "gvsadm: "+msg+"\n" || code != ExitFail {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	if got := ipvsStrerror(fnAddService, &control.Error{Code: control.CodePermission, Message: msg}); got != msg {
		t.Errorf("ipvsStrerror(EPERM) = %q, want the daemon's message", got)
	}
}

func TestDial(t *testing.T) {
	dialErr := errors.New("cannot reach gvs at /x.sock: connection refused (is gvs running? set GVS_SOCKET)")
	for _, tt := range []struct {
		args   []string
		dialed bool
		status int
		stdout string
	}{
		{[]string{"-h"}, false, 0, "gvsadm v0.1.0"},
		{[]string{"-v"}, false, 0, "gvsadm v0.1.0"},
		{[]string{"-A"}, false, 2, ""},
		{[]string{"-R"}, false, 0, ""}, // empty restore sends nothing
		{[]string{"-Ln"}, true, 2, ""},
		{nil, true, 2, ""},
		{[]string{"-C"}, true, 2, ""},
	} {
		var out, errb bytes.Buffer
		dialed := false
		code := Main(tt.args, strings.NewReader(""), &out, &errb, func() (Doer, error) {
			dialed = true
			return nil, dialErr
		})
		if dialed != tt.dialed || code != tt.status || !strings.HasPrefix(out.String(), tt.stdout) {
			t.Errorf("%q: dialed %v exit %d stdout %q stderr %q", tt.args, dialed, code, out.String(), errb.String())
		}
		if tt.dialed && errb.String() != "gvsadm: "+dialErr.Error()+"\n" {
			t.Errorf("%q: stderr %q", tt.args, errb.String())
		}
	}
}

// restoreVariants is one table written in every form -R accepts.
const restoreVariants = `# saved by ipvsadm-save
-A -t 192.168.150.100:80 -s rr
ipvsadm -a -t 192.168.150.100:80 -r 192.168.150.12:80 -g -w 1
/sbin/ipvsadm -a -t 192.168.150.100:80 -r 192.168.150.11:80 -g -w 2

gvsadm	-a	-t	192.168.150.100:80	-r	10.1.1.5:80	-i	-w	1	--tun-type	ipip
-A -t 10.0.0.1:443 -s wlc -p 600 -M 255.255.255.0   # persistent
-a -t 10.0.0.1:443 -r 192.168.150.21:8443 -m -w 3` + "\r" + `
--add-server --tcp-service 10.0.0.1:443 --real-server 192.168.150.22:8443 --fullnat --weight 0
   
-A -u 192.168.150.100:53 -s sh -o -b sh-fallback,sh-port
-a -u vip.lab.example:domain -r 192.168.150.31 -w 1
--set 900 120 300
-Z`

func TestRestore(t *testing.T) {
	g := newFakeGVS()
	out, errOut, code := runWith(t, g, restoreVariants, "-R")
	if code != 0 || out != "" || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if len(g.requests) != 1 || g.requests[0].Op != control.OpBatch {
		t.Fatalf("requests: %+v", g.requests)
	}
	b := g.requests[0]
	ops := []control.Op{}
	for _, c := range b.Commands {
		ops = append(ops, c.Op)
	}
	wantOps := []control.Op{control.OpAddService, control.OpAddDest, control.OpAddDest, control.OpAddDest,
		control.OpAddService, control.OpAddDest, control.OpAddDest, control.OpAddService, control.OpAddDest,
		control.OpSetTimeouts, control.OpZero}
	if diff := cmp.Diff(wantOps, ops); diff != "" {
		t.Errorf("ops (-want +got):\n%s", diff)
	}
	out, _, _ = runWith(t, g, "", "-Sn")
	want := `-A -t 192.168.150.100:80 -s rr
-a -t 192.168.150.100:80 -r 192.168.150.11:80 -g -w 2
-a -t 192.168.150.100:80 -r 192.168.150.12:80 -g -w 1
-a -t 192.168.150.100:80 -r 10.1.1.5:80 -i -w 1 --tun-type ipip
-A -t 10.0.0.1:443 -s wlc -p 600 -M 255.255.255.0
-a -t 10.0.0.1:443 -r 192.168.150.21:8443 -m -w 3
-a -t 10.0.0.1:443 -r 192.168.150.22:8443 --fullnat -w 0
-A -u 192.168.150.100:53 -s sh -o -b sh-fallback,sh-port
-a -u 192.168.150.100:53 -r 192.168.150.31:53 -g -w 1
`
	if out != want {
		t.Errorf("-Sn after -R:\n%s", cmp.Diff(want, out))
	}
}

// TestRoundTrip saves the lab table, restores it into an empty daemon and
// saves again: the two saves must be identical, numeric and with names.
func TestRoundTrip(t *testing.T) {
	table := labTable()
	for i := range table {
		table[i].PE = "" // the fake, like gvs, has no persistence engines
	}
	for _, save := range []string{"-Sn", "-S"} {
		src := newFakeGVS()
		src.services = table
		saved, _, code := runWith(t, src, "", save)
		if code != 0 || saved == "" {
			t.Fatalf("%s: exit %d", save, code)
		}
		dst := newFakeGVS()
		if _, errOut, code := runWith(t, dst, saved, "-R"); code != 0 {
			t.Fatalf("-R: exit %d: %s", code, errOut)
		}
		again, _, _ := runWith(t, dst, "", save)
		if again != saved {
			t.Errorf("%s round trip:\n%s", save, cmp.Diff(saved, again))
		}
	}
}

func TestRestoreErrors(t *testing.T) {
	tests := []struct {
		in     string
		stderr string
		status int
	}{
		{"-A -t 1.2.3.4:80\n\n-a -t 1.2.3.4:80 -r 5.6.7.8 -w 70000\n",
			"line 3: illegal weight specified\n", 2},
		{"-A -t 1.2.3.4:80\n-X\n", "line 2: Try `gvsadm -h' or 'gvsadm --help' for more information.\n", 255},
		{"-C\n-A -t 1.2.3.4:80 -s rr -q\n", "line 2: -q: unknown option\n", 255},
		{"-A -t 1.2.3.4:80\n-Ln\n", "line 2: the 'list' command cannot be restored\n", 2},
		{"-S\n", "line 1: the 'save' command cannot be restored\n", 2},
		{"-R\n", "line 1: the 'restore' command cannot be restored\n", 2},
		{"-A -f 1\n", "line 1: fwmark services (-f) are not supported by gvs\n", 2},
	}
	for _, tt := range tests {
		g := newFakeGVS()
		out, errOut, code := runWith(t, g, tt.in, "-R")
		if out != "" || errOut != tt.stderr || code != tt.status {
			t.Errorf("%q: exit %d, stderr %q; want %d %q", tt.in, code, errOut, tt.status, tt.stderr)
		}
		if len(g.requests) != 0 {
			t.Errorf("%q: %d requests sent", tt.in, len(g.requests))
		}
	}

	// A refusal inside the batch names the line and changes nothing.
	g := newFakeGVS()
	in := "-A -t 1.2.3.4:80 -s rr\n# comment\n-a -t 1.2.3.4:80 -r 5.6.7.8\n\n-a -t 1.2.3.4:80 -r 5.6.7.8 -w 2\n"
	_, errOut, code := runWith(t, g, in, "-R")
	if errOut != "line 5: Destination already exists\n" || code != 255 {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if len(g.services) != 0 {
		t.Errorf("batch applied in part: %+v", g.services)
	}
}

func TestParseRestore(t *testing.T) {
	batch, lines, err := ParseRestore(restoreVariants, labNames())
	if err != nil {
		t.Fatal(err)
	}
	if len(batch.Commands) != 11 {
		t.Fatalf("%d commands", len(batch.Commands))
	}
	wantLines := []int{2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14}
	if diff := cmp.Diff(wantLines, lines); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	for _, c := range batch.Commands {
		if c.Version != control.Version {
			t.Errorf("command without version: %+v", c)
		}
	}
}

// TestLaddrCommands: -P, -Q and -G against the fake daemon, with DPVS's
// error texts.
func TestLaddrCommands(t *testing.T) {
	g := newFakeGVS()
	for _, tc := range []struct {
		args   string
		stdout string
		stderr string
		code   int
	}{
		{"-A -t 192.168.150.100:80 -s rr", "", "", 0},
		{"-P -t 192.168.150.100:80 -z 192.168.150.200", "", "", 0},
		{"-P -t 192.168.150.100:80 -z 192.168.150.200", "", "Local address already exists\n", 255},
		{"-P -t 192.168.150.100:81 -z 192.168.150.200", "", "Service not defined\n", 255},
		{"-Q -t 192.168.150.100:80 -z 192.168.150.9", "", "No such local address\n", 255},
		{"-G -n", "VIP:VPORT            TOTAL    SNAT_IP\nTCP  192.168.150.100:80 1\n                              192.168.150.200\n", "", 0},
		{"-Q -t 192.168.150.100:80 -z 192.168.150.200", "", "", 0},
		{"-G -n", "VIP:VPORT            TOTAL    SNAT_IP\n", "", 0},
	} {
		out, errs, code := runWith(t, g, "", strings.Fields(tc.args)...)
		if out != tc.stdout || errs != tc.stderr || code != tc.code {
			t.Errorf("gvsadm %s: stdout %q stderr %q exit %d; want %q %q %d", tc.args, out, errs, code, tc.stdout, tc.stderr, tc.code)
		}
	}
}

// TestTraceCommand: --trace on|off [service] sends gvs's trace op, prints
// nothing on success and the daemon's message on refusal, and cannot be
// restored.
func TestTraceCommand(t *testing.T) {
	g := newFakeGVS()
	for _, args := range [][]string{{"-A", "-t", "192.168.150.100:80"}, {"-A", "-u", "192.168.150.100:53"}} {
		if _, errs, code := runWith(t, g, "", args...); code != 0 {
			t.Fatalf("%v: %s", args, errs)
		}
	}
	for _, tc := range []struct {
		args   string
		stderr string
		code   int
		want   *control.Request
	}{
		{"--trace on", "", 0, &control.Request{Version: 1, Op: control.OpTrace, Trace: "on"}},
		{"--trace off -t 192.168.150.100:80", "", 0, &control.Request{Version: 1, Op: control.OpTrace, Trace: "off",
			Service: &control.Service{Protocol: "tcp", Addr: netip.MustParseAddr("192.168.150.100"), Port: 80}}},
		{"--trace=on -u vip.lab.example:domain", "", 0, &control.Request{Version: 1, Op: control.OpTrace, Trace: "on",
			Service: &control.Service{Protocol: "udp", Addr: netip.MustParseAddr("192.168.150.100"), Port: 53}}},
		{"--trace on -t 192.168.150.100:81", "ESRCH\n", 255, nil},
	} {
		g.requests = nil
		out, errs, code := runWith(t, g, "", strings.Fields(tc.args)...)
		if out != "" || errs != tc.stderr || code != tc.code {
			t.Errorf("gvsadm %s: stdout %q stderr %q exit %d; want \"\" %q %d", tc.args, out, errs, code, tc.stderr, tc.code)
			continue
		}
		if tc.want != nil {
			if len(g.requests) != 1 {
				t.Fatalf("gvsadm %s: %d requests", tc.args, len(g.requests))
			}
			if diff := cmp.Diff(tc.want, g.requests[0], cmpOpts); diff != "" {
				t.Errorf("gvsadm %s: request (-want +got):\n%s", tc.args, diff)
			}
		}
	}
	g.requests = nil
	_, errs, code := runWith(t, g, "--trace on\n", "-R")
	if code != 2 || errs != "line 1: the 'trace' command cannot be restored\n" || len(g.requests) != 0 {
		t.Errorf("-R with --trace: exit %d stderr %q, %d requests", code, errs, len(g.requests))
	}
}
