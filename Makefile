# credvault: the two commands a newcomer needs are `make dev` and `make test`.
GO      ?= go
PKG     := ./...
BIN     := bin/credvault
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)

.PHONY: all build dev test vet fmt cover clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/credvault

## dev: the whole service on embedded defaults (private PostgreSQL under
## ./.credvault/pg, built-in dev transit server), printing the URL. It runs
## the built binary rather than `go run`, which exits 1 on Ctrl-C even
## when credvault stops cleanly.
dev: build
	./$(BIN) dev

## test: vet, then the whole suite against real PostgreSQL
## (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres).
## Set VAULT_ADDR and VAULT_TOKEN to run the Vault tests against a real
## Vault or OpenBao instead of the dev transit server.
test: vet
	$(GO) test -count=1 -race -timeout 8m $(PKG)

vet:
	$(GO) vet $(PKG)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

cover:
	$(GO) test -count=1 -coverprofile=cover.out $(PKG) && $(GO) tool cover -func=cover.out | tail -1

clean:
	rm -rf bin cover.out
