// Command gvs-bench is the forwarding benchmark of package
// github.com/gvs-project/gvs/bench, as a program of its own; `gvs bench`
// runs the same thing from the gvs binary (see the package doc):
//
//	sudo go run ./bench/cmd/gvs-bench --quick
package main

import (
	"os"

	"github.com/gvs-project/gvs/bench"
)

func main() {
	os.Exit(bench.Main(os.Args[1:], os.Stdout, os.Stderr, ""))
}
