package conntrack

// PeekTemplate finds the live persistence template tk without restarting
// its timeout (Template does restart it), for a trace explaining why a
// connection went where it did. A template past its timeout counts as
// live while it controls connections, as Template has it.
func (t *Table[D]) PeekTemplate(tk *Key, now int64) (dest D, ok bool) {
	s, h := t.locate(tk)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m.get(tk, h)
	if e == nil || e.flags&flagTemplate == 0 || (e.expires <= now && e.nControl.Load() == 0) {
		return dest, false
	}
	return e.dest, true
}
