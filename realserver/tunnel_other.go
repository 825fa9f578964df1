//go:build !linux

package realserver

import "io"

// Tunnel decapsulates IPIP in user space; it exists only on Linux.
type Tunnel struct{}

// NewTunnel returns ErrNotSupported.
func NewTunnel(w io.Writer, cfg TunnelConfig) (*Tunnel, error) { return nil, ErrNotSupported }

// Name returns the TUN device's name.
func (t *Tunnel) Name() string { return "" }

// Stats returns the counters so far.
func (t *Tunnel) Stats() TunnelStats { return TunnelStats{} }

// Run returns ErrNotSupported.
func (t *Tunnel) Run() error { return ErrNotSupported }

// Close returns nil.
func (t *Tunnel) Close() error { return nil }

// UndoTunnel returns ErrNotSupported.
func UndoTunnel(w io.Writer, name string) error { return ErrNotSupported }
