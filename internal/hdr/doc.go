// Package hdr provides typed views over the bytes of Ethernet, IPv4, TCP and
// UDP headers, and Internet checksums (RFC 1071) with incremental updates
// (RFC 1624), for gvs's data path.
//
// A view is a byte slice type (type IPv4 []byte) whose accessors read and
// write fields at fixed offsets without copying or allocating. Accessors
// do no bounds checks of their own beyond Go's: callers validate a header
// once, with the package's Parse functions or IsValid methods, and then use
// the view freely. This follows gVisor's pkg/tcpip/header.
//
// Everything here is allocation-free and safe to call per packet.
package hdr
