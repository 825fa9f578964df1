package control

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestDocCoversProtocol keeps doc.go, the protocol reference, in step with
// message.go: every op, every field of every message object, and every
// error code must be in its tables.
func TestDocCoversProtocol(t *testing.T) {
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	// Words of the indented (table and example) lines, and the first
	// word of each.
	words, first := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		l, ok := strings.CutPrefix(l, "//\t")
		if !ok {
			continue
		}
		f := strings.FieldsFunc(l, func(r rune) bool { return strings.ContainsRune(" ,\t\"(){}[]:", r) })
		if len(f) > 0 {
			first[f[0]] = true
		}
		for _, w := range f {
			words[w] = true
		}
	}
	for op := range knownOps {
		if !first[string(op)] {
			t.Errorf("op %q is not in doc.go's table of ops", op)
		}
	}
	for _, v := range []any{Request{}, Reply{}, Service{}, Dest{}, Stats{}, Conn{}, Timeouts{}, Info{}, Error{}, Check{}, Health{}} {
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if !words[name] {
				t.Errorf("field %s.%s (%q) is not in doc.go", typ.Name(), typ.Field(i).Name, name)
			}
		}
	}
	for _, code := range []string{CodeExists, CodeNoService, CodeNoDest, CodeInvalid, CodeNotSupported,
		CodePermission, CodeVersion, CodeTooLarge, CodeInternal, CodeRange, CodeRefused} {
		if !first[code] {
			t.Errorf("error code %s is not in doc.go's table of codes", code)
		}
	}
	for _, fwd := range []string{FwdRoute, FwdMasq, FwdTunnel, FwdFullNat, TCP, UDP,
		CheckTCP, CheckHTTP, CheckUDP, CheckCmd, CheckNone} {
		if !words[fwd] {
			t.Errorf("%q is not in doc.go", fwd)
		}
	}
}
