package health

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"time"
)

// Dialer opens the connections of TCP, HTTP and UDP probes. *net.Dialer
// implements it; tests give fakes.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Runner runs a command check's program, argv[0] with argv[1:], with env
// added to its environment, and returns nil if it exited with status 0
// before ctx ended. DefaultRunner is the real one.
type Runner func(ctx context.Context, argv, env []string) error

// Target is what a check probes: a real server of a service.
type Target struct {
	Addr netip.Addr
	// Port is the real server's port; a Spec's Port overrides it.
	Port uint16
	// Service names the virtual service for command checks
	// (GVS_SERVICE), such as "TCP 192.168.150.100:80".
	Service string
}

// prober runs one check's probes. It is used by one goroutine.
type prober struct {
	spec   *Spec
	target Target
	addr   string // the address probed, host:port
	dialer Dialer
	run    Runner
	client *http.Client // HTTP checks
	host   string       // HTTP checks: the Host header, "" for addr
	path   string       // HTTP checks: the request target
	buf    []byte       // UDP checks: the receive buffer
}

func newProber(spec *Spec, t Target, d Dialer, run Runner) *prober {
	port := t.Port
	if spec.Port != 0 {
		port = spec.Port
	}
	p := &prober{spec: spec, target: t, dialer: d, run: run,
		addr: netip.AddrPortFrom(t.Addr, port).String()}
	switch spec.Kind {
	case HTTP:
		p.host, p.path, _ = spec.request() // Normalize checked it
		p.client = &http.Client{
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return d.DialContext(ctx, "tcp4", p.addr)
				},
				// Every probe opens its own connection, as a client
				// would: a server that stopped accepting must fail.
				DisableKeepAlives:      true,
				DisableCompression:     true,
				MaxResponseHeaderBytes: 64 << 10,
			},
			// A redirect is an answer: its status is compared.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	case UDP:
		p.buf = make([]byte, 2048)
	}
	return p
}

// close releases what the prober holds.
func (p *prober) close() {
	if p.client != nil {
		p.client.CloseIdleConnections()
	}
}

// probe runs one probe, bounded by the spec's timeout, and returns why
// it failed, or nil.
func (p *prober) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.spec.Timeout)
	defer cancel()
	switch p.spec.Kind {
	case TCP:
		c, err := p.dialer.DialContext(ctx, "tcp4", p.addr)
		if err != nil {
			return dialError(err)
		}
		return c.Close()
	case HTTP:
		return p.probeHTTP(ctx)
	case UDP:
		return p.probeUDP(ctx)
	case Cmd:
		port := p.target.Port
		if p.spec.Port != 0 {
			port = p.spec.Port
		}
		env := []string{"GVS_REAL_ADDR=" + p.target.Addr.String(), "GVS_REAL_PORT=" + strconv.Itoa(int(port)),
			"GVS_SERVICE=" + p.target.Service}
		return p.run(ctx, p.spec.Command, env)
	}
	return fmt.Errorf("unknown check kind %v", p.spec.Kind)
}

// dialError shortens the usual connection errors to what they say about
// the server.
func dialError(err error) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("connection refused")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT):
		return errors.New("timed out")
	case errors.Is(err, syscall.EHOSTUNREACH):
		return errors.New("host unreachable")
	case errors.Is(err, syscall.ENETUNREACH):
		return errors.New("network unreachable")
	}
	return err
}

func (p *prober) probeHTTP(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+p.path, nil)
	if err != nil {
		return err
	}
	if p.host != "" {
		req.Host = p.host
	}
	req.Header.Set("User-Agent", "gvs-health-check")
	resp, err := p.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return dialError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != p.spec.Status {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, p.spec.Status)
	}
	if p.spec.Digest == "" {
		// Read what is cheap to read, so that the server sees an
		// orderly close.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	var h hash.Hash = sha256.New()
	if len(p.spec.Digest) == 32 {
		h = md5.New()
	}
	n, err := io.Copy(h, io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return fmt.Errorf("reading the body: %w", dialError(err))
	}
	if n > MaxBody {
		return fmt.Errorf("body longer than %d bytes", MaxBody)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.spec.Digest {
		return fmt.Errorf("body digest %s, want %s", got, p.spec.Digest)
	}
	return nil
}

func (p *prober) probeUDP(ctx context.Context) error {
	c, err := p.dialer.DialContext(ctx, "udp4", p.addr)
	if err != nil {
		return dialError(err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	// Unblock the read if ctx ends before the deadline (gvs stopping).
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.Write([]byte(p.spec.Payload)); err != nil {
		return udpError(err)
	}
	if _, err := c.Read(p.buf); err != nil {
		return udpError(err)
	}
	return nil
}

func udpError(err error) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("port unreachable")
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return errors.New("no reply")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("no reply")
	}
	return dialError(err)
}

// tail keeps the last bytes written to it: a command's last words.
type tail struct{ b []byte }

const tailMax = 200

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > tailMax {
		t.b = t.b[len(t.b)-tailMax:]
	}
	return len(p), nil
}

func (t *tail) String() string { return string(bytes.TrimSpace(t.b)) }
