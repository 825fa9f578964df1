package ingress

// Config tunes Open. A nil *Config means the defaults; the zero value of
// every field is its default.
type Config struct {
	// Table is the name of the nftables table (family netdev) the filter
	// owns. Default DefaultTable ("gvs"). Open deletes any netdev table of
	// this name, so two gvs instances in one network namespace need
	// different names.
	Table string

	// Logf, if set, receives one line per change the filter makes (Open,
	// Set, Close). It is never called per packet. It runs with the
	// Filter's lock held and must not call the Filter's methods.
	Logf func(format string, args ...any)
}

func (c *Config) table() string {
	if c == nil || c.Table == "" {
		return DefaultTable
	}
	return c.Table
}

func (c *Config) logf() func(string, ...any) {
	if c == nil || c.Logf == nil {
		return func(string, ...any) {}
	}
	return c.Logf
}
