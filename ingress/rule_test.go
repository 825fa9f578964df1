package ingress

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRuleCheck(t *testing.T) {
	vip := netip.MustParseAddr("192.168.1.10")
	tests := []struct {
		name    string
		rule    Rule
		want    key
		wantErr error
	}{
		{
			name: "tcp dst",
			rule: Rule{Protocol: ProtoTCP, Addr: vip, Port: 80},
			want: key{192, 168, 1, 10, 6, 0, 0, 0, 0, 80, 0, 0},
		},
		{
			name: "udp src high port",
			rule: Rule{Protocol: ProtoUDP, Addr: vip, Port: 0xabcd, Source: true},
			want: key{192, 168, 1, 10, 17, 0, 0, 0, 0xab, 0xcd, 0, 0},
		},
		{
			name: "ipv4-mapped is unmapped",
			rule: Rule{Protocol: ProtoTCP, Addr: netip.MustParseAddr("::ffff:192.168.1.10"), Port: 443},
			want: key{192, 168, 1, 10, 6, 0, 0, 0, 0x01, 0xbb, 0, 0},
		},
		{name: "icmp", rule: Rule{Protocol: 1, Addr: vip, Port: 80}, wantErr: errProtocol},
		{name: "sctp", rule: Rule{Protocol: 132, Addr: vip, Port: 80}, wantErr: errProtocol},
		{name: "zero protocol", rule: Rule{Addr: vip, Port: 80}, wantErr: errProtocol},
		{name: "no address", rule: Rule{Protocol: ProtoTCP, Port: 80}, wantErr: errNoAddr},
		{name: "ipv6", rule: Rule{Protocol: ProtoTCP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 80}, wantErr: errNotIPv4},
		{name: "unspecified", rule: Rule{Protocol: ProtoTCP, Addr: netip.IPv4Unspecified(), Port: 80}, wantErr: errUnspecified},
		{name: "source port 0", rule: Rule{Protocol: ProtoUDP, Addr: vip, Source: true}, wantErr: errPortZero},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.rule.check()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("check() error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("key (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKeysNamesBadRule(t *testing.T) {
	good := Rule{Protocol: ProtoTCP, Addr: netip.MustParseAddr("192.168.1.10"), Port: 80}
	bad := Rule{Protocol: ProtoTCP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 80}
	_, _, _, err := keys([]Rule{good, good, bad})
	var re *RuleError
	if !errors.As(err, &re) {
		t.Fatalf("keys() error = %v, want *RuleError", err)
	}
	if re.Index != 2 || re.Rule != bad {
		t.Errorf("RuleError names rule %d (%v), want 2 (%v)", re.Index, re.Rule, bad)
	}
	if !errors.Is(err, ErrInvalidRule) || !errors.Is(err, errNotIPv4) {
		t.Errorf("error %v does not match ErrInvalidRule and errNotIPv4", err)
	}
	for _, want := range []string{"rule 2", "2001:db8::1", "dport 80", "not IPv4"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestKeysSplitAndDedupe(t *testing.T) {
	a := netip.MustParseAddr("192.168.1.10")
	b := netip.MustParseAddr("192.168.1.20")
	dst, src, any, err := keys([]Rule{
		{Protocol: ProtoTCP, Addr: a, Port: 80},
		{Protocol: ProtoUDP, Addr: b},          // every port
		{Protocol: ProtoUDP, Addr: b, Port: 0}, // duplicate
		{Protocol: ProtoUDP, Addr: b, Port: 53, Source: true},
		{Protocol: ProtoTCP, Addr: a, Port: 80},                                          // duplicate
		{Protocol: ProtoTCP, Addr: netip.MustParseAddr("::ffff:192.168.1.10"), Port: 80}, // same, mapped
		{Protocol: ProtoUDP, Addr: a, Port: 80},                                          // other protocol
		{Protocol: ProtoTCP, Addr: a, Port: 80, Source: true},                            // other direction
	})
	if err != nil {
		t.Fatal(err)
	}
	wantDst := []key{
		{192, 168, 1, 10, 6, 0, 0, 0, 0, 80, 0, 0},
		{192, 168, 1, 10, 17, 0, 0, 0, 0, 80, 0, 0},
	}
	wantSrc := []key{
		{192, 168, 1, 20, 17, 0, 0, 0, 0, 53, 0, 0},
		{192, 168, 1, 10, 6, 0, 0, 0, 0, 80, 0, 0},
	}
	if diff := cmp.Diff(wantDst, dst); diff != "" {
		t.Errorf("dst (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantSrc, src); diff != "" {
		t.Errorf("src (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]key{{192, 168, 1, 20, 17, 0, 0, 0, 0, 0, 0, 0}}, any); diff != "" {
		t.Errorf("any (-want +got):\n%s", diff)
	}
}

func TestRuleString(t *testing.T) {
	a := netip.MustParseAddr("192.168.1.10")
	tests := []struct {
		rule Rule
		want string
	}{
		{Rule{Protocol: ProtoTCP, Addr: a, Port: 80}, "ip daddr 192.168.1.10 tcp dport 80"},
		{Rule{Protocol: ProtoUDP, Addr: a, Port: 53, Source: true}, "ip saddr 192.168.1.10 udp sport 53"},
		{Rule{Protocol: 1, Addr: a, Port: 7}, "ip daddr 192.168.1.10 ip protocol 1 th dport 7"},
	}
	for _, tt := range tests {
		if got := tt.rule.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	var c *Config
	if got := c.table(); got != DefaultTable {
		t.Errorf("nil Config table = %q, want %q", got, DefaultTable)
	}
	c.logf()("must not panic %d", 1)
	if got := (&Config{Table: "x"}).table(); got != "x" {
		t.Errorf("table = %q, want x", got)
	}
}
