package hdr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// The fuzz targets' seed corpora live in testdata/fuzz/<target>/, where
// go test runs them as ordinary tests. TestFuzzSeedCorpus checks that the
// files match fuzzSeeds; `go test -run TestFuzzSeedCorpus -update-corpus`
// rewrites them after fuzzSeeds changes.
var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz from fuzzSeeds")

type fuzzSeed struct {
	name string
	args []any // []byte, int or byte, in the target's order
}

// fuzzSeeds returns the seed inputs of each fuzz target: typical packets,
// the edge cases of the table tests and inputs that must be refused.
func fuzzSeeds() map[string][]fuzzSeed {
	r := rand.New(rand.NewPCG(51, 52))
	src, dst := [4]byte{192, 168, 1, 1}, [4]byte{192, 168, 2, 2}
	super := func(ipOpts, tcpOpts []byte, n int, flags uint8) []byte {
		return buildIPv4(pktSpec{ttl: 64, proto: ProtoTCP, id: 0xfffe, flagsOff: ipv4FlagDF, src: src, dst: dst, ipOpts: ipOpts,
			l4: buildTCP(tcpSpec{sport: 40000, dport: 80, seq: 0xfffffff0, ack: 1, flags: flags, window: 502,
				opts: tcpOpts, payload: randBytes(r, n)})})
	}
	dgram := func(opts []byte, n int, ff uint16) []byte {
		return buildIPv4(pktSpec{ttl: 64, proto: ProtoUDP, id: 7, flagsOff: ff, src: src, dst: dst, ipOpts: opts, l4: randBytes(r, n)})
	}
	zeroTotal := super(nil, nil, 1000, TCPFlagACK)
	binary.BigEndian.PutUint16(zeroTotal[ipv4TotalLen:], 0)
	udp := dgram(nil, 8, 0)

	icmpErr := func(typ, code uint8, extra uint32, orig []byte, n int) []byte {
		b := make([]byte, n)
		m, err := BuildICMPv4Error(b, typ, code, extra, src, client, 64, orig)
		if err != nil {
			panic(err)
		}
		return b[:m]
	}
	tcpOrig := offending(ProtoTCP, nil, tcpSegment(200), ipv4FlagDF)
	badSum := icmpErr(3, 4, 1400, tcpOrig, 600)
	badSum[IPv4MinLen+icmpChecksum] ^= 1

	return map[string][]fuzzSeed{
		"FuzzSegmentTCPv4": {
			{"plain", []any{super(nil, nil, 3000, TCPFlagACK|TCPFlagPSH|TCPFlagFIN|TCPFlagCWR), 1448}},
			{"options", []any{super(packOptions(optRouterAlert, optRecordRoute), packOptions(tcpOptTS), 2000, TCPFlagACK|TCPFlagPSH), 536}},
			{"lsrr", []any{super(packOptions(optLSRR), nil, 700, TCPFlagACK), 300}},
			{"mss1", []any{super(nil, nil, 9, TCPFlagACK|TCPFlagFIN), 1}},
			{"fits", []any{super(nil, nil, 100, TCPFlagACK), 1448}},
			{"empty", []any{super(nil, nil, 0, TCPFlagACK), 1448}},
			{"zero-total", []any{zeroTotal, 400}},
			{"fragment", []any{dgram(nil, 100, ipv4FlagMF), 40}},
			{"udp", []any{udp, 4}},
			{"mss0", []any{super(nil, nil, 10, TCPFlagACK), 0}},
		},
		"FuzzFragmentIPv4": {
			{"plain", []any{dgram(nil, 3000, 0), 1500}},
			{"options", []any{dgram(packOptions(optRecordRoute, optRouterAlert, optNOP, optTimestamp, optLSRR), 2000, 0), 576}},
			{"min-mtu", []any{dgram(packOptions(optSecurity, optRecordRoute, optTimestamp, optRouterAlert), 64, 0), 68}},
			{"fits", []any{dgram(nil, 100, ipv4FlagDF), 1500}},
			{"df", []any{dgram(nil, 2000, ipv4FlagDF), 1500}},
			{"middle-fragment", []any{dgram(packOptions(optSecurity), 1000, ipv4FlagMF|100), 300}},
			{"bad-options", []any{dgram(packOptions([]byte{0x94, 0, 0, 0}), 1000, 0), 500}},
			{"small-mtu", []any{dgram(nil, 100, 0), 27}},
		},
		"FuzzParseICMPv4Error": {
			{"frag-needed", []any{icmpErr(3, 4, 1400, tcpOrig, 600)}},
			{"time-exceeded", []any{icmpErr(11, 0, 0, dgram(packOptions(optRouterAlert), 30, 0), 600)}},
			{"minimal", []any{icmpErr(3, 3, 0, dgram(nil, 8, 0), 600)}},
			{"bad-checksum", []any{badSum}},
			{"echo", []any{offending(ProtoICMP, nil, icmpMsg(ICMPv4Echo, 0, 40), 0)}},
		},
		"FuzzBuildICMPv4Error": {
			{"tcp", []any{tcpOrig, byte(3), byte(4), 1500}},
			{"udp-short-dst", []any{dgram(nil, 300, 0), byte(11), byte(0), 100}},
			{"icmp-echo", []any{offending(ProtoICMP, nil, icmpMsg(ICMPv4Echo, 0, 40), 0), byte(3), byte(1), 576}},
			{"icmp-error", []any{icmpErr(3, 4, 1400, tcpOrig, 600), byte(11), byte(0), 576}},
			{"fragment", []any{dgram(nil, 300, 10), byte(11), byte(0), 576}},
		},
	}
}

// encodeSeed writes a corpus file in the format of go test fuzz v1.
func encodeSeed(args []any) []byte {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
		case int:
			fmt.Fprintf(&b, "int(%d)\n", v)
		case byte:
			fmt.Fprintf(&b, "byte(%d)\n", v)
		default:
			panic(fmt.Sprintf("unsupported seed type %T", a))
		}
	}
	return []byte(b.String())
}

func TestFuzzSeedCorpus(t *testing.T) {
	for target, seeds := range fuzzSeeds() {
		dir := filepath.Join("testdata", "fuzz", target)
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range seeds {
			path := filepath.Join(dir, "seed-"+s.name)
			want := encodeSeed(s.args)
			if *updateCorpus {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestFuzzSeedCorpus -update-corpus)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s is stale (run go test -run TestFuzzSeedCorpus -update-corpus)", path)
			}
		}
	}
}

// isSentinel reports whether err is one of the package's errors.
func isSentinel(err error) bool {
	for _, e := range []error{ErrMalformed, ErrBadIPOptions, ErrNotTCP, ErrIsFragment, ErrBadMSS, ErrMTUTooSmall,
		ErrFragmentationNeeded, ErrNoBuffer, ErrShortBuffer, ErrChecksumRange, ErrNotICMPError, ErrICMPSuppressed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// verifyIPv4Header checks what every packet we emit must satisfy: a
// well-formed header whose total length is the packet's length and whose
// checksum verifies.
func verifyIPv4Header(t *testing.T, p []byte) (ihl int) {
	t.Helper()
	ihl, total, err := ipv4Bounds(p, false)
	if err != nil || total != len(p) {
		t.Fatalf("emitted a malformed header (%v, total %d, len %d): %x", err, total, len(p), p[:min(len(p), 60)])
	}
	if Fold(Sum(p[:ihl], 0)) != 0xffff {
		t.Fatalf("emitted a header whose checksum does not verify: %x", p[:ihl])
	}
	return ihl
}

func FuzzSegmentTCPv4(f *testing.F) {
	f.Fuzz(func(t *testing.T, pkt []byte, mss int) {
		var c collector
		err := SegmentTCPv4(pkt, mss, c.next)
		n, cerr := SegmentCountTCPv4(pkt, mss)
		if err != nil {
			if !isSentinel(err) || c.calls != 0 || cerr != err {
				t.Fatalf("error %v after %d calls (count error %v)", err, c.calls, cerr)
			}
			return
		}
		if cerr != nil || n != len(c.pkts) {
			t.Fatalf("SegmentCountTCPv4 = %d, %v; %d segments", n, cerr, len(c.pkts))
		}
		ip := IPv4(pkt)
		total := ip.TotalLen()
		if total == 0 {
			total = len(pkt)
		}
		hl := ip.HeaderLen() + TCP(pkt[ip.HeaderLen():]).DataOffset()
		var payload []byte
		seq := binary.BigEndian.Uint32(pkt[ip.HeaderLen()+tcpSeq:])
		for i, s := range c.pkts {
			ihl := verifyIPv4Header(t, s)
			sip := IPv4(s)
			if IPv4(s).ID() != ip.ID()+uint16(i) || !bytes.Equal(s[:ipv4TotalLen], pkt[:ipv4TotalLen]) ||
				!bytes.Equal(s[ipv4FlagsOff:ipv4Checksum], pkt[ipv4FlagsOff:ipv4Checksum]) ||
				!bytes.Equal(s[ipv4Src:ihl], pkt[ipv4Src:ihl]) {
				t.Fatalf("segment %d: IP header not copied", i)
			}
			th := s[ihl:]
			if Fold(Sum(th, PseudoHeaderSum(sip.Source(), sip.pseudoHeaderDestination(), ProtoTCP, len(th)))) != 0xffff {
				t.Fatalf("segment %d: TCP checksum does not verify", i)
			}
			if got := binary.BigEndian.Uint32(th[tcpSeq:]); got != seq+uint32(len(payload)) {
				t.Fatalf("segment %d: seq %d, want %d", i, got, seq+uint32(len(payload)))
			}
			if len(s)-hl > mss || i < len(c.pkts)-1 && len(s)-hl != mss {
				t.Fatalf("segment %d: %d payload bytes, mss %d", i, len(s)-hl, mss)
			}
			payload = append(payload, s[hl:]...)
			// gopacket verifies the checksums too where it can decode.
			var gip layers.IPv4
			var gtcp layers.TCP
			if gip.DecodeFromBytes(s, gopacket.NilDecodeFeedback) == nil &&
				gtcp.DecodeFromBytes(gip.Payload, gopacket.NilDecodeFeedback) == nil {
				gtcp.SetNetworkLayerForChecksum(&gip)
				if _, res := gip.VerifyChecksum(); !res.Valid {
					t.Fatalf("segment %d: gopacket rejects the IP checksum", i)
				}
				if err, res := gtcp.VerifyChecksum(); err == nil && !res.Valid {
					t.Fatalf("segment %d: gopacket rejects the TCP checksum", i)
				}
			}
		}
		if !bytes.Equal(payload, pkt[hl:total]) {
			t.Fatal("segment payloads do not add up to the original")
		}
	})
}

func FuzzFragmentIPv4(f *testing.F) {
	f.Fuzz(func(t *testing.T, pkt []byte, mtu int) {
		var c collector
		err := FragmentIPv4(pkt, mtu, c.next)
		if err != nil {
			if !isSentinel(err) || c.calls != 0 {
				t.Fatalf("error %v after %d calls", err, c.calls)
			}
			return
		}
		ip := IPv4(pkt)
		ihl, total := ip.HeaderLen(), ip.TotalLen()
		if total <= mtu {
			if len(c.pkts) != 1 || !bytes.Equal(c.pkts[0], pkt[:total]) {
				t.Fatal("a packet that fits was changed")
			}
			return
		}
		ff := binary.BigEndian.Uint16(pkt[ipv4FlagsOff:])
		base := int(ff&ipv4OffsetMask) * 8
		var payload []byte
		for i, fr := range c.pkts {
			last := i == len(c.pkts)-1
			h := verifyIPv4Header(t, fr)
			if len(fr) > mtu {
				t.Fatalf("fragment %d: %d bytes, mtu %d", i, len(fr), mtu)
			}
			fo := binary.BigEndian.Uint16(fr[ipv4FlagsOff:])
			if int(fo&ipv4OffsetMask)*8 != base+len(payload) {
				t.Fatalf("fragment %d: offset %d, want %d", i, int(fo&ipv4OffsetMask)*8, base+len(payload))
			}
			if (fo&ipv4FlagMF != 0) != (!last || ff&ipv4FlagMF != 0) || fo&(ipv4FlagDF|0x8000) != 0 {
				t.Fatalf("fragment %d: flags %#04x", i, fo)
			}
			if !last && (len(fr)-h)%8 != 0 {
				t.Fatalf("fragment %d: %d bytes of data", i, len(fr)-h)
			}
			if !bytes.Equal(fr[ipv4TOS:ipv4TotalLen], pkt[ipv4TOS:ipv4TotalLen]) || !bytes.Equal(fr[ipv4ID:ipv4FlagsOff], pkt[ipv4ID:ipv4FlagsOff]) ||
				!bytes.Equal(fr[ipv4TTL:ipv4Checksum], pkt[ipv4TTL:ipv4Checksum]) || !bytes.Equal(fr[ipv4Src:IPv4MinLen], pkt[ipv4Src:IPv4MinLen]) {
				t.Fatalf("fragment %d: fixed header fields not copied", i)
			}
			if base+len(payload) == 0 && !bytes.Equal(fr[:ihl][IPv4MinLen:], pkt[IPv4MinLen:ihl]) {
				t.Fatal("first fragment lost options")
			}
			payload = append(payload, fr[h:]...)
		}
		if !bytes.Equal(payload, pkt[ihl:total]) {
			t.Fatal("fragment payloads do not add up to the original")
		}
	})
}

func FuzzParseICMPv4Error(f *testing.F) {
	f.Fuzz(func(t *testing.T, pkt []byte) {
		typ, _, q, l4, ok := ParseICMPv4Error(pkt)
		if !ok {
			if q != nil || l4 != nil {
				t.Fatal("views returned with ok false")
			}
			return
		}
		if !icmpIsError(typ) {
			t.Fatalf("accepted type %d", typ)
		}
		ihl, total, err := ipv4Bounds(pkt, false)
		if err != nil || IPv4(pkt).Protocol() != ProtoICMP || IPv4(pkt).IsFragment() {
			t.Fatal("accepted a packet that is not an unfragmented ICMP datagram")
		}
		if Fold(Sum(pkt[ihl:total], 0)) != 0xffff {
			t.Fatal("accepted a bad ICMP checksum")
		}
		qstart := ihl + ICMPv4HeaderLen
		if q.Version() != 4 || len(q) != q.HeaderLen() || len(q) < IPv4MinLen || len(l4) < 8 ||
			qstart+len(q)+len(l4) != total || !bytes.Equal(pkt[qstart:qstart+len(q)], q) ||
			&pkt[qstart] != &q[0] || &pkt[qstart+len(q)] != &l4[0] {
			t.Fatalf("views inconsistent: quoted %d bytes, L4 %d bytes, message %d", len(q), len(l4), total-ihl)
		}
	})
}

func FuzzBuildICMPv4Error(f *testing.F) {
	f.Fuzz(func(t *testing.T, orig []byte, typ, code byte, dstLen int) {
		if dstLen < 0 || dstLen > 1<<16 {
			return
		}
		dst := make([]byte, dstLen)
		n, err := BuildICMPv4Error(dst, typ, code, 0x12345678, icmpSrc, client, 64, orig)
		if err != nil {
			if !isSentinel(err) || n != 0 {
				t.Fatalf("BuildICMPv4Error = %d, %v", n, err)
			}
			return
		}
		msg := dst[:n]
		verifyIPv4Header(t, msg)
		if n > icmpErrorMaxLen || n > dstLen {
			t.Fatalf("%d bytes, limit %d", n, min(dstLen, icmpErrorMaxLen))
		}
		if Fold(Sum(msg[IPv4MinLen:], 0)) != 0xffff {
			t.Fatal("ICMP checksum does not verify")
		}
		q := n - IPv4MinLen - ICMPv4HeaderLen
		if !bytes.Equal(msg[IPv4MinLen+ICMPv4HeaderLen:], orig[:q]) {
			t.Fatal("quote differs from the original")
		}
		gotTyp, gotCode, qh, _, ok := ParseICMPv4Error(msg)
		ihl := IPv4(orig).HeaderLen()
		if ok != (q >= ihl+8) {
			t.Fatalf("ParseICMPv4Error ok = %v for a quote of %d bytes (header %d)", ok, q, ihl)
		}
		if ok && (gotTyp != typ || gotCode != code || !bytes.Equal(qh, orig[:ihl])) {
			t.Fatal("ParseICMPv4Error does not read back what was built")
		}
	})
}
