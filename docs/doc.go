// Package docs holds the guides to gvs's forwarding modes (modes/*.md)
// and the seed notes' lab (seed-walkthrough.md), and the program that
// fills in the real lab output they quote.
//
// Every block of output in the guides sits between markers
//
//	<!-- gvs:excerpt NAME -->
//	...
//	<!-- gvs:end -->
//
// and is cut from what the labs print, never written by hand. As root,
//
//	make docs        (go test ./docs -run '^TestExcerpts$' -update)
//
// runs make demo's walk-through once per mode (lab.Demo, with gvs --trace
// and --pcap, and a few more steps: extraSteps in run.go), cuts the
// excerpts out of its narration and capture (excerpts.go), replaces what
// changes from run to run by placeholders (normalise.go) and writes them
// into the guides (splice.go). Without -update, TestExcerpts (part of
// make test) does the same and fails, naming the guide and the excerpt
// and showing the difference, when a guide no longer quotes what the lab
// prints. facts.go checks what the guides say about values that the
// excerpts show only as placeholders.
//
// What keeps runs alike: the labs' MACs are derived from their addresses,
// the client connects from fixed ports (lab.DemoClientPort onwards), the
// first request waits until gvs has resolved its next hops, rr's picks
// follow the order the real servers were added, and FULLNAT hands out
// local ports in order from 1024.
//
// To add an excerpt: put its markers in a guide, add it to registry in
// excerpts.go (a step of the narration, a command of a step, a trace
// block or a frame of the capture) and run make docs.
package docs
