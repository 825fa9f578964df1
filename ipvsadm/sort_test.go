package ipvsadm

import (
	"bufio"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/gvs-project/gvs/control"
)

// TestSortOracle checks msort and cmpDests against glibc: the vectors in
// testdata/qsort_oracle.txt were printed by testdata/qsort_oracle.c with
// glibc 2.36's qsort and libipvs's comparison. Many pairs are 2^31 or more
// apart, where that comparison is not a total order, so only the same
// algorithm gives the same order.
func TestSortOracle(t *testing.T) {
	f, err := os.Open("testdata/qsort_oracle.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parse := func(fields []string) []control.Dest {
		var d []control.Dest
		for _, s := range fields {
			ap := netip.MustParseAddrPort(s)
			d = append(d, control.Dest{Addr: ap.Addr(), Port: ap.Port()})
		}
		return d
	}
	sc := bufio.NewScanner(f)
	n, wrapped := 0, 0
	for sc.Scan() {
		in, out, ok := strings.Cut(sc.Text(), " | ")
		if !ok {
			t.Fatalf("bad line %q", sc.Text())
		}
		got := parse(strings.Fields(in)[1:])
		want := parse(strings.Fields(out)[1:])
		sortDests(got)
		same := func(a, b control.Dest) bool { return a.Addr == b.Addr && a.Port == b.Port }
		if !slices.EqualFunc(got, want, same) {
			t.Errorf("line %d:\n got %v\nwant %v", n+1, got, want)
		}
		if !slices.IsSortedFunc(want, func(a, b control.Dest) int { return a.Addr.Compare(b.Addr) }) {
			wrapped++
		}
		n++
	}
	if n != 300 {
		t.Fatalf("%d vectors", n)
	}
	if wrapped < 100 {
		t.Errorf("only %d vectors exercise the wrap-around", wrapped)
	}
}

func TestSortServices(t *testing.T) {
	s := []control.Service{
		{Protocol: control.UDP, Addr: addr("1.1.1.1"), Port: 53},
		{Protocol: control.TCP, Addr: addr("192.168.0.1"), Port: 443},
		{Protocol: control.TCP, Addr: addr("10.0.0.1"), Port: 80},
		{Protocol: control.TCP, Addr: addr("192.168.0.1"), Port: 80},
	}
	sortServices(s)
	var got []string
	for _, x := range s {
		got = append(got, x.Protocol+" "+netip.AddrPortFrom(x.Addr, x.Port).String())
	}
	// TCP before UDP; 10.0.0.1 after 192.168.0.1 (0x0a000001 - 0xc0a80001
	// is positive as an int).
	want := []string{"tcp 192.168.0.1:80", "tcp 192.168.0.1:443", "tcp 10.0.0.1:80", "udp 1.1.1.1:53"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
