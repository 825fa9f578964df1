package director

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gvs-project/gvs/control"
	"github.com/gvs-project/gvs/health"
)

func TestCheckSpec(t *testing.T) {
	for _, tc := range []struct {
		name     string
		op       control.Op
		dst      control.Dest
		wantKeep bool
		wantNil  bool
		wantErr  string
	}{
		{name: "add without a check", op: control.OpAddDest, wantNil: true},
		{name: "edit without a check keeps it", op: control.OpEditDest, wantNil: true, wantKeep: true},
		{name: "edit of the weight only keeps it", op: control.OpEditDest, dst: control.Dest{Set: []string{"weight"},
			Check: &control.Check{Kind: "tcp"}}, wantNil: true, wantKeep: true},
		{name: "edit removing it", op: control.OpEditDest, dst: control.Dest{Check: &control.Check{Kind: "none"}}, wantNil: true},
		{name: "set check without one", op: control.OpEditDest, dst: control.Dest{Set: []string{"check"}}, wantErr: "set names check"},
		{name: "delete ignores it", op: control.OpDelDest, dst: control.Dest{Check: &control.Check{Kind: "bad"}}, wantNil: true},
		{name: "unknown kind", op: control.OpAddDest, dst: control.Dest{Check: &control.Check{Kind: "icmp"}}, wantErr: `unknown check "icmp"`},
		{name: "bad fall", op: control.OpAddDest, dst: control.Dest{Check: &control.Check{Kind: "tcp", Fall: 4000000000}}, wantErr: "--check-fall 4000000000 is outside"},
		{name: "bad interval", op: control.OpAddDest, dst: control.Dest{Check: &control.Check{Kind: "tcp", IntervalMS: 1}}, wantErr: "--check-interval 1ms"},
		{name: "http", op: control.OpEditDest, dst: control.Dest{Set: []string{"check"}, Check: &control.Check{Kind: "http", IntervalMS: 200, Fall: 3, Rise: 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, keep, err := checkSpec(tc.op, &tc.dst)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || err.(*requestError).code != control.CodeInvalid {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || keep != tc.wantKeep || (spec == nil) != tc.wantNil {
				t.Fatalf("spec %+v keep %v err %v", spec, keep, err)
			}
		})
	}
	// A check goes to the protocol with its defaults filled in, and
	// comes back the same.
	spec, _, err := checkSpec(control.OpAddDest, &control.Dest{Check: &control.Check{Kind: "http", IntervalMS: 200, Digest: strings.Repeat("A", 64)}})
	if err != nil {
		t.Fatal(err)
	}
	c := controlCheck(spec)
	want := &control.Check{Kind: "http", IntervalMS: 200, TimeoutMS: 200, Rise: health.DefaultRise, Fall: health.DefaultFall,
		URL: "/", Status: 200, Digest: strings.Repeat("a", 64)}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	again, _, err := checkSpec(control.OpAddDest, &control.Dest{Check: c})
	if err != nil || !again.Equal(spec) || again.Timeout != 200*time.Millisecond {
		t.Fatalf("round trip: %+v %v", again, err)
	}
}

// TestCommandChecksNeedRoot: a peer that is neither root nor gvs's user
// may not configure a command check, alone or in a batch.
func TestCommandChecksNeedRoot(t *testing.T) {
	d := &Director{}
	svc := &control.Service{Protocol: "tcp"}
	cmd := control.Request{Op: control.OpAddDest, Service: svc, Dest: &control.Dest{Check: &control.Check{Kind: "cmd", Cmd: []string{"/bin/true"}}}}
	for _, tc := range []struct {
		req   *control.Request
		index int
	}{
		{&cmd, -1},
		{&control.Request{Op: control.OpBatch, Commands: []control.Request{{Op: control.OpClear}, cmd}}, 1},
	} {
		rep := d.HandlePeer(control.Peer{UID: 4242, GID: 4242}, tc.req)
		if rep.Error == nil || rep.Error.Code != control.CodeRefused || rep.Error.Index != tc.index ||
			!strings.Contains(rep.Error.Message, "uid 4242 may not configure command checks") {
			t.Fatalf("reply %+v", rep.Error)
		}
	}
}
