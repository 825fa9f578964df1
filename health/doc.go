// Package health probes real servers and decides whether each is up or
// down: gvs's built-in version of what keepalived does for IPVS.
//
// A Spec describes one real server's check: its kind (TCP connect, HTTP
// GET, UDP request and reply, or a command), how often it runs
// (Interval), how long one probe may take (Timeout), and how many
// consecutive results change the verdict: Fall consecutive failures take
// an up server down, Rise consecutive successes bring a down server up
// (State follows these rules and nothing else). A server starts up, as
// keepalived's servers do without "alpha": adding a check never
// interrupts traffic; a dead server is taken down after Fall probes.
//
// A Monitor runs the checks, one goroutine per server, and reports every
// probe result and every transition as an Event, in one order with
// increasing sequence numbers, to a callback the daemon uses to change
// the service table and to log. The package knows nothing of services:
// the daemon keys checks by whatever identifies a real server for it.
//
// Probes run in the process's network namespace (gvs runs in the
// director's), through an injectable Dialer and command runner, and wait
// between probes on an injectable Clock, so that unit tests drive
// checks without the network or the wall clock.
//
// What each kind checks:
//
//   - TCP: a connection to the port is accepted within the timeout (then
//     closed).
//   - HTTP: a GET of the URL's path (HTTP/1.1, Host from the URL or the
//     server's address) answers the expected status (default 200) within
//     the timeout and, with a digest, a body whose MD5 (32 hex digits, as
//     keepalived's genhash prints it) or SHA-256 (64 hex digits) is the
//     digest. At most MaxBody bytes of body are read.
//   - UDP: the payload is sent and some datagram comes back within the
//     timeout. A reply is required: silence proves nothing (a dead host is
//     silent too, and ICMP errors may be filtered), so a server that never
//     answers needs a command check. An ICMP port-unreachable fails the
//     probe at once.
//   - Command: the program (an absolute path, run directly, without a
//     shell) exits 0 within the timeout. It gets GVS_REAL_ADDR,
//     GVS_REAL_PORT and GVS_SERVICE in its environment; at the timeout its
//     whole process group is killed.
package health
