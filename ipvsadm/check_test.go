package ipvsadm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/gvs-project/gvs/control"
)

// checkedTable is the fixture of the health check tests: a service that
// removes failed servers, with one server up, one down (out of the
// scheduler) and one unchecked; a UDP service that quiesces them, with
// one server down (weight 0) and one with a command check whose
// arguments need quoting.
func checkedTable() []control.Service {
	httpCheck := func(url string) *control.Check {
		return &control.Check{Kind: "http", IntervalMS: 200, TimeoutMS: 200, Rise: 2, Fall: 3, URL: url, Status: 200}
	}
	return []control.Service{
		{Protocol: control.TCP, Addr: addr("192.168.150.100"), Port: 80, Scheduler: "rr", OnFailure: "remove",
			Dests: []control.Dest{
				{Addr: addr("192.168.150.12"), Port: 80, Forward: control.FwdRoute, Weight: 1, ActiveConns: 2,
					Check:  httpCheck("/"),
					Health: &control.Health{State: "up", InService: true, Weight: 1, Successes: 40, Probes: 40, LastSeq: 81}},
				{Addr: addr("192.168.150.13"), Port: 80, Forward: control.FwdRoute, Weight: 3, InactiveConns: 4,
					Check: &control.Check{Kind: "http", IntervalMS: 1500, TimeoutMS: 1000, Rise: 2, Fall: 3,
						URL: "http://www.example.com/health?full=1", Status: 204, Digest: strings.Repeat("ab", 32)},
					Health: &control.Health{State: "down", Weight: 0, Failures: 5, Probes: 40, Failed: 5, Downs: 1,
						LastSeq: 82, LastError: "connection refused"}},
				{Addr: addr("192.168.150.14"), Port: 80, Forward: control.FwdRoute, Weight: 2},
			}},
		{Protocol: control.UDP, Addr: addr("192.168.150.100"), Port: 53, Scheduler: "wrr", OnFailure: "quiesce",
			Dests: []control.Dest{
				{Addr: addr("192.168.150.12"), Port: 53, Forward: control.FwdRoute, Weight: 5,
					Check: &control.Check{Kind: "udp", Port: 5353, IntervalMS: 5000, TimeoutMS: 2000, Rise: 1, Fall: 1,
						Payload: "it's a \"probe\""},
					Health: &control.Health{State: "down", InService: true, Weight: 0, Failures: 1, Probes: 3, Failed: 1,
						Downs: 1, LastSeq: 7, LastError: "port unreachable"}},
				{Addr: addr("192.168.150.13"), Port: 53, Forward: control.FwdRoute, Weight: 1,
					Check: &control.Check{Kind: "cmd", IntervalMS: 5000, TimeoutMS: 2000, Rise: 2, Fall: 3,
						Cmd: []string{"/usr/local/bin/check dns", "--name", "a b", "it's"}},
					Health: &control.Health{State: "up", InService: true, Weight: 1, Probes: 3, Successes: 3, LastSeq: 9}},
			}},
	}
}

func TestCheckGolden(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"checks", []string{"-L", "--checks", "-n"}},
		{"checks_service", []string{"-l", "--checks", "-u", "192.168.150.100:53"}},
		{"list_checked", []string{"-Ln"}},
		{"save_checked", []string{"-S", "-n"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := newFakeGVS()
			g.services = checkedTable()
			out, errOut, code := runWith(t, g, "", tt.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			path := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), out); diff != "" {
				t.Errorf("%v (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

// TestEffectiveListings: -L, a service's -L and --json show what the
// scheduler sees: the server that is out is not listed, the quiesced one
// has weight 0; -S keeps the configuration.
func TestEffectiveListings(t *testing.T) {
	g := newFakeGVS()
	g.services = checkedTable()
	for _, args := range [][]string{{"-Ln"}, {"-Ln", "-t", "192.168.150.100:80"}, {"-L", "--json"}, {"-Ln", "--stats"}} {
		out, _, code := runWith(t, g, "", args...)
		if code != 0 || strings.Contains(out, "192.168.150.13:80") || !strings.Contains(out, "192.168.150.14") {
			t.Errorf("%v lists the server that is out, or not the others:\n%s", args, out)
		}
	}
	out, _, _ := runWith(t, g, "", "-L", "--json")
	if !strings.Contains(out, `"address": "192.168.150.12",
          "port": 53,
          "forward": "Route",
          "weight": 0,`) {
		t.Errorf("--json does not show the quiesced server with weight 0:\n%s", out)
	}
	out, _, _ = runWith(t, g, "", "-Sn")
	if !strings.Contains(out, "-a -t 192.168.150.100:80 -r 192.168.150.13:80 -g -w 3\n") ||
		!strings.Contains(out, "-a -u 192.168.150.100:53 -r 192.168.150.12:53 -g -w 5\n") {
		t.Errorf("-S does not save the configured servers and weights:\n%s", out)
	}
}

// TestSaveRestoreChecks: what -S writes, -R reads back into the same
// checks and settings, through the gvs-check lines.
func TestSaveRestoreChecks(t *testing.T) {
	var b strings.Builder
	table := checkedTable()
	if err := WriteList(&b, nil, table, FmtRule|FmtNumeric, labNames()); err != nil {
		t.Fatal(err)
	}
	batch, lines, err := ParseRestore(b.String(), labNames())
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	got := map[string]*control.Check{}
	onFailure := map[string]string{}
	for i, c := range batch.Commands {
		if lines[i] == 0 {
			t.Fatal("no line number")
		}
		switch c.Op {
		case control.OpAddService:
			onFailure[c.Service.Protocol] = c.Service.OnFailure
		case control.OpAddDest:
			got[c.Service.Protocol+" "+c.Dest.Addr.String()] = c.Dest.Check
		}
	}
	want := map[string]*control.Check{}
	for _, s := range table {
		for _, d := range s.Dests {
			want[s.Protocol+" "+d.Addr.String()] = d.Check
		}
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("restored checks (-want +got):\n%s\nfrom:\n%s", diff, b.String())
	}
	// quiesce is the default and needs no line.
	if onFailure["tcp"] != "remove" || onFailure["udp"] != "" {
		t.Fatalf("on-failure %v", onFailure)
	}
}

func TestCheckOptions(t *testing.T) {
	svc := []string{"-t", "192.168.150.100:80"}
	for _, tc := range []struct {
		args []string
		want *control.Check
		// onFailure is the service's --on-failure.
		onFailure string
	}{
		{args: []string{"-a", "-r", "192.168.150.12", "--check", "tcp"}, want: &control.Check{Kind: "tcp"}},
		{args: []string{"-a", "-r", "192.168.150.12", "-w", "2", "--check=http", "--check-url", "/health", "--check-status", "204",
			"--check-interval", "0.5", "--check-timeout", "200ms", "--check-rise", "1", "--check-fall", "5", "--check-port", "8080"},
			want: &control.Check{Kind: "http", URL: "/health", Status: 204, IntervalMS: 500, TimeoutMS: 200, Rise: 1, Fall: 5, Port: 8080}},
		{args: []string{"-e", "-r", "192.168.150.12", "--check", "cmd", "--check-cmd", `/bin/check "a b" 'c'`},
			want: &control.Check{Kind: "cmd", Cmd: []string{"/bin/check", "a b", "c"}}},
		{args: []string{"-e", "-r", "192.168.150.12", "--check", "none"}, want: &control.Check{Kind: "none"}},
		{args: []string{"-e", "-r", "192.168.150.12", "-w", "3"}},
		{args: []string{"-A", "-s", "rr", "--on-failure", "remove"}, onFailure: "remove"},
		{args: []string{"-E", "-s", "rr"}},
	} {
		c, err := parseArgs(append(tc.args, svc...), labNames(), programName)
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		req, err := c.Request()
		if err != nil {
			t.Fatal(err)
		}
		var check *control.Check
		if req.Dest != nil {
			check = req.Dest.Check
		}
		if diff := cmp.Diff(tc.want, check); diff != "" || req.Service.OnFailure != tc.onFailure {
			t.Errorf("%v: on-failure %q, check (-want +got):\n%s", tc.args, req.Service.OnFailure, diff)
		}
	}
}

func TestBadCheckOptions(t *testing.T) {
	a := []string{"-a", "-t", "192.168.150.100:80", "-r", "192.168.150.12"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append(a, "--check", "icmp"), "illegal check `icmp' specified (tcp, http, udp, cmd or none)"},
		{append(a, "--check-url", "/"), "the 'check-url' option needs the 'check' option"},
		{append(a, "--check", "tcp", "--check-url", "/"), "--check-url is for http checks, not tcp"},
		{append(a, "--check", "none", "--check-fall", "2"), "the 'check-fall' option conflicts with '--check none'"},
		{append(a, "--check", "tcp", "--check", "http"), "multiple 'check' options specified"},
		{append(a, "--check", "tcp", "--check-interval", "0"), "illegal check interval `0' specified"},
		{append(a, "--check", "tcp", "--check-interval", "1.5ms"), "illegal check interval `1.5ms' specified"},
		{append(a, "--check", "tcp", "--check-interval", "1s", "--check-timeout", "2s"), "--check-timeout 2s is outside 1ms..1s (the interval)"},
		{append(a, "--check", "tcp", "--check-rise", "0"), "illegal check rise specified (1..100)"},
		{append(a, "--check", "tcp", "--check-fall", "101"), "illegal check fall specified (1..100)"},
		{append(a, "--check", "tcp", "--check-port", "0"), "illegal check port specified"},
		{append(a, "--check", "http", "--check-status", "600"), "illegal check status specified (100..599)"},
		{append(a, "--check", "http", "--check-digest", "xyz"), `--check-digest "xyz" is neither an MD5`},
		{append(a, "--check", "cmd"), "a cmd check needs --check-cmd"},
		{append(a, "--check", "cmd", "--check-cmd", "check.sh"), `--check-cmd "check.sh": the program must be an absolute path`},
		{append(a, "--check", "cmd", "--check-cmd", "'/bin/x"), "illegal check command `'/bin/x' specified"},
		{[]string{"-A", "-t", "192.168.150.100:80", "--check", "tcp"}, "Illegal 'check' option with the 'add-service' command"},
		{[]string{"-d", "-t", "192.168.150.100:80", "-r", "192.168.150.12", "--check", "tcp"}, "Illegal 'check' option with the 'delete-server' command"},
		{[]string{"-P", "-t", "192.168.150.100:80", "-z", "10.0.0.1", "--check-fall", "2"}, "Illegal 'check-fall' option with the 'add-laddr' command"},
		{append(a, "--on-failure", "remove"), "Illegal 'on-failure' option with the 'add-server' command"},
		{[]string{"-A", "-t", "192.168.150.100:80", "--on-failure", "drain"}, "illegal on-failure `drain' specified (quiesce or remove)"},
		{[]string{"-L", "--checks", "--stats"}, "options conflicts in the list command"},
		{[]string{"-a", "-t", "192.168.150.100:0", "-r", "192.168.150.12", "--check", "tcp"},
			"a real server of a port-0 service has no port to check: give --check-port"},
		{[]string{"-L", "--checks", "--json"}, "options conflicts in the list command"},
		{[]string{"-S", "--checks"}, "Illegal 'checks' option with the 'save' command"},
	} {
		g := newFakeGVS()
		g.services = checkedTable()
		out, errOut, code := runWith(t, g, "", tc.args...)
		if code != ExitFail || out != "" || errOut != tc.want+"\n" && !strings.HasPrefix(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, errOut, tc.want)
		}
		if len(g.requests) != 0 {
			t.Errorf("%v: %d requests sent", tc.args, len(g.requests))
		}
	}
}

func TestRestoreGvsCheckLines(t *testing.T) {
	head := "-A -t 192.168.150.100:80 -s rr\n-a -t 192.168.150.100:80 -r 192.168.150.12:80 -g -w 1\n" +
		"-A -u 192.168.150.100:53 -s rr\n-a -u 192.168.150.100:53 -r 192.168.150.12:5353 -m -w 1\n"
	for _, tc := range []struct {
		name, in, want string
	}{
		{"before its server", "-A -t 192.168.150.100:80 -s rr\n# gvs-check -t 192.168.150.100:80 -r 192.168.150.12 --check tcp\n" +
			"-a -t 192.168.150.100:80 -r 192.168.150.12:80 -g -w 1\n",
			"line 2: gvs-check: no -a or -e line of real server 192.168.150.12:80 before it"},
		{"another port", head + "# gvs-check -u 192.168.150.100:53 -r 192.168.150.12:53 --check udp\n",
			"line 5: gvs-check: no -a or -e line of real server 192.168.150.12:53 before it"},
		{"no service line", head + "# gvs-check -t 192.168.150.100:81 --on-failure remove\n",
			"line 5: gvs-check: no -A or -E line of service 192.168.150.100:81 before it"},
		{"twice", head + "# gvs-check -t 192.168.150.100:80 -r 192.168.150.12 --check tcp\n" +
			"#gvs-check -t 192.168.150.100:80 -r 192.168.150.12 --check http\n",
			"line 6: the real server's check is set twice (line 2)"},
		{"bad option", head + "# gvs-check -t 192.168.150.100:80 -r 192.168.150.12 --check tcp --check-fall 0\n",
			"line 5: illegal check fall specified (1..100)"},
		{"other options", head + "# gvs-check -t 192.168.150.100:80 -r 192.168.150.12 -w 3 --check tcp\n",
			"line 5: a gvs-check line takes -t or -u, -r and the check options, not `-w'"},
		{"nothing", head + "# gvs-check -t 192.168.150.100:80\n",
			"line 5: a gvs-check line with a service alone needs the 'on-failure' option"},
		{"no service", head + "# gvs-check --on-failure remove\n",
			"line 5: a gvs-check line needs a service (-t or -u)"},
		{"server without check", head + "# gvs-check -t 192.168.150.100:80 -r 192.168.150.12 --on-failure remove\n",
			"line 5: a gvs-check line with a real server needs the 'check' option"},
		{"bad quote", head + "# gvs-check -t 192.168.150.100:80 -r 192.168.150.12 --check cmd --check-cmd '/bin/x\n",
			"line 5: unterminated ' quote"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGVS()
			out, errOut, code := runWith(t, g, tc.in, "-R")
			if code != ExitFail || out != "" || errOut != tc.want+"\n" {
				t.Errorf("exit %d, stderr %q, want %q", code, errOut, tc.want)
			}
			if len(g.requests) != 0 {
				t.Errorf("%d requests sent", len(g.requests))
			}
		})
	}
	// A good file: the checks join their -a and -e lines, other comments
	// are skipped, and "#gvs-checks" is just a comment.
	g := newFakeGVS()
	in := head + "# gvs-check -t 192.168.150.100:80 --on-failure remove\n" +
		"  #  gvs-check\t-t 192.168.150.100:80 -r 192.168.150.12 --check http --check-url '/a?b=1&c=2'\n" +
		"# gvs-checks are ours\n" +
		"-e -u 192.168.150.100:53 -r 192.168.150.12:5353 -m -w 4\n" +
		"# gvs-check -u 192.168.150.100:53 -r 192.168.150.12:5353 --check udp --check-payload \"it's\"\n"
	if _, errOut, code := runWith(t, g, in, "-R"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	cmds := g.requests[0].Commands
	if len(cmds) != 5 || cmds[0].Service.OnFailure != "remove" ||
		cmds[1].Dest.Check == nil || cmds[1].Dest.Check.URL != "/a?b=1&c=2" ||
		cmds[3].Dest.Check != nil || cmds[4].Op != control.OpEditDest || cmds[4].Dest.Check == nil || cmds[4].Dest.Check.Payload != "it's" {
		t.Fatalf("batch %+v", cmds)
	}
}

func TestSplitWords(t *testing.T) {
	for in, want := range map[string][]string{
		`a b  c`:            {"a", "b", "c"},
		`'a b' "c d" e\ f`:  {"a b", "c d", "e f"},
		`'it'"'"'s'`:        {"it's"},
		`"a \"q\" \\ \n"`:   {`a "q" \ \n`},
		`x''y ""`:           {"xy", ""},
		"\t /bin/true \r\n": {"/bin/true"},
	} {
		got, err := splitWords(in)
		if err != nil || !cmp.Equal(got, want) {
			t.Errorf("splitWords(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{`'a`, `"a`, `a\`} {
		if got, err := splitWords(in); err == nil {
			t.Errorf("splitWords(%q) = %q, want an error", in, got)
		}
	}
}

// FuzzQuoteWords: any list of words, joined with quoteWord, splits back
// into the same words.
func FuzzQuoteWords(f *testing.F) {
	for _, s := range []string{"/bin/x\x00a b\x00it's", "\x00\x00", `"\'`, "a\tb\nc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words := strings.Split(s, "\x00")
		got, err := splitWords(joinWords(words))
		if err != nil || !cmp.Equal(got, words, cmpopts.EquateEmpty()) {
			t.Fatalf("%q -> %q -> %q, %v", words, joinWords(words), got, err)
		}
	})
}

// TestOptionTags: every option has its own popt value, and every check
// option its own bit (check.go counts its tags and bits after
// parse.go's last ones).
func TestOptionTags(t *testing.T) {
	seen := map[int]string{}
	for _, o := range optionsTable {
		if prev, ok := seen[o.val]; ok && !(o.val == 'L' || o.val == 'l') && prev != o.long {
			t.Errorf("options %q and %q share the value %d", prev, o.long, o.val)
		}
		seen[o.val] = o.long
	}
	for i, o := range checkOptionsTable {
		bit := OptCheck << i
		if bit <= OptLaddr || checkOptName(bit) != o.long || optName(bit) != o.long {
			t.Errorf("option %q: bit %#x named %q", o.long, uint64(bit), checkOptName(bit))
		}
	}
}
