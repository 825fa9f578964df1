package sched

import (
	"bufio"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestKernelVectors replays testdata/kernel_vectors.txt, written by
// testdata/oracle.c, a transcription of the kernel's ip_vs_dh.c,
// ip_vs_sh.c, ip_vs_mh.c and ip_vs_twos.c with their hash functions (see
// its header for the files and functions). Each scenario adds, edits and
// removes servers as ip_vs_ctl.c does, and states the exact lookup table
// and the pick the kernel makes for each packet; this test does the same
// with gvs's schedulers and compares.
func TestKernelVectors(t *testing.T) {
	f, err := os.Open("testdata/kernel_vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	var (
		s        Scheduler
		l        *list
		c        *conns
		scenario string
		prev     string // the table before the last del
		checks   int
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	line := 0
	atoi := func(s string) int {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("line %d: %v", line, err)
		}
		return n
	}
	for sc.Scan() {
		line++
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 || strings.HasPrefix(fs[0], "#") {
			continue
		}
		where := func() string { return scenario + " (line " + strconv.Itoa(line) + ")" }
		switch fs[0] {
		case "hash32":
			v, nbits, want := atoi(fs[1]), atoi(fs[2]), atoi(fs[3])
			if got := hash32(uint32(v), uint(nbits)); got != uint32(want) {
				t.Errorf("hash_32(%d, %d) = %d, kernel %d", v, nbits, got, want)
			}
		case "hsiphash":
			k := &mhHash1
			if fs[1] == "2" {
				k = &mhHash2
			}
			v, want := atoi(fs[2]), atoi(fs[3])
			if got := hsiphash32(uint32(v), k); got != uint32(want) {
				t.Errorf("hsiphash(%d, hash%s) = %d, kernel %d", v, fs[1], got, want)
			}
		case "scenario":
			scenario = strings.Join(fs[1:], " ")
			s, err = New(fs[1], fs[3:])
			if err != nil {
				t.Fatalf("%s: %v", where(), err)
			}
			l, c = &list{}, newConns()
		case "add":
			a := netip.MustParseAddr(fs[2])
			l.add(s, fs[1], netip.AddrPortFrom(a, uint16(atoi(fs[3]))), int32(atoi(fs[4])))
		case "edit":
			l.edit(s, fs[1], int32(atoi(fs[2])))
		case "del":
			prev = tableOf(s, l)
			i := l.index(fs[1])
			l.ds = append(l.ds[:i:i], l.ds[i+1:]...)
			l.names = append(l.names[:i:i], l.names[i+1:]...)
			s.Changed(l.ds, Change{Kind: Removed, Index: i})
		case "overload":
			c.overload(t, l.dest(fs[1]), fs[2] == "1")
		case "conns":
			c.set(t, l.dest(fs[1]), atoi(fs[2]), atoi(fs[3]))
		case "table":
			checks++
			if got := tableOf(s, l); got != fs[1] {
				t.Errorf("%s: table differs from the kernel's at slot %d:\n got  %.80s...\n want %.80s...",
					where(), firstDiff(got, fs[1]), got, fs[1])
			}
		case "pick":
			checks++
			k := key(t, uint8(atoi(fs[4])), fs[1], uint16(atoi(fs[2])), fs[3], 80)
			if got := l.name(s.Pick(l.ds, &k)); got != fs[5] {
				t.Errorf("%s: pick for %s:%s -> %s proto %s = %s, kernel %s", where(), fs[1], fs[2], fs[3], fs[4], got, fs[5])
			}
		case "moved":
			checks++
			moved, total := movedSlots(prev, tableOf(s, l), l.names)
			if moved != atoi(fs[1]) || total != atoi(fs[3]) {
				t.Errorf("%s: %d of %d slots moved, kernel %s of %s", where(), moved, total, fs[1], fs[3])
			}
		case "twos":
			checks++
			// twos v1 v2 ... -> name: the random stream is exactly what
			// the kernel's pick draws.
			arrow := len(fs) - 2
			r := &scriptRand{}
			for _, v := range fs[1:arrow] {
				r.vals = append(r.vals, uint32(atoi(v)))
			}
			s.(*twos).rand = r
			if got := l.name(s.Pick(l.ds, nil)); got != fs[arrow+1] || r.n != len(r.vals) {
				t.Errorf("%s: twos with %v picks %s using %d draws, kernel %s using %d",
					where(), r.vals, got, r.n, fs[arrow+1], len(r.vals))
			}
		case "twosseq":
			// twosseq seed picks draws: a run of picks with xorshift32
			// seeded with seed as get_random_u32.
			checks++
			r := &xorshift32{x: uint32(atoi(fs[1]))}
			s.(*twos).rand = r
			var b strings.Builder
			for range len(fs[2]) {
				b.WriteString(l.name(s.Pick(l.ds, nil)))
			}
			if got := b.String(); got != fs[2] || r.n != atoi(fs[3]) {
				t.Errorf("%s: twos seeded %s picks\n%s using %d draws, kernel\n%s using %s",
					where(), fs[1], got, r.n, fs[2], fs[3])
			}
		default:
			t.Fatalf("line %d: unknown record %q", line, fs[0])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d tables, picks and figures checked against the kernel's", checks)
}

// tableOf renders a hashing scheduler's table as the oracle prints it: one
// letter per bucket, the server's name, or "-" for none.
func tableOf(s Scheduler, l *list) string {
	var idx []int32
	switch s := s.(type) {
	case *dh:
		idx = s.table[:]
	case *sh:
		idx = s.table[:]
	case *mh:
		idx = s.lookup
	default:
		return ""
	}
	var b strings.Builder
	for _, i := range idx {
		b.WriteString(l.name(int(i)))
	}
	return b.String()
}

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// movedSlots counts the slots that changed server between two tables,
// among those whose server before is still in the list (names).
func movedSlots(before, after string, names []string) (moved, total int) {
	alive := map[byte]bool{}
	for _, n := range names {
		alive[n[0]] = true
	}
	for i := range len(before) {
		if !alive[before[i]] {
			continue
		}
		total++
		if after[i] != before[i] {
			moved++
		}
	}
	return moved, total
}
