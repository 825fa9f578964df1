package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultSocket is where gvs listens and gvsadm connects by default.
const DefaultSocket = "/run/gvs.sock"

// SocketPath returns the socket path to use: flag if not empty, else
// $GVS_SOCKET, else DefaultSocket.
func SocketPath(flag string) string {
	if flag != "" {
		return flag
	}
	if p := os.Getenv("GVS_SOCKET"); p != "" {
		return p
	}
	return DefaultSocket
}

// Handler answers requests. It is called from one goroutine per client
// connection, so it must be safe for concurrent use.
type Handler interface {
	Handle(req *Request) *Reply
}

// PeerHandler is a Handler that is told who sent each request: the
// server calls HandlePeer instead of Handle when its handler has it.
type PeerHandler interface {
	Handler
	HandlePeer(p Peer, req *Request) *Reply
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(*Request) *Reply

// Handle calls f.
func (f HandlerFunc) Handle(r *Request) *Reply { return f(r) }

// Peer is the identity of a connected client, as the kernel recorded it
// when the client connected: its process id, user id and primary group
// (SO_PEERCRED) and its supplementary groups (SO_PEERGROUPS).
type Peer struct {
	PID      int32
	UID, GID uint32
	// Groups are the peer's supplementary group ids. They may or may not
	// include GID. Nil when the kernel cannot tell (SO_PEERGROUPS needs
	// Linux 4.13): the peer is then judged by UID and GID only.
	Groups []uint32
}

// InGroup reports whether gid is the peer's primary group or one of its
// supplementary groups.
func (p Peer) InGroup(gid uint32) bool {
	return p.GID == gid || slices.Contains(p.Groups, gid)
}

// ServerConfig configures a Server. A nil *ServerConfig means the defaults.
type ServerConfig struct {
	// Group, if not empty, opens the socket to a group (gvs
	// --socket-group): a group name, or a numeric gid (which needs no
	// entry in the group database). The socket file then gets mode 0660
	// and that group, and the default Authorize also admits every peer
	// whose primary or supplementary groups include it. Listen fails if
	// the group is unknown or the socket cannot be given to it.
	Group string
	// Authorize decides whether a peer may use the socket. The default
	// admits root, the daemon's own user, and members of Group. A
	// custom Authorize replaces that check entirely (the file mode and
	// group still follow Group).
	Authorize func(Peer) error
	// IdleTimeout closes a connection that sends nothing for this long
	// (default 5 minutes).
	IdleTimeout time.Duration
	// Logf logs refused peers and malformed messages (optional).
	Logf func(format string, args ...any)
	// MaxConns bounds the connections served at once (default
	// DefaultMaxConns); see limits.go.
	MaxConns int
}

// Server serves the control socket.
type Server struct {
	ln    *net.UnixListener
	path  string
	cfg   ServerConfig
	group *socketGroup // nil: no group

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup

	big      chan struct{} // permits to read a line longer than a connection's buffer (limits.go)
	busyMu   sync.Mutex
	busyLogs time.Time // when a refused connection was last logged
}

// ErrInUse is returned by Listen when another process serves the socket.
var ErrInUse = errors.New("socket is in use by another process")

// ErrUnknownGroup is returned (wrapped) by Listen when ServerConfig.Group
// is neither a known group name nor a numeric gid.
var ErrUnknownGroup = errors.New("unknown group")

// socketGroup is the group a socket is opened to.
type socketGroup struct {
	gid  uint32
	name string // as the group database names it; "" if it has no entry
}

// String names the group for messages: "gvs (gid 4343)", or "4343" for a
// gid without a name.
func (g *socketGroup) String() string {
	if g.name == "" {
		return strconv.FormatUint(uint64(g.gid), 10)
	}
	return fmt.Sprintf("%s (gid %d)", g.name, g.gid)
}

// lookupGroup resolves a group name or a numeric gid. A name is looked
// up first, as chown(1) does, so a group whose name is all digits still
// works by name.
func lookupGroup(s string) (*socketGroup, error) {
	if g, err := user.LookupGroup(s); err == nil {
		gid, err := strconv.ParseUint(g.Gid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("group %q has gid %q: %w", s, g.Gid, err)
		}
		return &socketGroup{gid: uint32(gid), name: g.Name}, nil
	}
	// A numeric gid: uint32, but not -1 ((gid_t)-1 means "no change" to
	// chown).
	gid, err := strconv.ParseUint(s, 10, 32)
	if err != nil || gid == 0xffffffff {
		return nil, fmt.Errorf("%w %q: neither a group name nor a numeric gid", ErrUnknownGroup, s)
	}
	g := &socketGroup{gid: uint32(gid)}
	if e, err := user.LookupGroupId(s); err == nil {
		g.name = e.Name
	}
	return g, nil
}

// Listen creates the socket at path: mode 0600, or 0660 with
// ServerConfig.Group as its group. A stale socket file (left by a process
// that died) is replaced; a live one is not (ErrInUse).
func Listen(path string, cfg *ServerConfig) (*Server, error) {
	s := &Server{path: path, conns: map[net.Conn]struct{}{}}
	if cfg != nil {
		s.cfg = *cfg
	}
	if s.cfg.Group != "" {
		g, err := lookupGroup(s.cfg.Group)
		if err != nil {
			return nil, fmt.Errorf("control socket: %w", err)
		}
		s.group = g
	}
	s.setDefaults()
	if _, err := os.Lstat(path); err == nil {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: %w", path, ErrInUse)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale control socket: %w", err)
		}
	}
	// Create the socket with no permissions for group and others from
	// the start, so there is no window in which it is open to them; the
	// group gets its rights only once the file is the group's.
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	mode := os.FileMode(0o600)
	if s.group != nil {
		// The owner stays the daemon's user (root); -1 keeps it.
		if err := os.Chown(path, -1, int(s.group.gid)); err != nil {
			ln.Close()
			return nil, fmt.Errorf("control socket: giving it to group %s: %w", s.group, err)
		}
		mode = 0o660
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	s.ln = ln
	return s, nil
}

// setDefaults fills in what the configuration left out.
func (s *Server) setDefaults() {
	if s.cfg.Authorize == nil {
		s.cfg.Authorize = s.defaultAuthorize
	}
	if s.cfg.IdleTimeout == 0 {
		s.cfg.IdleTimeout = 5 * time.Minute
	}
	if s.cfg.Logf == nil {
		s.cfg.Logf = func(string, ...any) {}
	}
	if s.cfg.MaxConns <= 0 {
		s.cfg.MaxConns = DefaultMaxConns
	}
	s.big = make(chan struct{}, bigLines)
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// defaultAuthorize admits root, the daemon's own user and, with a group,
// the group's members (primary or supplementary).
func (s *Server) defaultAuthorize(p Peer) error {
	if p.UID == 0 || p.UID == uint32(os.Getuid()) {
		return nil
	}
	if s.group == nil {
		return fmt.Errorf("permission denied: uid %d is not root, and the gvs control socket admits no group", p.UID)
	}
	if p.InGroup(s.group.gid) {
		return nil
	}
	return fmt.Errorf("permission denied: uid %d is neither root nor a member of group %s", p.UID, s.group)
}

// Serve accepts connections and answers their requests with h until Close.
// It returns nil after Close.
func (s *Server) Serve(h Handler) error {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			s.cfg.Logf("control: accept: %v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if len(s.conns) >= s.cfg.MaxConns {
			s.mu.Unlock()
			s.refuseBusy(c)
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c, h)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// Close stops accepting, closes open connections, waits for their handlers
// and removes the socket file.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// peerOf returns the credentials the kernel recorded for c's client
// when it connected. If only the supplementary groups cannot be read,
// the peer comes back without them and groupsErr says why: it is then
// judged by its uid and primary group alone, so it can lose access but
// never gain it.
func peerOf(c *net.UnixConn) (p Peer, groupsErr, err error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Peer{}, nil, err
	}
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		var cred *syscall.Ucred
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
		if cerr == nil {
			p = Peer{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid}
			p.Groups, groupsErr = peerGroups(int(fd))
		}
	}); err != nil {
		return Peer{}, nil, err
	}
	if cerr != nil {
		return Peer{}, nil, fmt.Errorf("SO_PEERCRED: %w", cerr)
	}
	if groupsErr != nil {
		p.Groups = nil
		return p, fmt.Errorf("SO_PEERGROUPS: %w", groupsErr), nil
	}
	return p, nil, nil
}

func (s *Server) serveConn(c *net.UnixConn, h Handler) {
	peer, gerr, err := peerOf(c)
	if err != nil {
		// No credentials at all: refuse rather than take the peer for
		// root.
		err = fmt.Errorf("permission denied: the peer's credentials are unknown: %v", err)
	} else {
		if gerr != nil {
			s.cfg.Logf("control: peer pid %d uid %d: %v", peer.PID, peer.UID, gerr)
		}
		err = s.cfg.Authorize(peer)
	}
	r := bufio.NewReaderSize(c, 64<<10)
	if err != nil {
		s.cfg.Logf("control: refused peer pid %d uid %d gid %d groups %v: %v", peer.PID, peer.UID, peer.GID, peer.Groups, err)
		// Read (and ignore) the first request before answering, so that
		// the client is not cut off while it is still writing it.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		readLine(r, MaxMessageSize)
		writeReply(c, errReply(CodePermission, err.Error()))
		return
	}
	if ph, ok := h.(PeerHandler); ok {
		h = HandlerFunc(func(req *Request) *Reply { return ph.HandlePeer(peer, req) })
	}
	s.converse(r, c, h, MaxMessageSize, func() { c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout)) })
}

// converse answers the requests read from r on w, one reply line per
// request line, until r ends or fails, a line is longer than maxLine
// (answered with CodeTooLarge), or a write fails. before, if not nil, runs
// before each read.
func (s *Server) converse(r *bufio.Reader, w io.Writer, h Handler, maxLine int, before func()) {
	for {
		if before != nil {
			before()
		}
		line, err := s.readRequest(r, maxLine)
		if err != nil {
			if errors.Is(err, errBusy) {
				writeReply(w, errReply(CodeBusy, err.Error()))
				return
			}
			if errors.Is(err, errTooLarge) {
				s.cfg.Logf("control: request larger than %d bytes", maxLine)
				writeReply(w, errReply(CodeTooLarge, fmt.Sprintf("request larger than %d bytes", maxLine)))
			}
			return
		}
		if err := writeReply(w, s.handleLine(line, h)); err != nil {
			return
		}
	}
}

func errReply(code, msg string) *Reply {
	return &Reply{Version: Version, Error: &Error{Code: code, Message: msg, Index: -1}}
}

// handleLine decodes and checks one request, passes it to h, and returns
// the reply to send.
func (s *Server) handleLine(line []byte, h Handler) (reply *Reply) {
	req, e := decodeRequest(line)
	if e != nil {
		s.cfg.Logf("control: refused request: %s", e.Message)
		return &Reply{Version: Version, Error: e}
	}
	defer func() {
		// A bug in a handler must not take the daemon down with it.
		if p := recover(); p != nil {
			s.cfg.Logf("control: internal error handling %s: %v", req.Op, p)
			reply = errReply(CodeInternal, fmt.Sprintf("internal error: %v", p))
		}
	}()
	reply = h.Handle(req)
	if reply == nil {
		reply = &Reply{}
	}
	reply.Version = Version
	return reply
}

// jsonSpace is the whitespace JSON allows around values (RFC 8259).
const jsonSpace = " \t\r\n"

// decodeRequest is the server's whole check of one request line (without
// its newline), before anything reaches the Handler: it returns the
// request, or the error to answer with. The line must hold exactly one
// JSON object; its version is checked first (so that a client of another
// version learns that, whatever else it sent), then the object is decoded
// strictly (no unknown fields) and its structure checked (validate).
func decodeRequest(line []byte) (*Request, *Error) {
	invalid := func(format string, args ...any) *Error {
		return &Error{Code: CodeInvalid, Message: "malformed request: " + fmt.Sprintf(format, args...), Index: -1}
	}
	body := strings.Trim(string(line), jsonSpace)
	if !strings.HasPrefix(body, "{") {
		return nil, invalid("not a JSON object")
	}
	var head struct {
		Version json.RawMessage `json:"version"`
	}
	if err := json.Unmarshal([]byte(body), &head); err != nil {
		return nil, invalid("%v", err)
	}
	switch v := string(head.Version); {
	case v == "" || v == "null":
		return nil, &Error{Code: CodeVersion, Index: -1,
			Message: fmt.Sprintf("the request carries no protocol version (gvs speaks version %d)", Version)}
	case v[0] != '-' && (v[0] < '0' || v[0] > '9'):
		return nil, invalid("the version is not a number")
	case v != strconv.Itoa(Version):
		return nil, &Error{Code: CodeVersion, Index: -1,
			Message: fmt.Sprintf("protocol version %.20s not supported (gvs speaks version %d)", v, Version)}
	}
	var req Request
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, invalid("%v", err)
	}
	if dec.InputOffset() != int64(len(body)) {
		// json.Unmarshal above refuses trailing data, so this is
		// only a safety net.
		return nil, invalid("data after the JSON object")
	}
	if e := req.validate(); e != nil {
		return nil, e
	}
	return &req, nil
}

var errTooLarge = errors.New("message too large")

// readLine reads one '\n'-terminated line of at most max bytes (not
// counting the newline). A line known to be longer, terminated or not, is
// errTooLarge as soon as that is known.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	return readLineGated(r, max, nil)
}

// readLineGated is readLine that calls big, if not nil, once a line turns
// out longer than r's buffer, before it reads on (limits.go); an error
// from big ends the read.
func readLineGated(r *bufio.Reader, max int, big func() error) ([]byte, error) {
	var line []byte
	for {
		if line != nil && big != nil {
			if err := big(); err != nil {
				return nil, err
			}
			big = nil
		}
		chunk, err := r.ReadSlice('\n')
		n := len(chunk)
		if err == nil {
			n-- // the newline
		}
		if len(line)+n > max {
			return nil, errTooLarge
		}
		line = append(line, chunk...)
		if err == nil {
			return line[:len(line)-1], nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) && len(line) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

func writeReply(w io.Writer, r *Reply) error {
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(errReply(CodeInternal, err.Error()))
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
