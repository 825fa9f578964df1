package health

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// probeOnce runs one probe of spec against addr:port with the real
// dialer and runner.
func probeOnce(t *testing.T, spec Spec, port uint16) error {
	t.Helper()
	if err := spec.Normalize(); err != nil {
		t.Fatal(err)
	}
	p := newProber(&spec, Target{Addr: netip.MustParseAddr("127.0.0.1"), Port: port, Service: "TCP 192.0.2.100:80"},
		&net.Dialer{}, DefaultRunner)
	defer p.close()
	return p.probe(context.Background())
}

// closedPort returns a loopback TCP or UDP port nothing listens on.
func closedPort(t *testing.T, network string) uint16 {
	t.Helper()
	if network == "tcp" {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		return uint16(port)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	return uint16(port)
}

func wantProbe(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: %v, want success", what, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("%s: %v, want an error saying %q", what, err, want)
	}
}

func TestProbeTCP(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	wantProbe(t, "listening port", probeOnce(t, Spec{Kind: TCP}, port), "")
	wantProbe(t, "check port overrides", probeOnce(t, Spec{Kind: TCP, Port: port}, 1), "")
	wantProbe(t, "closed port", probeOnce(t, Spec{Kind: TCP}, closedPort(t, "tcp")), "connection refused")
}

func TestProbeHTTP(t *testing.T) {
	body := "from 192.168.150.12\n"
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
	mux.HandleFunc("GET /host", func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "www.example.com" || r.URL.RawQuery != "a=1" {
			http.Error(w, "wrong host "+r.Host, http.StatusBadRequest)
		}
	})
	mux.HandleFunc("GET /down", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "maintenance", 503) })
	mux.HandleFunc("GET /moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/", http.StatusFound) })
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, MaxBody+1))
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	sha := sha256.Sum256([]byte(body))
	md := md5.Sum([]byte(body))
	for _, tc := range []struct {
		name string
		spec Spec
		want string
	}{
		{"GET /", Spec{Kind: HTTP}, ""},
		{"sha256 digest", Spec{Kind: HTTP, Digest: hex.EncodeToString(sha[:])}, ""},
		{"md5 digest", Spec{Kind: HTTP, Digest: strings.ToUpper(hex.EncodeToString(md[:]))}, ""},
		{"wrong digest", Spec{Kind: HTTP, Digest: strings.Repeat("0", 64)}, "body digest " + hex.EncodeToString(sha[:]) + ", want 000"},
		{"Host from the URL", Spec{Kind: HTTP, URL: "http://www.example.com/host?a=1"}, ""},
		{"wrong status", Spec{Kind: HTTP, URL: "/down"}, "status 503, want 200"},
		{"expected status", Spec{Kind: HTTP, URL: "/down", Status: 503}, ""},
		{"redirect not followed", Spec{Kind: HTTP, URL: "/moved"}, "status 302, want 200"},
		{"not found", Spec{Kind: HTTP, URL: "/nothing"}, "status 404"},
		{"body too long", Spec{Kind: HTTP, URL: "/big", Digest: strings.Repeat("0", 64)}, "body longer than 1048576 bytes"},
	} {
		wantProbe(t, tc.name, probeOnce(t, tc.spec, port), tc.want)
	}
	wantProbe(t, "closed port", probeOnce(t, Spec{Kind: HTTP}, closedPort(t, "tcp")), "connection refused")

	// A server that accepts and never answers fails at the timeout.
	mute, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	wantProbe(t, "silent server", probeOnce(t, Spec{Kind: HTTP, Interval: time.Second, Timeout: 50 * time.Millisecond},
		uint16(mute.Addr().(*net.TCPAddr).Port)), "timed out")
}

func TestProbeUDP(t *testing.T) {
	echo, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	got := make(chan string, 10)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
			echo.WriteTo(buf[:n], from)
		}
	}()
	wantProbe(t, "echo", probeOnce(t, Spec{Kind: UDP, Payload: "ping"}, uint16(echo.LocalAddr().(*net.UDPAddr).Port)), "")
	if p := <-got; p != "ping" {
		t.Fatalf("the server got %q", p)
	}
	// A closed port answers ICMP port-unreachable, which fails at once.
	wantProbe(t, "closed port", probeOnce(t, Spec{Kind: UDP, Interval: time.Hour, Timeout: time.Hour}, closedPort(t, "udp")), "port unreachable")
	// A server that never answers fails at the timeout.
	mute, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	wantProbe(t, "silent server", probeOnce(t, Spec{Kind: UDP, Interval: time.Second, Timeout: 50 * time.Millisecond},
		uint16(mute.LocalAddr().(*net.UDPAddr).Port)), "no reply")
}

func TestProbeCmd(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("command checks run their scripts with sh: %v", err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "check")
	os.WriteFile(script, []byte("#!"+sh+"\n"+
		`[ "$GVS_REAL_ADDR" = 127.0.0.1 ] && [ "$GVS_REAL_PORT" = 8080 ] && [ "$GVS_SERVICE" = "TCP 192.0.2.100:80" ] || { echo "env: $GVS_REAL_ADDR $GVS_REAL_PORT $GVS_SERVICE"; exit 3; }`+"\n"+
		`case "$1" in ok) exit 0;; sleep) sleep 30 & echo $! >"$0.pid"; wait;; *) echo "bad argument $1" >&2; exit 1;; esac`+"\n"), 0o755)
	wantProbe(t, "exit 0", probeOnce(t, Spec{Kind: Cmd, Port: 8080, Command: []string{script, "ok"}}, 80), "")
	wantProbe(t, "exit 1", probeOnce(t, Spec{Kind: Cmd, Port: 8080, Command: []string{script, "no"}}, 80), "exit status 1: bad argument no")
	wantProbe(t, "environment", probeOnce(t, Spec{Kind: Cmd, Command: []string{script, "ok"}}, 80), "exit status 3: env: 127.0.0.1 80")
	wantProbe(t, "timeout", probeOnce(t, Spec{Kind: Cmd, Port: 8080, Interval: time.Second, Timeout: 100 * time.Millisecond,
		Command: []string{script, "sleep"}}, 80), "timed out")
	// The whole process group was killed, the script's child too: a
	// command's leftovers must not pile up, one per failed check.
	pid, err := os.ReadFile(script + ".pid")
	if err != nil {
		t.Fatalf("the script did not record its child: %v", err)
	}
	if !processGone(strings.TrimSpace(string(pid))) {
		t.Fatalf("the timed-out command's child %s is still running", strings.TrimSpace(string(pid)))
	}
	wantProbe(t, "missing program", probeOnce(t, Spec{Kind: Cmd, Command: []string{filepath.Join(dir, "none")}}, 80), "no such file")
}

// processGone reports whether process pid has ended (gone, or a zombie not
// yet reaped), waiting a little for a signal already sent to take effect.
func processGone(pid string) bool {
	for range 100 {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return true
		}
		// pid (comm) S ...: the state follows the last ')'.
		if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && strings.HasPrefix(string(stat[i+1:]), " Z") {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}
