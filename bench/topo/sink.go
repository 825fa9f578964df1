package topo

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// How the sinks drop what they receive.
const (
	// SinkDropIngress: an nftables netdev ingress rule on the sink's eth0
	// drops every IPv4 frame before the IP layer sees it; ARP passes, so
	// the sinks still answer gvs's ARP requests for the real servers.
	SinkDropIngress = "nftables netdev ingress drop of IPv4 on the sinks' eth0"
	// SinkDropStack: without nf_tables, the sink's IP stack drops the
	// frame: a frame to the sink's own address reaches UDP, finds no
	// socket on port 9 and is dropped (its ICMP port unreachable is rate
	// limited to about one a second); a frame to the VIP, which the sink
	// does not hold and does not forward, is dropped by routing (ip_error,
	// silently). Both cost the sink far more than the ingress drop.
	SinkDropStack = "the sinks' IP stack (no UDP socket on port 9, or no route)"
)

// sinkTable is the sinks' netdev table.
const sinkTable = "gvsbench_sink"

// regScratch is NFT_REG32_00, the first 32-bit data register.
const regScratch = 8

// sinkDrop installs, in the calling thread's network namespace,
//
//	table netdev gvsbench_sink {
//		chain in { type filter hook ingress device IFACE priority 0; policy accept; meta protocol ip drop; }
//	}
//
// A frame dropped there has been counted by the interface (rx_packets)
// and costs the sink almost nothing else.
func sinkDrop(iface string) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	table := c.AddTable(&nftables.Table{Name: sinkTable, Family: nftables.TableFamilyNetdev})
	accept := nftables.ChainPolicyAccept
	chain := c.AddChain(&nftables.Chain{
		Name:     "in",
		Table:    table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookIngress,
		Priority: nftables.ChainPriorityRef(0),
		Policy:   &accept,
		Device:   iface,
	})
	c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: regScratch},
		&expr.Cmp{Op: expr.CmpOpEq, Register: regScratch, Data: []byte{0x08, 0x00}}, // ETH_P_IP, network order
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("netdev ingress table on %s: %w", iface, err)
	}
	return nil
}
