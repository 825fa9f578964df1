//go:build !linux

package afpacket

import "time"

// Fanout is PACKET_FANOUT (Linux only).
type Fanout struct {
	ID     uint16
	Mode   FanoutMode
	Defrag bool
}

// FanoutMode is a PACKET_FANOUT mode (Linux only).
type FanoutMode int

// Fanout modes.
const (
	_ FanoutMode = iota
	FanoutHash
	FanoutLB
	FanoutCPU
	FanoutQueue
)

// RXConfig configures OpenRX (Linux only).
type RXConfig struct {
	FrameSize, FrameCount int
	Fanout                *Fanout
	Version               Version
	BlockSize, BlockCount int
	RetireTimeout         time.Duration
}

// TXConfig configures OpenTX (Linux only).
type TXConfig struct {
	FrameSize, FrameCount int
	QdiscBypass           bool
	FullWait              time.Duration
	DirectMin             int
}

// DefaultFullWait: see the Linux documentation.
const DefaultFullWait = time.Millisecond

// Frame is one received frame (Linux only).
type Frame struct {
	Data              []byte
	Len               int
	VNet              VNetHdr
	PktType           uint8
	Status            uint32
	VLANTCI, VLANTPID uint16
}

// RX is a receive ring (Linux only).
type RX struct{}

// OpenRX returns ErrNotSupported.
func OpenRX(ifindex int, cfg *RXConfig) (*RX, error) { return nil, ErrNotSupported }

func (r *RX) Layout() Layout                            { return Layout{} }
func (r *RX) Version() Version                          { return V2 }
func (r *RX) Receive(frames []Frame) (int, error)       { return 0, ErrNotSupported }
func (r *RX) Release()                                  {}
func (r *RX) Stats() (packets, drops uint64, err error) { return 0, 0, ErrNotSupported }
func (r *RX) Close() error                              { return nil }
func (r *RX) SetFilter(prog []Instruction) error        { return ErrNotSupported }

// TX is a transmit ring (Linux only).
type TX struct{}

// OpenTX returns ErrNotSupported.
func OpenTX(ifindex int, cfg *TXConfig) (*TX, error) { return nil, ErrNotSupported }

func (t *TX) Layout() Layout                             { return Layout{} }
func (t *TX) MaxFrame() int                              { return 0 }
func (t *TX) Slot() (vnet *VNetHdr, buf []byte, ok bool) { return nil, nil, false }
func (t *TX) Commit(n int)                               { panic("afpacket: not supported") }
func (t *TX) Flush() error                               { return ErrNotSupported }
func (t *TX) Pending() bool                              { return false }
func (t *TX) Drops() uint64                              { return 0 }
func (t *TX) Close() error                               { return nil }
func (t *TX) DirectMin() int                             { return 0 }
func (t *TX) SendDirect(vnet *VNetHdr, frame []byte) error {
	return ErrNotSupported
}
