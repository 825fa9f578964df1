package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// Client is a connection to the gvs daemon. It is not safe for concurrent
// use; open one per goroutine.
type Client struct {
	c    net.Conn
	r    *bufio.Reader
	path string
}

// Dial connects to the daemon's control socket.
func Dial(path string) (*Client, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		// The error users see when gvs is not up: name the socket and
		// say what to do.
		reason := err.Error()
		var errno syscall.Errno
		if errors.As(err, &errno) {
			reason = errno.Error()
			if errno == syscall.EACCES || errno == syscall.EPERM {
				// The file mode refused us: say who may connect.
				return nil, fmt.Errorf("cannot reach gvs at %s: %s (you must be root, or a member of the socket's group: gvs --socket-group)", path, reason)
			}
		}
		return nil, fmt.Errorf("cannot reach gvs at %s: %s (is gvs running? set GVS_SOCKET)", path, reason)
	}
	return &Client{c: c, r: bufio.NewReaderSize(c, 64<<10), path: path}, nil
}

// Do sends one request and returns the daemon's reply. The error is about
// the exchange itself; a request the daemon refuses comes back as a Reply
// whose Error is set.
func (cl *Client) Do(req *Request) (*Reply, error) {
	req.Version = Version
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("request of %d bytes is larger than the %d the protocol allows", len(b), MaxMessageSize)
	}
	// Bound the exchange: a restore of a large file takes a while, a hung
	// daemon should not hang gvsadm forever.
	cl.c.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, werr := cl.c.Write(append(b, '\n')); werr != nil {
		// gvs may have answered before it closed the connection (a
		// busy server refuses a connection with a reply, unasked):
		// that answer says more than the broken pipe.
		if line, err := readLine(cl.r, MaxMessageSize); err == nil {
			var reply Reply
			if json.Unmarshal(line, &reply) == nil && reply.Error != nil {
				return &reply, nil
			}
		}
		return nil, fmt.Errorf("sending to gvs at %s: %w", cl.path, werr)
	}
	line, err := readLine(cl.r, MaxMessageSize)
	if err != nil {
		return nil, fmt.Errorf("reading the reply of gvs at %s: %w", cl.path, err)
	}
	var reply Reply
	if err := json.Unmarshal(line, &reply); err != nil {
		return nil, fmt.Errorf("malformed reply from gvs: %w", err)
	}
	return &reply, nil
}

// Close closes the connection.
func (cl *Client) Close() error { return cl.c.Close() }
