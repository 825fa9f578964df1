package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// profileAddr is where a gvs started with --profile serves its profiles
// (gvs --metrics-addr ... --pprof): the loopback of the director's
// namespace, which only the bench uses.
const profileAddr = "127.0.0.1:9611"

// profiler takes CPU profiles of a running gvs from its --pprof endpoint
// in namespace ns and writes them to dir.
type profiler struct {
	ns, dir string
}

// gvsProfileFlags are the gvs flags that open the endpoint.
func gvsProfileFlags() []string { return []string{"--metrics-addr", profileAddr, "--pprof"} }

// start begins a CPU profile of about d (whole seconds, at least one),
// for the point called name, and returns a function that waits for it,
// writes it to dir and returns the file's path.
func (p *profiler) start(ctx context.Context, d time.Duration, name string) (wait func() (string, error)) {
	secs := max(int((d+time.Second-1)/time.Second), 1)
	file := filepath.Join(p.dir, profileFileName(name))
	done := make(chan error, 1)
	go func() { done <- p.fetch(ctx, secs, file) }()
	return func() (string, error) { return file, <-done }
}

// profileFileName is a point's name as a file name: "gvs-nat conn/s" is
// "gvs-nat-conn-s.pprof".
func profileFileName(name string) string {
	return strings.NewReplacer("/", "-", " ", "-").Replace(name) + ".pprof"
}

// fetch GETs secs seconds of CPU profile and writes it to file.
func (p *profiler) fetch(ctx context.Context, secs int, file string) error {
	client := &http.Client{
		// The profile answers after secs; the rest is a bound against
		// a stuck gvs, never reached otherwise.
		Timeout: time.Duration(secs)*time.Second + 30*time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return dialIn(ctx, p.ns, addr)
			},
		},
	}
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", profileAddr, secs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("profiling gvs: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("profiling gvs: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profiling gvs: %w", err)
	}
	return f.Close()
}

// profilePoint profiles the first run of a point (run 0) when p is not
// nil: it returns a function to call when the run is over, which reports
// the profile's file, or why there is none, through progress. A missing
// profile does not fail the point: it is a diagnostic.
func profilePoint(ctx context.Context, p *profiler, run int, d time.Duration, name string, progress func(string, ...any)) func() {
	if p == nil || run != 0 {
		return func() {}
	}
	wait := p.start(ctx, d, name)
	return func() {
		file, err := wait()
		if err != nil {
			progress("%s: no CPU profile: %v", name, err)
			return
		}
		progress("%s: CPU profile of gvs in %s (go tool pprof -top %s)", name, file, file)
	}
}
