//go:build !linux

package ingress

import "fmt"

// Filter is the netdev table gvs owns. Only Linux has one.
type Filter struct{}

// Open always fails with ErrNotSupported: nf_tables exists only on Linux.
func Open(ifaces []string, cfg *Config) (*Filter, error) {
	return nil, fmt.Errorf("ingress: %w (not Linux)", ErrNotSupported)
}

// Set validates rules and then fails: there is no filter off Linux.
func (f *Filter) Set(rules []Rule) error {
	if _, _, err := keys(rules); err != nil {
		return err
	}
	return fmt.Errorf("ingress: %w (not Linux)", ErrNotSupported)
}

// Rules returns nil.
func (f *Filter) Rules() []Rule { return nil }

// Interfaces returns nil.
func (f *Filter) Interfaces() []string { return nil }

// Table returns "".
func (f *Filter) Table() string { return "" }

// Dropped fails with ErrNotSupported.
func (f *Filter) Dropped() (map[string]uint64, error) {
	return nil, fmt.Errorf("ingress: %w (not Linux)", ErrNotSupported)
}

// Close does nothing.
func (f *Filter) Close() error { return nil }
