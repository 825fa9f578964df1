# gvs: see README.md. `make demo` and `make test` need root (network namespaces).
GO      ?= go
BIN     ?= bin
GOFLAGS ?=

.PHONY: all build demo test test-short vet fmt bench clean

all: build

build:
	$(GO) build $(GOFLAGS) -o $(BIN)/ ./cmd/gvs ./cmd/gvsadm

# The seed notes' LVS lab in network namespaces, step by step
# (MODE=dr, the notes' lab, by default; or nat, tun, fullnat).
# DEMOFLAGS=--trace shows what gvs did to the first connection's frames.
MODE ?= dr
DEMOFLAGS ?=
demo: build
	$(BIN)/gvs demo --mode $(MODE) --gvsadm $(BIN)/gvsadm $(DEMOFLAGS)

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

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./conntrack ./sched ./forward ./internal/...

clean:
	rm -rf $(BIN)
