// Command gvsadm administers the gvs director the way ipvsadm administers
// the kernel's IPVS: same commands, options, messages, exit statuses,
// listings and save/restore format. It talks to the gvs daemon over its
// control socket, $GVS_SOCKET or /run/gvs.sock. ipvsadm has no option
// naming a socket, and gvsadm adds none, so that no ipvsadm command line
// changes meaning.
package main

import (
	"os"

	"github.com/gvs-project/gvs/control"
	"github.com/gvs-project/gvs/ipvsadm"
)

func main() {
	path := control.SocketPath("")
	dial := func() (ipvsadm.Doer, error) { return control.Dial(path) }
	os.Exit(ipvsadm.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, dial))
}
