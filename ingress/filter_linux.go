package ingress

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// Names of the objects inside the table.
const (
	setDst      = "dst"
	setSrc      = "src"
	setAny      = "dstany" // port-0 services: every port of a VIP
	chainPrefix = "in_"    // + interface name: in_eth0
)

// Set IDs identify the sets inside the Open transaction, before the kernel
// has named them. Any distinct non-zero values do; fixed ones avoid the
// unsynchronised global counter google/nftables would otherwise use.
const (
	setDstID = 1
	setSrcID = 2
	setAnyID = 3
)

// nf_tables 32-bit data registers (NFT_REG32_00.. in linux/netfilter/
// nf_tables.h). A concatenation occupies consecutive registers and the
// lookup reads keyLen bytes starting at the first one.
const (
	regKey0 = 8  // NFT_REG32_00: address; also the scratch for meta protocol
	regKey1 = 9  // NFT_REG32_01: IP protocol
	regKey2 = 10 // NFT_REG32_02: port
)

// Offsets of the matched fields (RFC 791 section 3.1, RFC 793 section 3.1,
// RFC 768). Ports sit at the same place in TCP and UDP, which is why one
// "th" (transport header) match serves both.
const (
	offIPProto = 9  // IPv4 protocol, 1 byte
	offIPSrc   = 12 // IPv4 source address, 4 bytes
	offIPDst   = 16 // IPv4 destination address, 4 bytes
	offL4Src   = 0  // source port, 2 bytes
	offL4Dst   = 2  // destination port, 2 bytes
)

// etherTypeIPv4 is ETH_P_IP in network byte order, as meta protocol
// (skb->protocol) holds it.
var etherTypeIPv4 = []byte{0x08, 0x00}

// maxElemsPerMsg bounds the elements carried by one NEWSETELEM message; a
// batch may hold several such messages and stays one transaction. 1024
// elements are about 40 KB, well below a netlink socket's default send
// buffer (net.core.wmem_default, 208 KB), which bounds the whole batch.
const maxElemsPerMsg = 1024

// Filter is the netdev table gvs owns. Its methods are safe for concurrent
// use. The zero value is not usable; call Open.
type Filter struct {
	// Set by Open, read-only afterwards.
	logf   func(string, ...any)
	ifaces []string
	table  *nftables.Table
	chains []*nftables.Chain // one per interface, in ifaces order
	dst    *nftables.Set
	src    *nftables.Set
	any    *nftables.Set // port-0 destinations: every port of an address

	mu     sync.Mutex // guards everything below
	closed bool
	nsFile *os.File // network namespace of the thread that called Open
	rules  []Rule
}

// Open replaces any stale netdev table named cfg.Table (left by a crashed
// run), then creates the table, an ingress base chain on each interface of
// ifaces (policy accept, priority Priority) and the empty match sets, all in
// one netlink transaction: either all of it exists afterwards or nothing
// changed.
//
// Everything happens in the network namespace of the calling thread at the
// time of the call; later calls on the Filter act there too, from any
// goroutine.
//
// An interface that does not exist is reported by name and nothing changes.
// When the kernel lacks nf_tables, the netdev family, the ingress hook or a
// needed expression, the error matches ErrNotSupported. Without
// CAP_NET_ADMIN it matches os.ErrPermission.
func Open(ifaces []string, cfg *Config) (*Filter, error) {
	if len(ifaces) == 0 {
		return nil, errors.New("ingress: no interfaces given")
	}
	var uniq []string
	for _, name := range ifaces {
		if !slices.Contains(uniq, name) {
			uniq = append(uniq, name)
		}
	}

	// Pin the thread so that the namespace file and the interface lookups
	// agree with each other (and with the caller, if it had pinned itself
	// into another namespace).
	runtime.LockOSThread()
	nsFile, err := openNetNS()
	if err == nil {
		for _, name := range uniq {
			if _, ierr := net.InterfaceByName(name); ierr != nil {
				err = fmt.Errorf("ingress: interface %q: %w", name, ierr)
				break
			}
		}
	}
	runtime.UnlockOSThread()
	if err != nil {
		if nsFile != nil {
			nsFile.Close()
		}
		return nil, err
	}

	f := &Filter{
		logf:   cfg.logf(),
		ifaces: uniq,
		nsFile: nsFile,
		table:  &nftables.Table{Name: cfg.table(), Family: nftables.TableFamilyNetdev},
	}
	// A transient netlink socket per operation, always opened in the
	// namespace captured above (see opConn): no replies can be left over
	// from a failed batch, and the caller's goroutine may wander between
	// threads.
	c, done := f.opConn()
	err = f.create(c)
	done()
	if err != nil {
		nsFile.Close()
		return nil, err
	}
	f.logf("ingress: table netdev %s: dropping gvs frames at ingress of %v (priority %d)", f.table.Name, f.ifaces, Priority)
	return f, nil
}

// openNetNS opens the network namespace of the calling thread. The file
// never gets descriptor 0, which netlink.Config.NetNS reads as "the
// namespace of whichever thread dials" (possible when stdin is closed).
func openNetNS() (*os.File, error) {
	const path = "/proc/thread-self/ns/net"
	f, err := os.Open(path)
	if err != nil || f.Fd() != 0 {
		return f, err
	}
	g, err := os.Open(path) // gets a descriptor > 0 while f holds 0
	f.Close()
	return g, err
}

// create sends the Open transaction.
func (f *Filter) create(c *nftables.Conn) error {
	// "add" succeeds whether or not a stale table exists, so the delete
	// that follows always has something to remove; the re-add then starts
	// from nothing. Within one transaction this is atomic, as in nft's
	// "table t; delete table t; table t { ... }".
	c.AddTable(f.table)
	c.DelTable(f.table)
	c.AddTable(f.table)

	keyType := nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	newSet := func(name string, id uint32) *nftables.Set {
		return &nftables.Set{
			Table:         f.table,
			ID:            id,
			Name:          name,
			KeyType:       keyType,
			Concatenation: true,
			KeyByteOrder:  binaryutil.BigEndian,
		}
	}
	f.dst = newSet(setDst, setDstID)
	f.src = newSet(setSrc, setSrcID)
	f.any = newSet(setAny, setAnyID)
	f.any.KeyType = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto)
	for _, s := range []*nftables.Set{f.dst, f.src, f.any} {
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("ingress: set %s: %w", s.Name, err)
		}
	}

	accept := nftables.ChainPolicyAccept
	f.chains = f.chains[:0]
	for _, name := range f.ifaces {
		ch := c.AddChain(&nftables.Chain{
			Name:     chainPrefix + name,
			Table:    f.table,
			Type:     nftables.ChainTypeFilter,
			Hooknum:  nftables.ChainHookIngress,
			Priority: nftables.ChainPriorityRef(Priority),
			Policy:   &accept,
			Device:   name,
		})
		f.chains = append(f.chains, ch)
		// meta protocol ip ip daddr . ip protocol . th dport @dst counter drop
		c.AddRule(&nftables.Rule{Table: f.table, Chain: ch, Exprs: match(f.dst, offIPDst, offL4Dst)})
		// meta protocol ip ip saddr . ip protocol . th sport @src counter drop
		c.AddRule(&nftables.Rule{Table: f.table, Chain: ch, Exprs: match(f.src, offIPSrc, offL4Src)})
		// meta protocol ip ip daddr . ip protocol @dstany counter drop
		c.AddRule(&nftables.Rule{Table: f.table, Chain: ch, Exprs: matchAny(f.any)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("ingress: creating table netdev %s: %w", f.table.Name, classify(err))
	}
	return nil
}

// match returns the expressions of
//
//	meta protocol ip <addr> . ip protocol . <port> @set counter drop
//
// with the address at addrOff in the IPv4 header and the port at portOff in
// the transport header.
//
// The transport header load fails (and the rule does not match) unless the
// kernel parsed a valid IPv4 header and the frame is a first fragment:
// nft_payload refuses NFT_PAYLOAD_TRANSPORT_HEADER when the packet has a
// non-zero fragment offset, so non-first fragments pass.
func match(set *nftables.Set, addrOff, portOff uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: regKey0},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regKey0, Data: etherTypeIPv4},
		&expr.Payload{DestRegister: regKey0, Base: expr.PayloadBaseNetworkHeader, Offset: addrOff, Len: 4},
		&expr.Payload{DestRegister: regKey1, Base: expr.PayloadBaseNetworkHeader, Offset: offIPProto, Len: 1},
		&expr.Payload{DestRegister: regKey2, Base: expr.PayloadBaseTransportHeader, Offset: portOff, Len: 2},
		&expr.Lookup{SourceRegister: regKey0, SetName: set.Name, SetID: set.ID},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// matchAny returns the expressions of
//
//	meta protocol ip ip daddr . ip protocol @dstany counter drop
//
// which drops every frame of a protocol to an address: port-0 services.
// Unlike match it also drops non-first fragments of those frames.
func matchAny(set *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: regKey0},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regKey0, Data: etherTypeIPv4},
		&expr.Payload{DestRegister: regKey0, Base: expr.PayloadBaseNetworkHeader, Offset: offIPDst, Len: 4},
		&expr.Payload{DestRegister: regKey1, Base: expr.PayloadBaseNetworkHeader, Offset: offIPProto, Len: 1},
		&expr.Lookup{SourceRegister: regKey0, SetName: set.Name, SetID: set.ID},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// Set replaces the whole rule set in one transaction: from the moment it
// commits, exactly rules are dropped, and no frame ever sees a mix or an
// empty set in between. Every rule is validated first; an invalid one is
// reported as a *RuleError naming it (matching ErrInvalidRule), and on any
// error nothing changes. Duplicate rules are harmless.
func (f *Filter) Set(rules []Rule) error {
	dst, src, any, err := keys(rules)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fmt.Errorf("ingress: set: %w", net.ErrClosed)
	}
	c, done := f.opConn()
	defer done()
	c.FlushSet(f.dst)
	c.FlushSet(f.src)
	c.FlushSet(f.any)
	for _, part := range []struct {
		set  *nftables.Set
		keys []key
	}{{f.dst, dst}, {f.src, src}, {f.any, any}} {
		for chunk := range slices.Chunk(part.keys, maxElemsPerMsg) {
			elems := make([]nftables.SetElement, len(chunk))
			for i := range chunk {
				elems[i].Key = chunk[i][:]
				if part.set == f.any {
					elems[i].Key = chunk[i][:anyKeyLen]
				}
			}
			if err := c.SetAddElements(part.set, elems); err != nil {
				// The queued messages go with c, never sent.
				return fmt.Errorf("ingress: set %s: %w", part.set.Name, err)
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("ingress: replacing rules in table netdev %s: %w", f.table.Name, err)
	}
	f.rules = slices.Clone(rules)
	f.logf("ingress: table netdev %s: %d destination and %d source matches", f.table.Name, len(dst), len(src))
	return nil
}

// Rules returns a copy of the rules last installed by Set.
func (f *Filter) Rules() []Rule {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.rules)
}

// Interfaces returns the interfaces the filter has a chain on.
func (f *Filter) Interfaces() []string { return slices.Clone(f.ifaces) }

// Table returns the name of the netdev table.
func (f *Filter) Table() string { return f.table.Name }

// Dropped returns how many packets the filter has dropped since Open, per
// interface and, under the key Total, in all. It reads the counters of the
// rules in each chain.
//
// The kernel counts socket buffers at the ingress hook, after GRO: where the
// driver merges segments (GRO on a physical NIC) one count can stand for
// several wire frames.
func (f *Filter) Dropped() (map[string]uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, fmt.Errorf("ingress: dropped: %w", net.ErrClosed)
	}
	c, done := f.opConn()
	defer done()
	out := make(map[string]uint64, len(f.chains)+1)
	for i, ch := range f.chains {
		rules, err := c.GetRules(f.table, ch)
		if err != nil {
			return nil, fmt.Errorf("ingress: reading counters of chain %s: %w", ch.Name, err)
		}
		var n uint64
		for _, r := range rules {
			for _, e := range r.Exprs {
				if c, ok := e.(*expr.Counter); ok {
					n += c.Packets
				}
			}
		}
		out[f.ifaces[i]] = n
		out[Total] += n
	}
	return out, nil
}

// Close deletes the table, after which the kernel sees every frame again.
// Closing twice is harmless; so is a table that someone already deleted.
func (f *Filter) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	defer f.nsFile.Close()
	c, done := f.opConn()
	defer done()
	c.DelTable(f.table)
	if err := c.Flush(); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("ingress: deleting table netdev %s: %w", f.table.Name, err)
	}
	f.logf("ingress: table netdev %s deleted", f.table.Name)
	return nil
}

// classify makes errors that mean "this kernel cannot do it" match
// ErrNotSupported, keeping the original error in the chain.
//
//   - EPROTONOSUPPORT: no nfnetlink (socket(AF_NETLINK, NETLINK_NETFILTER)).
//   - EOPNOTSUPP: no nf_tables subsystem, or no ingress hook
//     (CONFIG_NETFILTER_INGRESS).
//   - EAFNOSUPPORT: no netdev family (CONFIG_NF_TABLES_NETDEV).
//   - ENOENT: a chain type or expression (meta, payload, lookup, counter)
//     is not built. Open has checked the interfaces beforehand, and the
//     table cannot be missing in a batch that adds it first.
func classify(err error) error {
	for _, errno := range []syscall.Errno{syscall.EPROTONOSUPPORT, syscall.EOPNOTSUPP, syscall.EAFNOSUPPORT, syscall.ENOENT} {
		if errors.Is(err, errno) {
			return fmt.Errorf("%w: %w", ErrNotSupported, err)
		}
	}
	return err
}

// opConn returns a Conn for one operation, whose socket is opened in the
// filter's namespace, with the calling goroutine locked to its thread until
// done is called. When that thread already is in the namespace (in gvs all
// threads are) the socket is opened right there; otherwise the Conn enters
// the namespace first, with setns, which takes CAP_SYS_ADMIN. So a process
// that dropped every capability but CAP_NET_ADMIN after Open (gvs does)
// can still Set and Close.
func (f *Filter) opConn() (c *nftables.Conn, done func()) {
	runtime.LockOSThread()
	if sameNetNS(f.nsFile) {
		c, _ = nftables.New() // an error comes only with AsLasting
	} else {
		c, _ = nftables.New(nftables.WithNetNSFd(int(f.nsFile.Fd())))
	}
	return c, runtime.UnlockOSThread
}

// sameNetNS reports whether the calling thread is in the network namespace
// ns refers to (the same nsfs inode).
func sameNetNS(ns *os.File) bool {
	var a, b syscall.Stat_t
	if syscall.Fstat(int(ns.Fd()), &a) != nil || syscall.Stat("/proc/thread-self/ns/net", &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}
