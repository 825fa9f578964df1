package lab

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gvs-project/gvs/internal/netns"
	"github.com/gvs-project/gvs/internal/nstest"
)

// metricsAddr is where gvs serves metrics in the tests: node01's own
// loopback, inside its namespace (a fresh one, so the port is free).
const metricsAddr = "127.0.0.1:9610"

// TestMetrics runs the seed's DR lab with gvs --metrics-addr, pushes real
// TCP and UDP through it (closed and open connections, and SYNs to a
// service without real servers), stops, and checks that one scrape of
// /metrics, parsed as Prometheus parses it, says what gvsadm says at the
// same moment: every service's and real server's five --stats counters,
// the real servers' active and inactive connections, and the entries of
// -Lnc; and that drops are counted by reason, the ARP cache shows both
// real servers resolved, and the workers' batch histogram adds up.
func TestMetrics(t *testing.T) {
	nstest.Require(t)
	ctx := context.Background()
	l := buildLab(t, Config{Mode: DR}, "gvm")
	if err := l.StartServers(); err != nil {
		t.Fatal(err)
	}
	if err := l.StartGvs(ctx, "--metrics-addr", metricsAddr); err != nil {
		t.Fatal(err)
	}
	empty := VIP.String() + ":81" // a service with no real server: its SYNs are dropped (no_dest)
	cmds := append(l.ServiceCommands("-t", "rr"), l.ServiceCommands("-u", "rr")...)
	cmds = append(cmds, []string{"-A", "-t", empty, "-s", "rr"})
	for _, args := range cmds {
		if _, err := l.Gvsadm(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(l.GvsLog(), "metrics serving") {
		t.Errorf("gvs did not log its metrics endpoint:\n%s", l.GvsLog())
	}

	// Traffic: six closed connections, three UDP exchanges, one
	// connection left open (active), and a connection attempt to the
	// empty service.
	for i := range 6 {
		if _, err := l.Get(ctx); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	for i := range 3 {
		udpAsk(t, l, fmt.Sprintf("ping %d", i))
	}
	open, err := l.Dial(ctx, netip.AddrPortFrom(VIP, 80))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	fmt.Fprintf(open, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := readAnswer(open); err != nil {
		t.Fatalf("the open connection: %v", err)
	}
	// The SYN and its retransmission (after 1 s) go unanswered: the
	// dial gives up after 1.5 s, by design.
	ctxDial, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	c, err := l.Dial(ctxDial, netip.MustParseAddrPort(empty))
	cancel()
	if err == nil {
		c.Close()
		t.Fatalf("%s has no real server, but a connection to it was made", empty)
	}

	// The traffic has stopped; the last FINs and ACKs may still be on
	// their way. Compare once gvsadm shows the same before and after a
	// scrape (the deadline is a safety net, not the check).
	var fams map[string]*dto.MetricFamily
	var fromGvsadm, fromMetrics labView
	deadline := time.Now().Add(30 * time.Second)
	for {
		before := gvsadmView(t, l)
		fams = scrape(t, l)
		fromGvsadm = gvsadmView(t, l)
		fromMetrics = metricsView(t, fams)
		if cmp.Equal(before, fromGvsadm) && cmp.Equal(fromGvsadm, fromMetrics) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scrape and gvsadm disagree (-gvsadm +metrics):\n%s", cmp.Diff(fromGvsadm, fromMetrics))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("gvsadm and /metrics agree: %+v", fromGvsadm)

	// The comparison is worth something only if the traffic is in it.
	tcp := fromGvsadm.Stats["tcp "+VIP.String()+":80"]
	if tcp[0] != 7 || tcp[1] == 0 || tcp[3] == 0 {
		t.Errorf("TCP service: %v, want 7 connections with packets and bytes", tcp)
	}
	if udp := fromGvsadm.Stats["udp "+VIP.String()+":80"]; udp[0] == 0 || udp[1] < 3 {
		t.Errorf("UDP service: %v, want connections and at least 3 packets", udp)
	}
	var active uint64
	for k, n := range fromGvsadm.Active {
		if strings.HasPrefix(k, "tcp "+VIP.String()+":80 -> ") {
			active += n[0]
		}
	}
	if active != 1 {
		t.Errorf("active connections %v: the open connection should be the one", fromGvsadm.Active)
	}
	if fromGvsadm.Entries < 7+1 {
		t.Errorf("%d connection entries, want at least the 7 TCP ones and a UDP one", fromGvsadm.Entries)
	}

	// Drops by reason, against the daemon's own counters; every reason
	// is exported, at zero where nothing happened.
	cn := counters(t, l)
	drops := sumBy(fams["gvs_dropped_frames_total"], "reason")
	if drops["no_dest"] == 0 || drops["no_dest"] != float64(cn["verdict.no_dest"]) {
		t.Errorf("no_dest drops: /metrics %v, gvs's counter %d (want equal and above 0)", drops["no_dest"], cn["verdict.no_dest"])
	}
	for _, reason := range []string{"arp_unresolved", "table_full", "no_conn", "truncated", "tx_full"} {
		if v, ok := drops[reason]; !ok || v != float64(cn["verdict."+reason]) {
			t.Errorf("drops %q: /metrics %v (exported %v), gvs's counter %d", reason, v, ok, cn["verdict."+reason])
		}
	}
	passed := sumBy(fams["gvs_passed_frames_total"], "reason")
	if _, ok := passed["malformed"]; !ok {
		t.Errorf("passed frames lack reason malformed: %v", passed)
	}
	// (The open connection's keep-alive probes may add to it after the
	// scrape.)
	if fwd := sumBy(fams["gvs_forwarded_frames_total"], "worker")["eth0/0"]; fwd == 0 || fwd > float64(cn["verdict.forwarded"]) {
		t.Errorf("forwarded frames: /metrics %v, gvs's counter read after it %d", fwd, cn["verdict.forwarded"])
	}

	if rd, ok := sumBy(fams["gvs_worker_ring_drops_total"], "worker")["eth0/0"]; !ok || rd > float64(cn["rx.ring_drops"]) {
		t.Errorf("ring drops: /metrics %v (exported %v), gvs's counter read after it %d", rd, ok, cn["rx.ring_drops"])
	}
	if td, ok := sumBy(fams["gvs_worker_tx_drops_total"], "worker")["eth0/0"]; !ok || td > float64(cn["tx.drops"]) {
		t.Errorf("transmit drops: /metrics %v (exported %v), gvs's counter read after it %d", td, ok, cn["tx.drops"])
	}

	// The ARP cache: both real servers resolved; gvs answered the
	// client's requests for the VIP.
	if st := sumBy(fams["gvs_arp_neighbors"], "state"); st["reachable"] != 2 || st["failed"] != 0 {
		t.Errorf("ARP neighbours by state: %v, want 2 reachable and none failed", st)
	}
	if a := sumBy(fams["gvs_arp_answers_sent_total"], ""); a[""] == 0 {
		t.Errorf("gvs_arp_answers_sent_total is 0, yet the client reached the VIP")
	}

	// The worker's batches: the histogram's sum is its frames, its
	// count its batches, and every batch fits the last bucket.
	h := fams["gvs_worker_batch_frames"]
	if h == nil || len(h.Metric) != 1 {
		t.Fatalf("gvs_worker_batch_frames: %v", h)
	}
	hist := h.Metric[0].GetHistogram()
	frames := sumBy(fams["gvs_worker_frames_total"], "worker")["eth0/0"]
	if hist.GetSampleSum() != frames || frames == 0 || hist.GetSampleCount() == 0 || hist.GetSampleCount() > uint64(frames) {
		t.Errorf("batch histogram: sum %v count %d, frames %v", hist.GetSampleSum(), hist.GetSampleCount(), frames)
	}
	last := false
	for _, b := range hist.GetBucket() {
		if b.GetUpperBound() == 64 {
			last = b.GetCumulativeCount() == hist.GetSampleCount()
		}
	}
	if !last {
		t.Errorf("batch histogram: the bucket of 64 frames should hold all %d batches: %v", hist.GetSampleCount(), hist.GetBucket())
	}
}

// labView is what both gvsadm and /metrics tell of the lab: each
// service's and real server's Conns, InPkts, OutPkts, InBytes and
// OutBytes (keyed "tcp VIP:PORT" and "tcp VIP:PORT -> RIP:PORT"), the
// real servers' active and inactive connections, and the connection
// entries.
type labView struct {
	Stats   map[string][5]uint64
	Active  map[string][2]uint64
	Entries int
}

// gvsadmView reads gvsadm -L -n --stats --exact, gvsadm -L -n and
// gvsadm -L -n -c.
func gvsadmView(t *testing.T, l *Lab) labView {
	t.Helper()
	v := labView{Stats: map[string][5]uint64{}, Active: map[string][2]uint64{}}
	ctx := context.Background()
	stats, err := l.Gvsadm(ctx, "-L", "-n", "--stats", "--exact")
	if err != nil {
		t.Fatal(err)
	}
	svc := ""
	for _, line := range strings.Split(stats, "\n") {
		f := strings.Fields(line)
		var key string
		switch {
		case len(f) == 7 && (f[0] == "TCP" || f[0] == "UDP"):
			svc = strings.ToLower(f[0]) + " " + f[1]
			key, f = svc, f[2:]
		case len(f) == 7 && f[0] == "->":
			key, f = svc+" -> "+f[1], f[2:]
		default:
			continue
		}
		var n [5]uint64
		for i := range n {
			if n[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
				t.Fatalf("gvsadm --stats: %q: %v", line, err)
			}
		}
		v.Stats[key] = n
	}
	list, err := l.Gvsadm(ctx, "-L", "-n")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(list, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && (f[0] == "TCP" || f[0] == "UDP"):
			svc = strings.ToLower(f[0]) + " " + f[1]
		case len(f) == 6 && f[0] == "->" && f[1] != "RemoteAddress:Port":
			a, err1 := strconv.ParseUint(f[4], 10, 64)
			i, err2 := strconv.ParseUint(f[5], 10, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("gvsadm -L -n: %q", line)
			}
			v.Active[svc+" -> "+f[1]] = [2]uint64{a, i}
		}
	}
	conns, err := l.Gvsadm(ctx, "-L", "-n", "-c")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(conns, "\n"), "\n")
	if len(lines) < 2 || lines[0] != "IPVS connection entries" {
		t.Fatalf("gvsadm -L -n -c: %q", conns)
	}
	v.Entries = len(lines) - 2
	return v
}

// scrape fetches http://metricsAddr/metrics from inside node01's
// namespace and parses it as Prometheus does.
func scrape(t *testing.T, l *Lab) map[string]*dto.MetricFamily {
	t.Helper()
	status, body := directorGet(t, l, "/metrics")
	if status != http.StatusOK {
		t.Fatalf("scraping: status %d\n%s", status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing the scrape: %v\n%s", err, body)
	}
	return fams
}

// directorGet fetches http://metricsAddr+path from inside node01's
// namespace and returns the status and body.
func directorGet(t *testing.T, l *Lab, path string) (int, []byte) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := netns.Do(l.Director.NS, func() error {
				var err error
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
	resp, err := client.Get("http://" + metricsAddr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %s: %v", path, resp.Status, err)
	}
	return resp.StatusCode, body
}

// TestPprof: the metrics endpoint serves no profiles by default; with
// --pprof, a CPU profile of gvs taken while requests go through the lab is
// what `go tool pprof` reads: a gzipped profile of CPU nanoseconds of the
// gvs binary, whose samples include the data path's functions.
func TestPprof(t *testing.T) {
	nstest.Require(t)
	ctx := context.Background()
	l := buildLab(t, Config{Mode: NAT}, "gvp")
	if err := l.StartServers(); err != nil {
		t.Fatal(err)
	}
	if err := l.StartGvs(ctx, "--metrics-addr", metricsAddr); err != nil {
		t.Fatal(err)
	}
	if status, body := directorGet(t, l, "/debug/pprof/"); status != http.StatusNotFound {
		t.Errorf("without --pprof, /debug/pprof/ answered %d, want 404:\n%.200s", status, body)
	}
	if err := l.StopGvs(); err != nil {
		t.Fatal(err)
	}

	if err := l.StartGvs(ctx, "--metrics-addr", metricsAddr, "--pprof"); err != nil {
		t.Fatal(err)
	}
	for _, args := range l.ServiceCommands("-t", "rr") {
		if _, err := l.Gvsadm(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	if status, body := directorGet(t, l, "/debug/pprof/"); status != http.StatusOK || !bytes.Contains(body, []byte("goroutine")) {
		t.Errorf("with --pprof, /debug/pprof/ answered %d, want 200 and the profiles' index:\n%.200s", status, body)
	}
	// Requests through the lab for as long as the profile runs (bounded
	// in count too), so that the workers have samples.
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		defer func() { done <- n }()
		for n < 20000 {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := l.Get(ctx); err != nil {
				t.Errorf("request %d during the profile: %v", n, err)
				return
			}
			n++
		}
	}()
	status, body := directorGet(t, l, "/debug/pprof/profile?seconds=2")
	close(stop)
	t.Logf("%d requests during the profile", <-done)
	if status != http.StatusOK {
		t.Fatalf("profile: status %d\n%.300s", status, body)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the profile is not gzipped: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("the profile does not unzip: %v", err)
	}
	// The profile is a protocol buffer; its string table holds the
	// sample types and the sampled functions' names.
	for _, want := range []string{"cpu", "nanoseconds", "github.com/gvs-project/gvs/forward."} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("the profile (%d bytes unzipped) lacks %q", len(raw), want)
		}
	}
}

// metricsView reads from a scrape what gvsadmView reads from gvsadm.
func metricsView(t *testing.T, fams map[string]*dto.MetricFamily) labView {
	t.Helper()
	v := labView{Stats: map[string][5]uint64{}, Active: map[string][2]uint64{}}
	label := func(m *dto.Metric, name string) string {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == name {
				return lp.GetValue()
			}
		}
		return ""
	}
	key := func(m *dto.Metric) string {
		k := label(m, "protocol") + " " + label(m, "vip") + ":" + label(m, "port")
		if r := label(m, "real"); r != "" {
			k += " -> " + r
		}
		return k
	}
	value := func(m *dto.Metric) uint64 {
		if c := m.GetCounter(); c != nil {
			return uint64(c.GetValue())
		}
		return uint64(m.GetGauge().GetValue())
	}
	for _, prefix := range []string{"gvs_service", "gvs_real"} {
		for i, name := range []string{"_connections_total", "_in_packets_total", "_out_packets_total", "_in_bytes_total", "_out_bytes_total"} {
			f := fams[prefix+name]
			if f == nil {
				t.Fatalf("%s%s missing from the scrape", prefix, name)
			}
			for _, m := range f.GetMetric() {
				k := key(m)
				n := v.Stats[k]
				n[i] = value(m)
				v.Stats[k] = n
			}
		}
	}
	for i, name := range []string{"gvs_real_active_connections", "gvs_real_inactive_connections"} {
		for _, m := range fams[name].GetMetric() {
			k := key(m)
			n := v.Active[k]
			n[i] = value(m)
			v.Active[k] = n
		}
	}
	entries := fams["gvs_conntrack_entries"]
	if entries == nil || len(entries.GetMetric()) != 1 {
		t.Fatalf("gvs_conntrack_entries: %v", entries)
	}
	v.Entries = int(value(entries.GetMetric()[0]))
	return v
}

// sumBy sums a family's values by one label ("" sums them all under "").
func sumBy(f *dto.MetricFamily, label string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		k := ""
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				k = lp.GetValue()
			}
		}
		switch {
		case m.GetCounter() != nil:
			out[k] += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			out[k] += m.GetGauge().GetValue()
		}
	}
	return out
}
