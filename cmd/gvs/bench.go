package main

import (
	"io"
	"os"

	"github.com/gvs-project/gvs/bench"
)

// benchmark is `gvs bench`: the bench tool (package bench), measuring this
// very binary as gvs, with the gvsadm beside it (or on $PATH; else both
// are built from the source tree the command runs in).
func benchmark(args []string, stdout, stderr io.Writer) int {
	self, err := os.Executable()
	if err != nil {
		self = ""
	}
	return bench.Main(args, stdout, stderr, self)
}
