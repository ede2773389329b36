# Cairn. The two commands of the README: `make dev` runs Cairn, `make test`
# runs every test. Both install what they need on a fresh machine.

GO       ?= go
TSAPP    := e2e/tsapp
NPM_DEPS := $(TSAPP)/node_modules/.package-lock.json
FUZZTIME ?= 4s

.PHONY: dev build test fuzz bench lint deps clean cluster chaos

## build: compile bin/cairn
build:
	$(GO) build -o bin/cairn ./cmd/cairn

## dev: run one node with an embedded data dir (.cairn/) on :8288
dev: build
	./bin/cairn dev $(ARGS)

## test: every test (unit, API, end-to-end with the real inngest SDK), then a short fuzz run
test: deps
	$(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) --no-print-directory fuzz

## fuzz: every fuzz target for FUZZTIME (default 4s) each; the seeds also run in `go test`
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

## deps: the npm packages of the TS test app, from its lockfile
deps: $(NPM_DEPS)

$(NPM_DEPS): $(TSAPP)/package-lock.json $(TSAPP)/package.json
	cd $(TSAPP) && npm ci --no-audit --no-fund
	@touch $@

## bench: drive Cairn with the TS app and a Go protocol handler; prints figures
bench: build deps
	$(GO) run ./bench $(ARGS)

## cluster: three local nodes on loopback (HTTP 8301-8303), Ctrl-C stops them
cluster: build
	./scripts/cluster.sh $(ARGS)

## chaos: fault injection against a three-node cluster; writes a report (not part of test)
chaos: build
	$(GO) run ./chaos $(ARGS)

## lint: formatting and vet
lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l . && echo "gofmt: files above need formatting" && exit 1)
	$(GO) vet ./...

clean:
	rm -rf bin .cairn .cluster
