# gvs: see README.md. `make demo` and `make test` need root (network namespaces).
GO      ?= go
BIN     ?= bin
GOFLAGS ?=

.PHONY: all build demo docs test test-short vet fmt bench bench-quick bench-micro clean fuzz fuzz-short

all: build

# Without cgo: only then can gvs drop its capabilities on every thread
# after start (Go's AllThreadsSyscall; see README, Privileges).
build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS) -o $(BIN)/ ./cmd/gvs ./cmd/gvsadm

# The seed notes' LVS lab in network namespaces, step by step
# (MODE=dr, the notes' lab, by default; or nat, tun, fullnat).
# DEMOFLAGS=--trace shows what gvs did to the first connection's frames.
MODE ?= dr
DEMOFLAGS ?=
demo: build
	$(BIN)/gvs demo --mode $(MODE) --gvsadm $(BIN)/gvsadm $(DEMOFLAGS)

# The guides in docs/ quote real lab output between markers: this runs
# each mode's lab (root) and rewrites those excerpts in place. make test
# checks that they are still what the labs print (docs/doc.go).
docs:
	$(GO) test $(GOFLAGS) -count=1 -run '^TestExcerpts$$' ./docs -update

# Every test. As root (CI runs as root with CI=true) the namespace tests run;
# without root they skip, and under CI=true they fail instead.
test: vet
	$(GO) test $(GOFLAGS) -race -count=1 -timeout 30m ./...

test-short:
	$(GO) test $(GOFLAGS) -short ./...

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# Every fuzz target (go test -list '^Fuzz' in each package that has one)
# for FUZZTIME each, one after another (.ci/fuzz); fuzz-short is CI's
# brief pass. A failing input is written to the package's
# testdata/fuzz/<target>/ and fails the run.
FUZZTIME ?= 60s
fuzz:
	GO=$(GO) GOFLAGS="$(GOFLAGS)" .ci/fuzz $(FUZZTIME)

fuzz-short:
	GO=$(GO) GOFLAGS="$(GOFLAGS)" .ci/fuzz 10s

# The forwarding benchmark (root), `gvs bench`: kernel forwarding, nftables
# DNAT, HAProxy and every gvs mode in namespaces; pps, loss, CPU per packet,
# latency, TCP; see bench/ and README.md ("Benchmark").
# BENCHFLAGS passes options, e.g. BENCHFLAGS='--json out.json --svg out.svg'.
BENCHFLAGS ?=
bench: build
	$(BIN)/gvs bench --gvs $(BIN)/gvs --gvsadm $(BIN)/gvsadm $(BENCHFLAGS)

bench-quick: BENCHFLAGS += --quick
bench-quick: bench

# The Go micro-benchmarks of the data path's parts.
bench-micro:
	$(GO) test -run '^$$' -bench . -skip RingCompare -benchmem ./conntrack ./sched ./forward ./internal/...

clean:
	rm -rf $(BIN)
