package cpustat

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const statFixture = `cpu  56036 1 20855 305956 685 2 1215 80 0 0
cpu0 27778 0 10188 153660 126 1 573 39 0 0
cpu1 28257 1 10666 152296 559 1 642 41 0 0
intr 123 0 0
ctxt 456
btime 1700000000
processes 789
procs_running 2
softirq 1 2 3 4 5 6 7 8 9 10 11
`

func TestParseStat(t *testing.T) {
	got, err := ParseStat(strings.NewReader(statFixture))
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{
		Total: CPU{User: 56036, Nice: 1, System: 20855, Idle: 305956, IOWait: 685, IRQ: 2, SoftIRQ: 1215, Steal: 80},
		PerCPU: []CPU{
			{User: 27778, System: 10188, Idle: 153660, IOWait: 126, IRQ: 1, SoftIRQ: 573, Steal: 39},
			{User: 28257, Nice: 1, System: 10666, Idle: 152296, IOWait: 559, IRQ: 1, SoftIRQ: 642, Steal: 41},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseStat (-want +got):\n%s", diff)
	}
	if b := want.Total.Busy(); b != 56036+1+20855+2+1215 {
		t.Errorf("Busy = %d", b)
	}
}

func TestParseStatErrors(t *testing.T) {
	for _, tt := range []struct{ name, in string }{
		{"empty", ""},
		{"no cpu line", "intr 1 2\nctxt 3\n"},
		{"short line", "cpu 1 2 3\n"},
		{"not a number", "cpu 1 2 3 x 5 6 7 8\n"},
		{"bad cpu number", "cpu 1 2 3 4 5 6 7 8\ncpuX 1 2 3 4 5 6 7 8\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseStat(strings.NewReader(tt.in)); !errors.Is(err, ErrFormat) {
				t.Errorf("ParseStat(%q) error = %v, want ErrFormat", tt.in, err)
			}
		})
	}
}

func TestStatSub(t *testing.T) {
	a, _ := ParseStat(strings.NewReader("cpu 10 0 20 30 0 0 5 0\ncpu0 10 0 20 30 0 0 5 0\n"))
	b, _ := ParseStat(strings.NewReader("cpu 15 0 26 40 1 0 9 0\ncpu0 15 0 26 40 1 0 9 0\n"))
	d := b.Sub(a)
	want := CPU{User: 5, System: 6, Idle: 10, IOWait: 1, SoftIRQ: 4}
	if diff := cmp.Diff(Stat{Total: want, PerCPU: []CPU{want}}, d); diff != "" {
		t.Errorf("Sub (-want +got):\n%s", diff)
	}
	if got := Duration(d.Total.Busy()); got != 150*time.Millisecond {
		t.Errorf("Duration(Busy) = %v, want 150ms", got)
	}
}

func TestParseProc(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		want Proc
	}{
		{"plain", "26714 (cat) R 26711 26711 20259 0 -1 4194304 100 0 0 0 7 3 0 0 20 0 1 0 212899 3133440 394", Proc{UTime: 7, STime: 3}},
		{"name with spaces and parens", "42 (a (b) c) S 1 1 1 0 -1 0 0 0 0 0 1234 5678 0 0 20 0 9 0 1 2 3", Proc{UTime: 1234, STime: 5678}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProc([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ParseProc = %+v, want %+v", got, tt.want)
			}
		})
	}
	for _, in := range []string{"", "1 (x", "1 (x) R 1 2", "1 (x) R 1 1 1 0 -1 0 0 0 0 0 a b"} {
		if _, err := ParseProc([]byte(in)); !errors.Is(err, ErrFormat) {
			t.Errorf("ParseProc(%q) error = %v, want ErrFormat", in, err)
		}
	}
}

func TestParseLoadAvg(t *testing.T) {
	got, err := ParseLoadAvg([]byte("0.17 1.04 0.94 2/91 21320\n"))
	if err != nil || got != 0.17 {
		t.Errorf("ParseLoadAvg = %v, %v; want 0.17", got, err)
	}
	if _, err := ParseLoadAvg([]byte("")); !errors.Is(err, ErrFormat) {
		t.Errorf("empty: error = %v, want ErrFormat", err)
	}
}

func TestReadLive(t *testing.T) {
	s, err := ReadStat()
	if err != nil {
		t.Fatalf("no /proc/stat: %v", err)
	}
	if s.Total.Busy()+s.Total.Idle == 0 || len(s.PerCPU) == 0 {
		t.Errorf("ReadStat = %+v: no time counted", s)
	}
	if _, err := LoadAvg(); err != nil {
		t.Error(err)
	}
}

func TestPIDsByComm(t *testing.T) {
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatalf("no /proc: %v", err)
	}
	pids, err := PIDsByComm(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pids, os.Getpid()) {
		t.Errorf("PIDsByComm(%q) = %v, lacks this process (%d)", b, pids, os.Getpid())
	}
	if SumProcs([]int{os.Getpid(), 1 << 30}) == 0 && testing.Short() {
		t.Log("no CPU time counted yet") // possible right after start
	}
}
