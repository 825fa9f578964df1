package conntrack

import "time"

// State is a connection state. The TCP states and their numbers are
// IPVS's (IP_VS_TCP_S_*, include/uapi/linux/ip_vs.h); UDP connections have
// the single state StateUDP, which ipvsadm lists as "UDP".
type State uint8

const (
	StateNone        State = iota // NONE: entry created, no packet seen yet
	StateEstablished              // ESTABLISHED
	StateSynSent                  // SYN_SENT
	StateSynRecv                  // SYN_RECV
	StateFinWait                  // FIN_WAIT
	StateTimeWait                 // TIME_WAIT
	StateClose                    // CLOSE
	StateCloseWait                // CLOSE_WAIT
	StateLastAck                  // LAST_ACK
	StateListen                   // LISTEN
	StateSynAck                   // SYNACK
	numTCPStates

	// StateUDP is the state of every UDP connection (IP_VS_UDP_S_NORMAL).
	StateUDP State = 16
)

var stateNames = [...]string{
	StateNone:        "NONE",
	StateEstablished: "ESTABLISHED",
	StateSynSent:     "SYN_SENT",
	StateSynRecv:     "SYN_RECV",
	StateFinWait:     "FIN_WAIT",
	StateTimeWait:    "TIME_WAIT",
	StateClose:       "CLOSE",
	StateCloseWait:   "CLOSE_WAIT",
	StateLastAck:     "LAST_ACK",
	StateListen:      "LISTEN",
	StateSynAck:      "SYNACK",
}

// String returns the state's name as ipvsadm -Lc prints it.
func (s State) String() string {
	if s == StateUDP {
		return "UDP"
	}
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "ERR!"
}

// Active reports whether a connection in this state counts as active for
// its real server (tcp_state_active_table in ip_vs_proto_tcp.c): the
// half-open and established states. UDP connections are never active.
func (s State) Active() bool {
	switch s {
	case StateEstablished, StateSynSent, StateSynRecv, StateSynAck:
		return true
	}
	return false
}

// Direction is the direction of a packet relative to its connection.
type Direction uint8

const (
	// Input is a packet from the client (IP_VS_DIR_INPUT).
	Input Direction = iota
	// Output is a packet from the real server, seen only in NAT modes
	// (IP_VS_DIR_OUTPUT).
	Output
)

// Rows of the state tables, by the packet's most important flag
// (tcp_state_idx: RST first, then SYN, FIN, ACK).
const (
	rowSYN = iota
	rowFIN
	rowACK
	rowRST
	numRows
)

// tcpRow returns the state-table row for a TCP flags byte, or -1 when the
// packet has none of SYN, FIN, ACK, RST (the state then becomes CLOSE, as
// set_tcp_state does).
func tcpRow(flags uint8) int {
	switch {
	case flags&0x04 != 0: // RST
		return rowRST
	case flags&0x02 != 0: // SYN
		return rowSYN
	case flags&0x01 != 0: // FIN
		return rowFIN
	case flags&0x10 != 0: // ACK
		return rowACK
	}
	return -1
}

// Short names to draw the tables as the kernel does.
const (
	sNO = StateNone
	sES = StateEstablished
	sSS = StateSynSent
	sSR = StateSynRecv
	sFW = StateFinWait
	sTW = StateTimeWait
	sCL = StateClose
	sCW = StateCloseWait
	sLA = StateLastAck
	sLI = StateListen
	sSA = StateSynAck
)

// Table selects one of the three state tables of ip_vs_proto_tcp.c.
type table uint8

const (
	tableInput     table = iota // NAT, packets from the client
	tableOutput                 // NAT, packets from the real server
	tableInputOnly              // DR and TUN: only the client's packets are seen
)

// tcpStates is tcp_states[] of net/netfilter/ipvs/ip_vs_proto_tcp.c
// (Linux 6.x), indexed [table][row][current state] -> next state.
var tcpStates = [3][numRows][numTCPStates]State{
	tableInput: {
		//         sNO, sES, sSS, sSR, sFW, sTW, sCL, sCW, sLA, sLI, sSA
		rowSYN: {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR},
		rowFIN: {sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW},
		rowACK: {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
		rowRST: {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR},
	},
	tableOutput: {
		rowSYN: {sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR},
		rowFIN: {sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW},
		rowACK: {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES},
		rowRST: {sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL},
	},
	tableInputOnly: {
		rowSYN: {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR},
		rowFIN: {sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW},
		rowACK: {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
		rowRST: {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL},
	},
}

// nextTCPState returns the state after a packet with the given flags, as
// set_tcp_state computes it.
func nextTCPState(t table, cur State, flags uint8) State {
	row := tcpRow(flags)
	if row < 0 || cur >= numTCPStates {
		return StateClose
	}
	return tcpStates[t][row][cur]
}

// Timeouts are the idle timeouts of connection states.
type Timeouts struct {
	TCP [numTCPStates]time.Duration
	UDP time.Duration
}

// DefaultTimeouts are IPVS's defaults (tcp_timeouts[] in ip_vs_proto_tcp.c
// and udp_timeouts[] in ip_vs_proto_udp.c).
func DefaultTimeouts() Timeouts {
	return Timeouts{
		TCP: [numTCPStates]time.Duration{
			StateNone:        2 * time.Second,
			StateEstablished: 15 * time.Minute,
			StateSynSent:     2 * time.Minute,
			StateSynRecv:     1 * time.Minute,
			StateFinWait:     2 * time.Minute,
			StateTimeWait:    2 * time.Minute,
			StateClose:       10 * time.Second,
			StateCloseWait:   60 * time.Second,
			StateLastAck:     30 * time.Second,
			StateListen:      2 * time.Minute,
			StateSynAck:      120 * time.Second,
		},
		UDP: 5 * time.Minute,
	}
}

// timeout returns the timeout of a state.
func (ts *Timeouts) timeout(s State) time.Duration {
	if s == StateUDP {
		return ts.UDP
	}
	if s < numTCPStates {
		return ts.TCP[s]
	}
	return ts.TCP[StateClose]
}

// newConnTimeout is the timeout of a fresh entry before its first state
// transition (ip_vs_conn_new sets cp->timeout = 3*HZ).
const newConnTimeout = 3 * time.Second
