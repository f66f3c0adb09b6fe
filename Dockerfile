# kproxy's container image: the static binary plus the tools the iptables and IPVS
# modes exec (iptables-restore/-save in both backends, ipset, conntrack) and nft for
# operators. Build with `make image` (docker or podman). deploy/daemonset.yaml runs
# /usr/local/bin/kproxy from it. The nf_tables iptables tools are Debian's iptables
# 1.8.9 rebuilt with chain-name hash tables sized for 100,000 Services
# (scripts/build-iptables.sh); the legacy ones are Debian's.
ARG GO_VERSION=1.26
ARG DEBIAN_VERSION=bookworm

FROM golang:${GO_VERSION}-${DEBIAN_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd cmd
COPY internal internal
ARG VERSION=v0.1.0
RUN CGO_ENABLED=0 go build -trimpath \
	-ldflags "-s -w -X kproxy.dev/kproxy/internal/cli.Version=${VERSION}" \
	-o /out/kproxy ./cmd/kproxy

FROM debian:${DEBIAN_VERSION} AS iptables
COPY scripts/build-iptables.sh /src/build-iptables.sh
RUN sh /src/build-iptables.sh /opt/iptables

FROM debian:${DEBIAN_VERSION}-slim
RUN apt-get update \
	&& DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		iptables nftables ipset conntrack kmod \
	&& rm -rf /var/lib/apt/lists/*
# Every iptables-nft name (iptables-nft-restore, iptables-nft-save, ...) links to
# this one binary through Debian's alternatives.
COPY --from=iptables /opt/iptables/sbin/xtables-nft-multi /usr/sbin/xtables-nft-multi
COPY --from=build /out/kproxy /usr/local/bin/kproxy
ENTRYPOINT ["/usr/local/bin/kproxy"]
