//go:build !linux

package arp

import "net"

// New is only implemented on Linux (AF_PACKET sockets).
func New(ifaces []*net.Interface, cfg *Config) (*Resolver, error) {
	return nil, ErrNotSupported
}
