package ipvsadm

import (
	"encoding/json"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/gvs-project/gvs/control"
)

// JSONSchema is the schema version of the -L --json document (its
// "schema" field). It changes only when a field is removed, renamed or
// changes meaning; new fields may appear without a change. See the
// package documentation.
const JSONSchema = 1

// The types below are the document, in its field order; the package doc
// describes every field. They are unexported so that the document, not a
// Go API, is the contract.

type jsonList struct {
	Schema        int               `json:"schema"`
	Version       string            `json:"version"`
	IPVSVersion   string            `json:"ipvs_version"`
	ConnTableSize int               `json:"conn_table_size"`
	Services      []jsonService     `json:"services"`
	Connections   *[]jsonConnection `json:"connections,omitempty"` // only with -c
}

type jsonService struct {
	Protocol   string     `json:"protocol"`
	Address    string     `json:"address"`
	Port       uint16     `json:"port"`
	Scheduler  string     `json:"scheduler"`
	Flags      []string   `json:"flags"`
	Persistent bool       `json:"persistent"`
	Timeout    uint32     `json:"timeout"`
	Netmask    string     `json:"netmask"`
	OnePacket  bool       `json:"one_packet"`
	PE         string     `json:"pe"`
	Stats      jsonStats  `json:"stats"`
	Rates      jsonRates  `json:"rates"`
	Dests      []jsonDest `json:"dests"`
}

type jsonDest struct {
	Address       string    `json:"address"`
	Port          uint16    `json:"port"`
	Forward       string    `json:"forward"`
	Weight        int32     `json:"weight"`
	ActiveConns   uint32    `json:"active_conns"`
	InactiveConns uint32    `json:"inactive_conns"`
	PersistConns  uint32    `json:"persist_conns"`
	UThreshold    uint32    `json:"u_threshold"`
	LThreshold    uint32    `json:"l_threshold"`
	Stats         jsonStats `json:"stats"`
	Rates         jsonRates `json:"rates"`
}

// jsonStats are the --stats columns.
type jsonStats struct {
	Conns    uint64 `json:"conns"`
	InPkts   uint64 `json:"in_pkts"`
	OutPkts  uint64 `json:"out_pkts"`
	InBytes  uint64 `json:"in_bytes"`
	OutBytes uint64 `json:"out_bytes"`
}

// jsonRates are the --rate columns.
type jsonRates struct {
	CPS    uint64 `json:"cps"`
	InPPS  uint64 `json:"in_pps"`
	OutPPS uint64 `json:"out_pps"`
	InBPS  uint64 `json:"in_bps"`
	OutBPS uint64 `json:"out_bps"`
}

type jsonEndpoint struct {
	Address string `json:"address"`
	Port    uint16 `json:"port"`
}

type jsonConnection struct {
	Protocol    string       `json:"protocol"`
	Source      jsonEndpoint `json:"source"`
	Virtual     jsonEndpoint `json:"virtual"`
	Destination jsonEndpoint `json:"destination"`
	State       string       `json:"state"`
	Expires     uint32       `json:"expires"`
	Template    bool         `json:"template"`
}

func jsonAddr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().String()
}

func toJSONStats(s control.Stats) jsonStats {
	return jsonStats{Conns: s.Conns, InPkts: s.InPkts, OutPkts: s.OutPkts, InBytes: s.InBytes, OutBytes: s.OutBytes}
}

func toJSONRates(s control.Stats) jsonRates {
	return jsonRates{CPS: s.Conns, InPPS: s.InPkts, OutPPS: s.OutPkts, InBPS: s.InBytes, OutBPS: s.OutBytes}
}

func toJSONService(se *control.Service, f Format) jsonService {
	js := jsonService{
		Protocol:   protocolName(se.Protocol),
		Address:    jsonAddr(se.Addr),
		Port:       se.Port,
		Scheduler:  se.Scheduler,
		Flags:      []string{},
		Persistent: se.Persistent,
		Netmask:    dotted(netmaskWord(se.Netmask)),
		OnePacket:  se.OnePacket,
		PE:         se.PE,
		Stats:      toJSONStats(se.Stats),
		Rates:      toJSONRates(se.Rates),
		Dests:      []jsonDest{},
	}
	// As -S and -L name them for the scheduler, plus flag-3 wherever it
	// is set (the listings drop it for sh and mh; JSON keeps every bit).
	if names := schedFlagNames(se.Scheduler, schedFlagBits(se.SchedFlags)); names != nil {
		js.Flags = names
	}
	if se.Persistent {
		js.Timeout = se.Timeout
	}
	dests := se.Dests
	if f&FmtNoSort == 0 {
		dests = slices.Clone(dests)
		sortDests(dests)
	}
	for i := range dests {
		d := &dests[i]
		js.Dests = append(js.Dests, jsonDest{
			Address:       jsonAddr(d.Addr),
			Port:          d.Port,
			Forward:       fwdName(d.Forward),
			Weight:        d.Weight,
			ActiveConns:   d.ActiveConns,
			InactiveConns: d.InactiveConns,
			PersistConns:  d.PersistConns,
			UThreshold:    d.UThreshold,
			LThreshold:    d.LThreshold,
			Stats:         toJSONStats(d.Stats),
			Rates:         toJSONRates(d.Rates),
		})
	}
	return js
}

func toJSONEndpoint(ap netip.AddrPort) jsonEndpoint {
	return jsonEndpoint{Address: jsonAddr(ap.Addr()), Port: ap.Port()}
}

// WriteJSON writes the document of gvsadm -L --json (see the package documentation):
// the daemon's info (nil means the defaults), the services and their real
// servers (sorted as the listings sort them unless f has FmtNoSort), and,
// if withConns (-c), the connections in the order given. Addresses and
// numbers are always numeric and exact; no other Format flag matters.
// The slices are not modified.
func WriteJSON(out io.Writer, info *control.Info, services []control.Service, conns []control.Conn, withConns bool, f Format) error {
	doc := jsonList{Schema: JSONSchema, IPVSVersion: defaultIPVSVersion, Services: []jsonService{}}
	if info != nil {
		doc.Version = info.Version
		if info.IPVSVersion != "" {
			doc.IPVSVersion = info.IPVSVersion
		}
		doc.ConnTableSize = info.ConnTableSize
	}
	if f&FmtNoSort == 0 {
		services = slices.Clone(services)
		sortServices(services)
	}
	for i := range services {
		doc.Services = append(doc.Services, toJSONService(&services[i], f))
	}
	if withConns {
		cs := make([]jsonConnection, 0, len(conns))
		for i := range conns {
			c := &conns[i]
			cs = append(cs, jsonConnection{
				Protocol:    protocolName(strings.ToLower(c.Protocol)),
				Source:      toJSONEndpoint(c.Client),
				Virtual:     toJSONEndpoint(c.Virtual),
				Destination: toJSONEndpoint(c.Dest),
				State:       c.State,
				Expires:     c.Expires,
				Template:    c.Template,
			})
		}
		doc.Connections = &cs
	}
	// Encode to a buffer first, so that a failure writes nothing.
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // names are data, not HTML
	enc.SetIndent("", "  ")
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	_, err := io.WriteString(out, b.String())
	return err
}
