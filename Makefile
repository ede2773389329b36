# Cairn. The two commands of the README: `make dev` runs Cairn, `make test`
# runs every test. Both install what they need on a fresh machine.

GO       ?= go
TSAPP    := e2e/tsapp
NPM_DEPS := $(TSAPP)/node_modules/.package-lock.json
FUZZTIME ?= 4s

.PHONY: dev build test fuzz bench floor lint deps chromium clean cluster chaos

## build: compile bin/cairn
build:
	$(GO) build -o bin/cairn ./cmd/cairn

## dev: run one node with an embedded data dir (.cairn/) on :8288
dev: build
	./bin/cairn dev $(ARGS)

## test: every test (unit, API, end-to-end with the real inngest SDK), then a short fuzz run
test: deps
	cd sdk && $(GO) test -race -count=1 -timeout 10m ./...
	$(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) --no-print-directory fuzz

## fuzz: every fuzz target for FUZZTIME (default 4s) each; the seeds also run in `go test`
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

## deps: the npm packages of the TS test app, from its lockfile; headless Chromium for the UI tests
deps: $(NPM_DEPS) chromium

# The browsers the UI tests (e2e/ui_test.go) look for, in their order.
BROWSERS := chromium-headless-shell chromium chromium-browser google-chrome

## chromium: install Debian's chromium-headless-shell when no browser is found (as root), else say how
chromium:
	@if [ -n "$$CAIRN_CHROMIUM" ]; then exit 0; fi; \
	for b in $(BROWSERS); do command -v $$b >/dev/null && exit 0; done; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y chromium-headless-shell || { apt-get update && apt-get install -y chromium-headless-shell; }; \
	else \
		echo "The web UI tests need headless Chromium: run 'sudo apt-get install -y chromium-headless-shell'"; \
		echo "(or set CAIRN_CHROMIUM to a Chromium binary), then make test again."; exit 1; \
	fi

$(NPM_DEPS): $(TSAPP)/package-lock.json $(TSAPP)/package.json
	cd $(TSAPP) && npm ci --no-audit --no-fund
	@touch $@

## bench: drive Cairn with the TS app and a Go protocol handler; prints figures
bench: build deps
	$(GO) run ./bench $(ARGS)

## floor: the CPU floors under a step: its HTTP exchanges (against a null engine) and a synced log write
floor:
	$(GO) run ./bench/floor $(ARGS)

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
	cd sdk && $(GO) vet ./...

clean:
	rm -rf bin .cairn .cluster
