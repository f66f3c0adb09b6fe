# kproxy: `make test` installs what the tests need (as root on Debian) and runs them all.
GO      ?= go
TIMEOUT ?= 40m
# VERSION tags the image; deploy/daemonset.yaml runs the same tag.
VERSION ?= v0.1.0
IMAGE   ?= kproxy.dev/kproxy:$(VERSION)
CONTAINER_TOOL ?= docker

.PHONY: all build test test-deps test-iptables-build unit vet fmt clean fuzz fuzz-short image e2e

all: build

build:
	CGO_ENABLED=0 $(GO) build -o bin/kproxy ./cmd/kproxy

# test-deps installs iptables, nftables, ipset, conntrack, iproute2 and the IPVS test
# VM's kernel with apt-get; it needs root, and is skipped (with a note) without it.
test-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		sh scripts/install-test-deps.sh; \
	else \
		echo "make test-deps: not root on Debian: not installing packages (kernel tests skip without root)"; \
	fi

# test also runs vet, the gofmt check, staticcheck and a short fuzz run, so CI holds the code to them.
test: test-deps vet fuzz-short test-iptables-build
	$(GO) test -count=1 -timeout $(TIMEOUT) ./...

# test-iptables-build builds the iptables-nft tools the image ships
# (scripts/build-iptables.sh, cached in /var/cache/kproxy-iptables) and runs the
# iptables dataplane's tests, kernel ones included, with them first in PATH.
test-iptables-build:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		dir=$$(sh scripts/build-iptables.sh) && \
		test "$$(PATH=$$dir/sbin:$$PATH command -v iptables-nft-restore)" = "$$dir/sbin/iptables-nft-restore" && \
		PATH=$$dir/sbin:$$PATH $(GO) test -count=1 ./internal/dataplane/iptables/; \
	else \
		echo "make test-iptables-build: not root on Debian: skipped"; \
	fi

# e2e runs test/e2e/apiserver: kproxy against a real kube-apiserver and etcd, which
# scripts/build-apiserver.sh builds from the Go module proxy and caches by version in
# $${KPROXY_E2E_CACHE:-/var/cache/kproxy-e2e}. The first run builds for a long time;
# later runs start at once. CI runs it after `make test`. Needs root (namespaces).
e2e:
	sh scripts/build-apiserver.sh
	$(GO) vet -tags e2e_apiserver ./test/e2e/apiserver/
	$(GO) test -count=1 -tags e2e_apiserver -timeout 20m -v ./test/e2e/apiserver/

# fuzz-short explores the manifest decoder for FUZZTIME beyond its seed corpus
# (internal/source/file/testdata/fuzz), which every `go test` runs anyway.
# FUZZTIME is a count of executions, not a duration: with a duration, Go 1.26's fuzz
# coordinator can fail a clean run with "context deadline exceeded" when a starved
# worker is mid-call at the deadline (go.dev/issue/75804, fixed in Go 1.27). A real
# finding writes its input to testdata/fuzz/ and names it.
FUZZTIME ?= 60000x
fuzz-short:
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) -timeout 15m ./internal/source/file/

# unit runs the tests that need neither root nor the kernel's NAT facilities.
unit:
	$(GO) test -count=1 -short ./...

# fuzz runs each fuzz target for FUZZTIME executions (their seed corpora also run in
# every go test); make test runs only the manifest decoder's, to keep CI short.
fuzz: fuzz-short
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) -timeout 15m ./internal/config

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd internal test)" || { gofmt -l cmd internal test; exit 1; }
	$(GO) run $(STATICCHECK) ./...

fmt:
	gofmt -w cmd internal test

# image builds the container image (Dockerfile) with docker or podman.
image:
	$(CONTAINER_TOOL) build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

clean:
	rm -rf bin
