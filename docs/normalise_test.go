package docs

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNormalise(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
		paths          []string
	}{
		{
			name: "trace header",
			in:   "trace 21:43:13.237885 eth0 #4: TCP 192.168.150.10:40001 > 192.168.150.100:80 [SYN] -> forwarded, DR to 192.168.150.13",
			want: "trace <time> eth0 #<n>: TCP 192.168.150.10:40001 > 192.168.150.100:80 [SYN] -> forwarded, DR to 192.168.150.13",
		},
		{
			name: "hop learnt from a reply",
			in:   "  hop    192.168.150.13 on eth0 is 02:42:c0:a8:96:0d, learned from an ARP reply 30ms ago",
			want: "  hop    192.168.150.13 on eth0 is 02:42:c0:a8:96:0d, learned from an ARP reply <age> ago",
		},
		{
			name: "hop learnt from a request, minutes ago, no longer reachable",
			in:   "  hop    192.168.30.13 on eth1 is 02:42:c0:a8:1e:0d, learned from its own ARP request 1m2.5s ago (now failed)",
			want: "  hop    192.168.30.13 on eth1 is 02:42:c0:a8:1e:0d, learned from its own ARP request <age> ago (now failed)",
		},
		{
			name: "hop learnt 0s ago",
			in:   "  hop    192.168.40.254 on eth1 is 02:42:c0:a8:28:fe, learned from an ARP reply 0s ago",
			want: "  hop    192.168.40.254 on eth1 is 02:42:c0:a8:28:fe, learned from an ARP reply <age> ago",
		},
		{
			name: "IP checksums, outer header kept",
			in: "           + outer IPv4  192.168.40.1 > 192.168.20.13 proto 4 (IPIP) ttl 63 tos 0x00 DF id 1 len 80 sum 0x7e4a\n" +
				"           inner ip.sum 0xb852 -> 0xb952\n" +
				"           ip.sum       0x73d9 -> 0x74d9",
			want: "           + outer IPv4  192.168.40.1 > 192.168.20.13 proto 4 (IPIP) ttl 63 tos 0x00 DF id 1 len 80 sum 0x7e4a\n" +
				"           inner ip.sum <sum> -> <sum>\n" +
				"           ip.sum       <sum> -> <sum>",
		},
		{
			name: "L4 checksums: partial kept, completed and complete replaced",
			in: "           tcp.sum      0xadee -> 0x2197 (partial: the pseudo-header sum, completed by the kernel on transmit)\n" +
				"           tcp.sum      0xadee -> 0x4124 (was partial: completed by gvs)\n" +
				"           udp.sum      0x1234 -> 0x5678",
			want: "           tcp.sum      0xadee -> 0x2197 (partial: the pseudo-header sum, completed by the kernel on transmit)\n" +
				"           tcp.sum      0xadee -> <sum> (was partial: completed by gvs)\n" +
				"           udp.sum      <sum> -> <sum>",
		},
		{
			name: "connection rows: countdown replaced, sorted by client",
			in: "    pro expire state       source             virtual            destination\n" +
				"    TCP 14:59  ESTABLISHED 192.168.150.10:40008 192.168.150.100:80 192.168.150.12:80\n" +
				"    TCP 01:59  FIN_WAIT    192.168.150.10:40001 192.168.150.100:80 192.168.150.13:80\n" +
				"    TCP 00:58  SYN_RECV    192.168.150.9:40009 192.168.150.100:80 192.168.150.13:80\n" +
				"node01# gvsadm -Ln",
			want: "    pro expire state       source             virtual            destination\n" +
				"    TCP <exp>  SYN_RECV    192.168.150.9:40009 192.168.150.100:80 192.168.150.13:80\n" +
				"    TCP <exp>  FIN_WAIT    192.168.150.10:40001 192.168.150.100:80 192.168.150.13:80\n" +
				"    TCP <exp>  ESTABLISHED 192.168.150.10:40008 192.168.150.100:80 192.168.150.12:80\n" +
				"node01# gvsadm -Ln",
		},
		{
			name: "stats: counters other than 0 replaced in place, Conns kept",
			in: "    Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n" +
				"      -> RemoteAddress:Port\n" +
				"    TCP  192.168.150.100:80                  8       48        0     3456        0\n" +
				"      -> 192.168.150.12:80                   4       24       22    1234K     5678\n" +
				"node01# gvsadm -Ln\n" +
				"      -> 192.168.150.12:80            Route   1      1          3         ",
			want: "    Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n" +
				"      -> RemoteAddress:Port\n" +
				"    TCP  192.168.150.100:80                  8      <n>        0      <n>        0\n" +
				"      -> 192.168.150.12:80                   4      <n>      <n>      <n>      <n>\n" +
				"node01# gvsadm -Ln\n" +
				"      -> 192.168.150.12:80            Route   1      1          3",
		},
		{
			name: "ARP cache state",
			in:   "    192.168.150.100 lladdr 02:42:c0:a8:96:01 REACHABLE\n    192.168.150.1 dev eth0 lladdr 02:42:c0:a8:96:01 STALE",
			want: "    192.168.150.100 lladdr 02:42:c0:a8:96:01 <state>\n    192.168.150.1 dev eth0 lladdr 02:42:c0:a8:96:01 <state>",
		},
		{
			name:  "paths, and frame numbers in capture comments",
			in:    "node01# /tmp/x/gvs -i eth0 --socket /tmp/gvdoc1.sock --pcap /tmp/y/gvs.pcapng&\ngvs #17 in eth0: forwarded",
			paths: []string{"/tmp/x/gvs", "gvs", "/tmp/gvdoc1.sock", "<socket>", "/tmp/y/gvs.pcapng", "<pcap>"},
			want:  "node01# gvs -i eth0 --socket <socket> --pcap <pcap>&\ngvs #<n> in eth0: forwarded",
		},
		{
			name: "left alone",
			in:   "    Timeout (tcp tcpfin udp): 900 120 300\n  local  192.168.30.200:1024 (FULLNAT's address and port towards the real server)\n           ip.ttl       64 -> 63",
			want: "    Timeout (tcp tcpfin udp): 900 120 300\n  local  192.168.30.200:1024 (FULLNAT's address and port towards the real server)\n           ip.ttl       64 -> 63",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := normalise(tt.in, tt.paths); got != tt.want {
				t.Errorf("(-want +got):\n%s", cmp.Diff(strings.Split(tt.want, "\n"), strings.Split(got, "\n")))
			}
		})
	}
}

// TestNormaliseIdempotent: normalising twice changes nothing more, so a
// guide's excerpt can be checked against a fresh one.
func TestNormaliseIdempotent(t *testing.T) {
	in := "trace 21:43:13.237885 eth0 #4: TCP\n  hop    x on eth0 is m, learned from an ARP reply 30ms ago\n" +
		"    TCP 01:59  FIN_WAIT    192.168.150.10:40001 192.168.150.100:80 192.168.150.13:80\n" +
		"           ip.sum       0x73d9 -> 0x74d9\n"
	once := normalise(in, nil)
	if twice := normalise(once, nil); twice != once {
		t.Errorf("(-once +twice):\n%s", cmp.Diff(once, twice))
	}
}
