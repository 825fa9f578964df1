package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
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

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(*Request) *Reply

// Handle calls f.
func (f HandlerFunc) Handle(r *Request) *Reply { return f(r) }

// Peer is the identity of a connected client, from SO_PEERCRED.
type Peer struct {
	PID      int32
	UID, GID uint32
}

// ServerConfig configures a Server. A nil *ServerConfig means the defaults.
type ServerConfig struct {
	// Authorize decides whether a peer may use the socket. The default
	// admits root and the daemon's own user.
	Authorize func(Peer) error
	// IdleTimeout closes a connection that sends nothing for this long
	// (default 5 minutes).
	IdleTimeout time.Duration
	// Logf logs refused peers and malformed messages (optional).
	Logf func(format string, args ...any)
}

// Server serves the control socket.
type Server struct {
	ln   *net.UnixListener
	path string
	cfg  ServerConfig

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// ErrInUse is returned by Listen when another process serves the socket.
var ErrInUse = errors.New("socket is in use by another process")

// Listen creates the socket at path, mode 0600. A stale socket file (left
// by a process that died) is replaced; a live one is not (ErrInUse).
func Listen(path string, cfg *ServerConfig) (*Server, error) {
	s := &Server{path: path, conns: map[net.Conn]struct{}{}}
	if cfg != nil {
		s.cfg = *cfg
	}
	if s.cfg.Authorize == nil {
		s.cfg.Authorize = defaultAuthorize
	}
	if s.cfg.IdleTimeout == 0 {
		s.cfg.IdleTimeout = 5 * time.Minute
	}
	if s.cfg.Logf == nil {
		s.cfg.Logf = func(string, ...any) {}
	}
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
	// the start, so there is no window in which it is open to them.
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	s.ln = ln
	return s, nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

func defaultAuthorize(p Peer) error {
	if p.UID == 0 || p.UID == uint32(os.Getuid()) {
		return nil
	}
	return fmt.Errorf("permission denied: uid %d may not use the gvs control socket (only root)", p.UID)
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

func peerOf(c *net.UnixConn) (Peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return Peer{}, err
	}
	if cerr != nil {
		return Peer{}, cerr
	}
	return Peer{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid}, nil
}

func (s *Server) serveConn(c *net.UnixConn, h Handler) {
	peer, err := peerOf(c)
	if err == nil {
		err = s.cfg.Authorize(peer)
	}
	r := bufio.NewReaderSize(c, 64<<10)
	if err != nil {
		s.cfg.Logf("control: refused peer pid %d uid %d: %v", peer.PID, peer.UID, err)
		// Read (and ignore) the first request before answering, so that
		// the client is not cut off while it is still writing it.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		readLine(r, MaxMessageSize)
		writeReply(c, &Reply{Version: Version, Error: &Error{Code: CodePermission, Message: err.Error(), Index: -1}})
		return
	}
	for {
		c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		line, err := readLine(r, MaxMessageSize)
		if err != nil {
			if errors.Is(err, errTooLarge) {
				writeReply(c, errReply(CodeTooLarge, fmt.Sprintf("request larger than %d bytes", MaxMessageSize)))
			}
			return
		}
		reply := s.handleLine(line, h)
		reply.Version = Version
		if err := writeReply(c, reply); err != nil {
			return
		}
	}
}

func errReply(code, msg string) *Reply {
	return &Reply{Version: Version, Error: &Error{Code: code, Message: msg, Index: -1}}
}

// handleLine decodes and checks one request and passes it on.
func (s *Server) handleLine(line []byte, h Handler) (reply *Reply) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.cfg.Logf("control: malformed request: %v", err)
		return errReply(CodeInvalid, fmt.Sprintf("malformed request: %v", err))
	}
	if dec.More() {
		return errReply(CodeInvalid, "malformed request: data after the JSON object")
	}
	if req.Version != Version {
		return errReply(CodeVersion, fmt.Sprintf("protocol version %d not supported (gvs speaks version %d)", req.Version, Version))
	}
	defer func() {
		// A bug in a handler must not take the daemon down with it.
		if p := recover(); p != nil {
			s.cfg.Logf("control: internal error handling %s: %v", req.Op, p)
			reply = errReply(CodeInternal, fmt.Sprintf("internal error: %v", p))
		}
	}()
	reply = h.Handle(&req)
	if reply == nil {
		reply = &Reply{}
	}
	return reply
}

var errTooLarge = errors.New("message too large")

// readLine reads one '\n'-terminated line of at most max bytes (without
// the newline).
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max+1 {
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
