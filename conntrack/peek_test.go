package conntrack

import (
	"testing"
	"time"
)

// TestPeekTemplate: PeekTemplate sees a live template and leaves its
// timer alone, so a template only peeked at still expires.
func TestPeekTemplate(t *testing.T) {
	tab := New[*dest](nil)
	d := &dest{}
	now := int64(time.Hour)
	tk := KeyV4(6, [4]byte{192, 168, 150, 10}, 0, [4]byte{192, 168, 150, 100}, 80)
	const persist = 360 * time.Second
	if _, ok := tab.PeekTemplate(&tk, now); ok {
		t.Fatal("template before any")
	}
	if _, err := tab.InsertTemplate(&tk, d, persist, now); err != nil {
		t.Fatal(err)
	}
	k := key(40000)
	if _, ok := tab.PeekTemplate(&k, now); ok {
		t.Fatal("a connection key peeked as a template")
	}
	almost := now + int64(persist) - 1
	if got, ok := tab.PeekTemplate(&tk, almost); !ok || got != d {
		t.Fatal("live template not seen")
	}
	// Peeking did not restart the timer (Template would have).
	if _, ok := tab.PeekTemplate(&tk, now+int64(persist)); ok {
		t.Fatal("template seen past its timeout: peeking restarted it")
	}
	if _, _, ok := tab.Template(&tk, persist, now+int64(persist)); ok {
		t.Fatal("template alive past its timeout")
	}
}
