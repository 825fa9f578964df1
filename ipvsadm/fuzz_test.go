package ipvsadm

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary command lines (arguments separated by '\n')
// to the parser: it must never panic, every refusal must carry one of
// ipvsadm's exit statuses, and every accepted configuration line must
// turn into a request.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"-A\n-t\n192.168.150.100:80\n-s\nrr",
		"-a\n-t\n192.168.150.100:80\n-r\n192.168.150.12\n-g\n-w\n1",
		"-Ln", "-Lnc", "-ln\n--stats", "-At\n1.2.3.4:80\n-p", "-A\n-t\n[::1]:80",
		"--set\n1\n2\n3", "-Z", "-S\n-n", "-L\n--exact\n--rate", "-h", "-v",
		"-a\n-t\n1.2.3.4:80\n-r\n5.6.7.8\n-i\n--tun-type\ngue\n--tun-port\n1",
		"-A\n-u\n0x1.2:domain\n-o\n-b\nsh-port,,flag-3\n-s\nsh",
		"--start-daemon\nmaster\n--mcast-group\nff02::1", "-L=", "-t=", "--", "-E\n-f\n7\n-6",
		"-A\n-t\nvip.lab.example:http\n-p\n-M\n255.255.0.0",
		"-L\n--json", "-Lc\n--json\n-n", "-A\n--json",
		"-a\n-t\n1.2.3.4:80\n-r\n5.6.7.8\n--check\nhttp\n--check-url\n/x\n--check-fall=2\n--check-cmd\n'/bin/x y'",
		"-E\n-t\n1.2.3.4:80\n--on-failure\nremove", "-L\n--checks\n-n", "-G",
	} {
		f.Add(s)
	}
	names := labNames()
	f.Fuzz(func(t *testing.T, s string) {
		var args []string
		if s != "" {
			args = strings.Split(s, "\n")
		}
		c, err := parseArgs(args, names, programName)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an *Error", err)
			}
			if e.Status != ExitFail && e.Status != ExitCommand {
				t.Fatalf("status %d for %q", e.Status, e.Msg)
			}
			return
		}
		if c.Kind < KindAdd || c.Kind > KindTrace {
			t.Fatalf("kind %d", c.Kind)
		}
		if (c.Options&optCheckAll != 0 || c.Check != nil) && c.Kind != KindAddDest && c.Kind != KindEditDest ||
			c.Service.OnFailure != "" && c.Kind != KindAdd && c.Kind != KindEdit ||
			c.Format&FmtChecks != 0 && c.Kind != KindList {
			t.Fatalf("check options accepted with %s", c.Kind)
		}
		if (c.Options&OptJSON != 0 || c.Format&FmtJSON != 0) && c.Kind != KindList {
			t.Fatalf("--json accepted with %s", c.Kind)
		}
		req, err := c.Request()
		switch c.Kind {
		case KindList, KindSave, KindRestore, KindHelp, KindVersion, KindGetLaddr, KindTrace:
			if err == nil {
				t.Fatalf("%s: request %+v", c.Kind, req)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", c.Kind, err)
		}
		if req.Service != nil && !req.Service.Addr.Is4() {
			t.Fatalf("service address %v", req.Service.Addr)
		}
		if req.Dest != nil && !req.Dest.Addr.Is4() {
			t.Fatalf("real server address %v", req.Dest.Addr)
		}
	})
}

// FuzzRestore feeds arbitrary files to -R: parsing must never panic, and
// whatever a restore builds must save to lines that restore again (but
// for ipvsadm's own "-b " with no printable flag).
func FuzzRestore(f *testing.F) {
	f.Add(restoreVariants)
	f.Add("-A -t 1.2.3.4:80 -s sh -b flag-3\n-a -t 1.2.3.4:80 -r 1.2.3.5 -m -x 5")
	f.Add("ipvsadm -C\n# x\n\n-E -t 1.2.3.4:80 -p 5 -M 255.255.255.128\n")
	f.Add("-A -t 1.2.3.4:80\n-a -t 1.2.3.4:80 -r 1.2.3.5 --fullnat\n-d -t 1.2.3.4:80 -r 1.2.3.5\n-D -t 1.2.3.4:80")
	f.Add("-A -t 1.2.3.4:80 -s rr\n# gvs-check -t 1.2.3.4:80 --on-failure remove\n-a -t 1.2.3.4:80 -r 1.2.3.5 -g\n" +
		"# gvs-check -t 1.2.3.4:80 -r 1.2.3.5:80 --check cmd --check-cmd \"'/bin/a b' \\\"c\\\"\" --check-interval 1.5s\n")
	names := labNames()
	f.Fuzz(func(t *testing.T, in string) {
		batch, lines, err := ParseRestore(in, names)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !strings.HasPrefix(e.Msg, "line ") {
				t.Fatalf("error %v", err)
			}
			return
		}
		if len(lines) != len(batch.Commands) {
			t.Fatalf("%d lines for %d commands", len(lines), len(batch.Commands))
		}
		g := newFakeGVS()
		if _, _, code := runWith(t, g, in, "-R"); code != 0 {
			return // refused by the daemon: fine
		}
		saved, _, code := runWith(t, g, "", "-Sn")
		if code != 0 {
			t.Fatalf("-Sn: exit %d", code)
		}
		if _, _, err := ParseRestore(saved, names); err != nil &&
			!strings.HasSuffix(err.Error(), "-b: missing argument") {
			t.Fatalf("saved table does not restore: %v\n%s", err, saved)
		}
	})
}
