# credvault: the two commands a newcomer needs are `make dev` and `make test`.
GO      ?= go
PKG     := ./...
BIN     := bin/credvault
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)

.PHONY: all build dev dev-clean test vet fmt cover clean fuzz

all: build

build:
	@echo "building $(BIN) (the first build downloads the Go modules: a few minutes; later builds take seconds)"
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/credvault

## dev: the whole service on embedded defaults (private PostgreSQL under
## ./.credvault/pg, built-in dev transit server), printing the URL. It runs
## the built binary rather than `go run`, which exits 1 on Ctrl-C even
## when credvault stops cleanly.
dev: build
	./$(BIN) dev

## dev-clean: remove everything `make dev` created: the private cluster
## (also /var/lib/credvault-dev/<hash> when run as root), transit keys,
## tokens, the admin key, ./.credvault and bin/.
dev-clean: build
	./$(BIN) dev --reset
	rm -rf bin

## test: vet and staticcheck (pinned in go.mod's tool block), then the whole suite against real PostgreSQL
## (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres).
## Set VAULT_ADDR and VAULT_TOKEN to run the Vault tests against a real
## Vault or OpenBao instead of the dev transit server.
test: vet
	$(GO) test -count=1 -race -timeout 12m $(PKG)

## fuzz: each fuzz target for FUZZTIME (default 60s), one after the other
## on one worker. `make test` runs their seed corpora (f.Add and
## testdata/fuzz) as ordinary tests.
FUZZTIME ?= 60s
FUZZ_TARGETS := ./internal/apikey:FuzzParse \
	./internal/credvault:FuzzHostPatterns \
	./internal/credvault:FuzzCredentialFields \
	./internal/credvault:FuzzTargetURL \
	./internal/injector:FuzzScrubber
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "== $$name ($$pkg) for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s -parallel 1 $$pkg; \
	done

vet:
	$(GO) vet $(PKG)
	$(GO) tool staticcheck $(PKG)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

cover:
	$(GO) test -count=1 -coverprofile=cover.out $(PKG) && $(GO) tool cover -func=cover.out | tail -1

clean:
	rm -rf bin cover.out
