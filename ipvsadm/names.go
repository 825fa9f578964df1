package ipvsadm

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Names resolves host and service names in both directions, as ipvsadm
// does with gethostbyname/gethostbyaddr and getservbyname/getservbyport.
// Parsing uses AddrByHost and PortByService for arguments that are not
// numeric; listings without -n use HostByAddr and ServiceByPort. Tests
// inject a StaticNames so that no lookup leaves the process.
type Names interface {
	// AddrByHost resolves a host name to an IPv4 address (gethostbyname
	// keeps only AF_INET answers, and ipvsadm only the first).
	AddrByHost(name string) (netip.Addr, bool)
	// PortByService resolves a service name or alias for proto ("tcp",
	// "udp" or "sctp").
	PortByService(name, proto string) (uint16, bool)
	// HostByAddr returns the host name of an address.
	HostByAddr(addr netip.Addr) (string, bool)
	// ServiceByPort returns the service name of a port for proto.
	ServiceByPort(port uint16, proto string) (string, bool)
}

// StaticNames is a Names backed by fixed tables; missing entries do not
// resolve. The zero value resolves nothing. It is safe for concurrent
// use as long as the maps are not modified.
type StaticNames struct {
	Hosts    map[string]netip.Addr // host name -> address
	Addrs    map[netip.Addr]string // address -> host name
	Services map[string]uint16     // "name/proto" -> port
	Ports    map[string]string     // "port/proto" -> name
}

// AddrByHost implements Names.
func (s StaticNames) AddrByHost(name string) (netip.Addr, bool) {
	a, ok := s.Hosts[name]
	return a, ok
}

// PortByService implements Names.
func (s StaticNames) PortByService(name, proto string) (uint16, bool) {
	p, ok := s.Services[name+"/"+proto]
	return p, ok
}

// HostByAddr implements Names.
func (s StaticNames) HostByAddr(addr netip.Addr) (string, bool) {
	n, ok := s.Addrs[addr]
	return n, ok
}

// ServiceByPort implements Names.
func (s StaticNames) ServiceByPort(port uint16, proto string) (string, bool) {
	n, ok := s.Ports[strconv.Itoa(int(port))+"/"+proto]
	return n, ok
}

// lookupTimeout bounds one DNS lookup, like the resolver's own retries
// bound gethostbyname's.
const lookupTimeout = 10 * time.Second

// SystemNames resolves with the host's resolver (/etc/hosts, then DNS)
// and the services database (/etc/services). Results are cached for the
// life of the value. It is safe for concurrent use.
type SystemNames struct {
	// ServicesFile is the services database; empty means /etc/services.
	ServicesFile string

	once     sync.Once
	byName   map[string]uint16 // "name/proto" -> port, aliases included
	byPort   map[string]string // "port/proto" -> first name
	mu       sync.Mutex
	hostName map[netip.Addr]string
}

var _ Names = (*SystemNames)(nil)
var _ Names = StaticNames{}

// AddrByHost implements Names.
func (s *SystemNames) AddrByHost(name string) (netip.Addr, bool) {
	if name == "" {
		return netip.Addr{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", name)
	if err != nil || len(ips) == 0 {
		return netip.Addr{}, false
	}
	return ips[0].Unmap(), true
}

// HostByAddr implements Names.
func (s *SystemNames) HostByAddr(addr netip.Addr) (string, bool) {
	s.mu.Lock()
	if n, ok := s.hostName[addr]; ok {
		s.mu.Unlock()
		return n, n != ""
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	var name string
	if names, err := net.DefaultResolver.LookupAddr(ctx, addr.String()); err == nil && len(names) > 0 {
		name = strings.TrimSuffix(names[0], ".")
	}
	s.mu.Lock()
	if s.hostName == nil {
		s.hostName = make(map[netip.Addr]string)
	}
	s.hostName[addr] = name
	s.mu.Unlock()
	return name, name != ""
}

// PortByService implements Names.
func (s *SystemNames) PortByService(name, proto string) (uint16, bool) {
	s.load()
	p, ok := s.byName[name+"/"+proto]
	return p, ok
}

// ServiceByPort implements Names.
func (s *SystemNames) ServiceByPort(port uint16, proto string) (string, bool) {
	s.load()
	n, ok := s.byPort[strconv.Itoa(int(port))+"/"+proto]
	return n, ok
}

func (s *SystemNames) load() {
	s.once.Do(func() {
		path := s.ServicesFile
		if path == "" {
			path = "/etc/services"
		}
		s.byName, s.byPort = map[string]uint16{}, map[string]string{}
		f, err := os.Open(path)
		if err != nil {
			return
		}
		defer f.Close()
		parseServices(f, s.byName, s.byPort)
	})
}

// parseServices reads a services(5) file: "name port/proto aliases...",
// with '#' comments. As getservbyname and getservbyport scan the file
// from the top, the first line for a key wins.
func parseServices(r io.Reader, byName map[string]uint16, byPort map[string]string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		portStr, proto, ok := strings.Cut(f[1], "/")
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			continue
		}
		pk := strconv.Itoa(int(port)) + "/" + proto
		if _, dup := byPort[pk]; !dup {
			byPort[pk] = f[0]
		}
		for _, n := range append([]string{f[0]}, f[2:]...) {
			if _, dup := byName[n+"/"+proto]; !dup {
				byName[n+"/"+proto] = uint16(port)
			}
		}
	}
}
