# gateway — build, run, test.
#
#   make run     build everything and run the gateway on config.hcl
#   make test    go vet + all tests with the race detector (installs systemd-analyze if missing)
#   make bench   benchmarks and load runs against in-run baselines
#   make fuzz    runs every fuzz target for FUZZTIME each (their seed corpora
#                in testdata/fuzz also run as plain tests in make test)
#   make generate  regenerate protobuf code (installs protoc via apt if missing)

GO        ?= go
BIN       := bin
PLUGINS   := $(notdir $(wildcard plugins/*))
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/plughost/gateway/host/version.Version=$(VERSION) \
             -X github.com/plughost/gateway/host/version.Commit=$(COMMIT) \
             -X github.com/plughost/gateway/shared.Version=$(VERSION)

PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1
TOOLS := $(CURDIR)/$(BIN)/tools

.PHONY: all build run test test-deps vet bench fuzz generate clean

all: build

build:
	@mkdir -p $(BIN)/plugins
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/gateway ./host/cmd/gateway
	@for p in $(PLUGINS); do \
		echo "$(GO) build -o $(BIN)/plugins/gateway-plugin-$$p ./plugins/$$p"; \
		$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/plugins/gateway-plugin-$$p ./plugins/$$p || exit 1; \
	done
	@chmod 0755 $(BIN)/plugins $(BIN)/plugins/*

run: build
	./$(BIN)/gateway run -config config.hcl

vet:
	$(GO) vet ./...

test: vet test-deps
	$(GO) test -race -count=1 -timeout 15m ./...

# System tools the tests use: systemd-analyze checks the generated unit;
# chromium runs the web page's browser test (host/e2e); PostgreSQL's server
# runs the PostgreSQL store and cluster tests (a throwaway cluster per run).
test-deps:
	@command -v systemd-analyze >/dev/null 2>&1 || { \
		echo "systemd-analyze not found: installing Debian's systemd"; \
		(apt-get update -qq && apt-get install -y -qq systemd) || \
		(sudo apt-get update -qq && sudo apt-get install -y -qq systemd); }
	@command -v npx >/dev/null 2>&1 || { \
		echo "npx not found (the MCP test against @modelcontextprotocol/server-everything): installing Debian's npm"; \
		(apt-get update -qq && apt-get install -y -qq npm) || \
		(sudo apt-get update -qq && sudo apt-get install -y -qq npm); }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
		echo "initdb not found (the PostgreSQL store and cluster tests): installing Debian's postgresql"; \
		(apt-get update -qq && apt-get install -y -qq postgresql) || \
		(sudo apt-get update -qq && sudo apt-get install -y -qq postgresql); }
	@command -v chromium >/dev/null 2>&1 || { \
		echo "chromium not found: installing Debian's chromium (the web page's browser test)"; \
		(apt-get update -qq && apt-get install -y -qq chromium) || \
		(sudo apt-get update -qq && sudo apt-get install -y -qq chromium); }

# FUZZTIME bounds each fuzz target, e.g. make fuzz FUZZTIME=5m. Inputs that
# fail are written to the package's testdata/fuzz/FuzzXxx/: fix the bug and
# commit the input, so it runs in make test from then on.
FUZZTIME ?= 20s
FUZZ_TARGETS := \
	./host/config:FuzzParse \
	./host/config:FuzzDecodePlatformConfig \
	./plugins/http:FuzzDecodeMessageRequest \
	./plugins/discord/adapter:FuzzGatewayFrame \
	./shared/kit:FuzzChunk \
	./host/store:FuzzMsgKey \
	./host/store:FuzzStoreRecord

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "$(GO) test -run '^$$' -fuzz '^$$fn$$' -fuzztime $(FUZZTIME) $$pkg"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

# BENCHFLAGS e.g. "-quick -soak 20s" or "-only throughput,latency".
bench: build
	$(GO) run ./bench -soak 150s $(BENCHFLAGS)

generate:
	@command -v protoc >/dev/null 2>&1 || { \
		echo "protoc not found: installing Debian's protobuf-compiler"; \
		(apt-get update -qq && apt-get install -y -qq protobuf-compiler) || \
		(sudo apt-get update -qq && sudo apt-get install -y -qq protobuf-compiler); }
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH=$(TOOLS):$$PATH protoc -I shared/proto \
		--go_out=shared/proto --go_opt=paths=source_relative \
		--go-grpc_out=shared/proto --go-grpc_opt=paths=source_relative \
		shared/proto/platform.proto

clean:
	rm -rf $(BIN)
