package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// fuzzMaxLine is the line limit FuzzDecodeRequest gives the server loop:
// small, so that the fuzzer reaches the too-large path with short inputs.
const fuzzMaxLine = 1024

// FuzzDecodeRequest feeds arbitrary bytes to the server's request path:
// decodeRequest on the whole input, then the input as a stream of lines
// through the loop a connection runs (converse). Nothing may panic; every
// input either decodes to a request that passes validate and survives an
// encode/decode round trip, or is refused with an error reply; every
// complete line gets exactly one reply (a too-long one gets EMSGSIZE and
// ends the conversation); only decoded requests reach the handler.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"op":"info"}`,
		`{"version":1,"op":"list","service":{"protocol":"tcp","addr":"192.168.150.100","port":80}}`,
		`{"version":1,"op":"add-service","service":{"protocol":"tcp","addr":"192.168.150.100","port":80,"scheduler":"sh","sched_flags":["sh-port"],"persistent":true,"timeout":300,"netmask":24}}`,
		`{"version":1,"op":"edit-dest","service":{"protocol":"udp","addr":"192.168.150.100","port":53},"dest":{"addr":"192.168.150.12","port":53,"weight":3,"set":["weight"]}}`,
		`{"version":1,"op":"batch","commands":[{"version":1,"op":"clear"},{"op":"set-timeouts","timeouts":{"tcp":900,"tcp_fin":120,"udp":300}}]}`,
		`{"version":1,"op":"batch","commands":[{"op":"list"}]}`,
		`{"version":2,"op":"list","new":1}`,
		`{"version":"1"}`,
		`{"version":1,"op":"list"}}`,
		`{"version":1,"op":"list"} {}`,
		`{"VERSION":1,"Op":"info"}`,
		`{"version":1,"op":"info"}` + "\n" + `{"version":1,"op":"conns"}` + "\n" + `[1,2]` + "\n",
		"\n\n{\n",
		`{"version":1,"op":"add-dest","dest":{"addr":"fe80::1%eth0","port":65535,"weight":-1}}`,
		`{"version":1,"op":"zero","service":{"addr":"1.2.3.4","dests":[{"addr":"5.6.7.8"}],"stats":{"conns":18446744073709551615}}}`,
		`{"version":1,"op":"add-dest","service":{"protocol":"tcp","addr":"192.168.150.100","port":80,"on_failure":"remove"},"dest":{"addr":"192.168.150.12","port":80,"check":{"kind":"http","interval_ms":200,"rise":2,"fall":3,"url":"/","status":200,"digest":"00","cmd":["/bin/true"]}}}`,
		`null`, `[]`, `"x"`, "{\"version\":1,\"op\":\"info\",\"service\":{\"scheduler\":\"\xff\"}}",
	} {
		f.Add([]byte(s))
	}
	f.Add(append(append([]byte(`{"version":1,"op":"clear","service":{"scheduler":"`), bytes.Repeat([]byte("x"), fuzzMaxLine)...), []byte(`"}}`+"\n"+`{"version":1,"op":"info"}`+"\n")...))

	opts := cmp.Options{cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })}
	f.Fuzz(func(t *testing.T, data []byte) {
		// One line, as the server decodes it.
		req, e := decodeRequest(data)
		switch {
		case (req == nil) == (e == nil):
			t.Fatalf("decodeRequest returned %v and %v", req, e)
		case e != nil:
			if e.Code != CodeInvalid && e.Code != CodeVersion || e.Message == "" || e.Index < -1 {
				t.Fatalf("error %+v", e)
			}
		default:
			if req.Version != Version {
				t.Fatalf("accepted version %d", req.Version)
			}
			if e := req.validate(); e != nil {
				t.Fatalf("accepted an invalid request: %v", e)
			}
			b, err := json.Marshal(req)
			if err != nil {
				t.Fatalf("re-encoding %+v: %v", req, err)
			}
			again, e := decodeRequest(b)
			if e != nil {
				t.Fatalf("re-encoded request %s refused: %v", b, e)
			}
			if diff := cmp.Diff(req, again, opts); diff != "" {
				t.Fatalf("round trip (-first +second):\n%s", diff)
			}
		}

		// A stream of lines through a connection's loop.
		s := &Server{}
		s.setDefaults()
		var handled []*Request
		h := HandlerFunc(func(r *Request) *Reply {
			if e := r.validate(); e != nil || r.Version != Version {
				t.Fatalf("the handler got an invalid request %+v: %v", r, e)
			}
			handled = append(handled, r)
			return &Reply{}
		})
		var out bytes.Buffer
		// A small buffer, so that lines span several reads.
		s.converse(bufio.NewReaderSize(bytes.NewReader(data), 16), &out, h, fuzzMaxLine, nil)

		// What the server must answer: one reply per complete line,
		// and EMSGSIZE (ending the conversation) for the first line,
		// complete or not, longer than the limit. nil stands for a
		// request the handler gets.
		segs := bytes.Split(data, []byte("\n"))
		var want []*Error
		for i, line := range segs {
			if len(line) > fuzzMaxLine {
				want = append(want, &Error{Code: CodeTooLarge})
				break
			}
			if i == len(segs)-1 {
				break // unterminated: never answered
			}
			_, e := decodeRequest(line)
			want = append(want, e)
		}
		replies := bytes.Split(out.Bytes(), []byte("\n"))
		if len(replies[len(replies)-1]) != 0 {
			t.Fatalf("output does not end with a newline: %q", out.Bytes())
		}
		replies = replies[:len(replies)-1]
		if len(replies) != len(want) {
			t.Fatalf("%d replies, want %d", len(replies), len(want))
		}
		nh := 0
		for i, w := range want {
			var rep Reply
			if err := json.Unmarshal(replies[i], &rep); err != nil || rep.Version != Version {
				t.Fatalf("reply %d %q: %v", i, replies[i], err)
			}
			switch {
			case w == nil && rep.Error == nil:
				nh++
			case w != nil && w.Code == CodeTooLarge && rep.Error != nil && rep.Error.Code == CodeTooLarge:
			case w == nil || rep.Error == nil || *w != *rep.Error:
				t.Fatalf("reply %d: error %+v, want %+v", i, rep.Error, w)
			}
		}
		if nh != len(handled) {
			t.Fatalf("%d requests reached the handler, %d were valid", len(handled), nh)
		}
	})
}
