package ipvsadm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gvs-project/gvs/control"
)

// keyPaths lists the object keys of a JSON document in the order they
// first appear, as paths ("services[].dests[].port").
func keyPaths(t *testing.T, doc []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	var paths []string
	seen := map[string]bool{}
	var walk func(path string)
	walk = func(path string) {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		switch tok {
		case json.Delim('{'):
			for dec.More() {
				key, err := dec.Token()
				if err != nil {
					t.Fatal(err)
				}
				p := key.(string)
				if path != "" {
					p = path + "." + p
				}
				if !seen[p] {
					seen[p] = true
					paths = append(paths, p)
				}
				walk(p)
			}
			dec.Token() // '}'
		case json.Delim('['):
			for dec.More() {
				walk(path + "[]")
			}
			dec.Token() // ']'
		}
	}
	walk("")
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("more than one document (%v)", err)
	}
	return paths
}

// documentedPaths reads the field table of the package documentation.
func documentedPaths(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "(parse them as 64-bit integers, not as doubles):\n//\n")
	if !ok {
		t.Fatal("doc.go: no JSON field table")
	}
	table, _, _ = strings.Cut(table, "\n//\n")
	var paths []string
	for _, l := range strings.Split(table, "\n") {
		f := strings.Fields(strings.TrimPrefix(l, "//\t"))
		if len(f) == 0 || strings.HasPrefix(f[0], "(") {
			continue // a continuation line
		}
		paths = append(paths, f[0])
	}
	return paths
}

// TestJSONSchemaDocumented checks that the documented fields are exactly
// the document's, in its order.
func TestJSONSchemaDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("testdata", "json_conns.golden"))
	if err != nil {
		t.Fatal(err)
	}
	got := keyPaths(t, doc)
	want := documentedPaths(t)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("documented fields (-doc.go +json_conns.golden):\n%s", diff)
	}
	if len(got) < 60 {
		t.Errorf("only %d paths: the walk is broken", len(got))
	}
}

// TestJSONExactAndParsable checks that every counter survives exactly
// through a parser that reads 64-bit integers, for both ends of the
// range, and that each service and connection comes out.
func TestJSONExactAndParsable(t *testing.T) {
	g := newFakeGVS()
	g.services = []control.Service{{
		Protocol: control.UDP, Addr: addr("192.168.150.100"), Port: 53, Scheduler: "sh",
		SchedFlags: []string{"sh-port", "flag-3"},
		Stats:      control.Stats{Conns: math.MaxUint64, InPkts: 1 << 53, OutPkts: 1<<53 + 1, InBytes: 0, OutBytes: 123456789012345},
		Dests: []control.Dest{{Addr: addr("192.168.150.12"), Port: 53, Forward: control.FwdMasq, Weight: 65535,
			UThreshold: math.MaxInt32, Rates: control.Stats{InBytes: math.MaxUint64}}},
	}}
	g.conns = labConns()
	out, errOut, code := runWith(t, g, "", "-L", "-c", "--json", "--exact")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var doc struct {
		Schema   int `json:"schema"`
		Services []struct {
			Flags []string `json:"flags"`
			Stats struct {
				Conns    uint64 `json:"conns"`
				InPkts   uint64 `json:"in_pkts"`
				OutPkts  uint64 `json:"out_pkts"`
				InBytes  uint64 `json:"in_bytes"`
				OutBytes uint64 `json:"out_bytes"`
			} `json:"stats"`
			Dests []struct {
				Forward    string `json:"forward"`
				Weight     int32  `json:"weight"`
				UThreshold uint32 `json:"u_threshold"`
				Rates      struct {
					InBPS uint64 `json:"in_bps"`
				} `json:"rates"`
			} `json:"dests"`
		} `json:"services"`
		Connections []struct {
			Expires uint32 `json:"expires"`
		} `json:"connections"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Schema != JSONSchema || len(doc.Services) != 1 || len(doc.Connections) != len(g.conns) {
		t.Fatalf("document %+v", doc)
	}
	s := doc.Services[0]
	if s.Stats.Conns != math.MaxUint64 || s.Stats.InPkts != 1<<53 || s.Stats.OutPkts != 1<<53+1 || s.Stats.OutBytes != 123456789012345 {
		t.Errorf("stats %+v", s.Stats)
	}
	if !slices.Equal(s.Flags, []string{"sh-port", "flag-3"}) {
		t.Errorf("flags %q: every bit must be kept", s.Flags)
	}
	d := s.Dests[0]
	if d.Forward != "Masq" || d.Weight != 65535 || d.UThreshold != math.MaxInt32 || d.Rates.InBPS != math.MaxUint64 {
		t.Errorf("dest %+v", d)
	}
	if !strings.Contains(out, "18446744073709551615") {
		t.Error("2^64-1 is not written as an exact integer")
	}
}

// TestJSONErrors: a failure prints ipvsadm's message and status, and no
// partial document.
func TestJSONErrors(t *testing.T) {
	g := newFakeGVS()
	g.services = labTable()
	out, errOut, code := runWith(t, g, "", "-L", "--json", "-t", "192.168.150.100:81")
	if out != "" || errOut != "No such service\n" || code != ExitList {
		t.Errorf("missing service: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	d := replyDoer{&control.Reply{Version: control.Version, Error: &control.Error{Code: control.CodeInternal, Message: "boom", Index: -1}}}
	out, errOut, code = runWith(t, d, "", "-Lc", "--json")
	if out != "" || errOut != "boom\n" || code != ExitList {
		t.Errorf("daemon error: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Only the requests a listing needs, and none that changes anything.
	g = newFakeGVS()
	runWith(t, g, "", "-Lc", "--json")
	var ops []control.Op
	for _, r := range g.requests {
		ops = append(ops, r.Op)
	}
	if want := []control.Op{control.OpInfo, control.OpList, control.OpConns}; !slices.Equal(ops, want) {
		t.Errorf("requests %v, want %v", ops, want)
	}
}
