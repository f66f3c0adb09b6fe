#!/bin/sh
# Installs what the test suite needs on a Debian machine (CI runs it before the tests).
# Idempotent: every step checks before it acts. Engineers add their lines in their
# own section.
set -eu
cd "$(dirname "$0")/.."

need_pkgs=""
want() { dpkg -s "$1" >/dev/null 2>&1 || need_pkgs="$need_pkgs $1"; }

# --- core: the kernel dataplanes' tests (iptables, nftables, ipset, conntrack, ip) ---
for p in iptables nftables ipset conntrack iproute2; do want "$p"; done

# --- ipvs: the IPVS tests boot a Debian kernel under qemu ---
for p in qemu-system-x86 busybox-static cpio kmod iproute2 ipset iptables conntrack; do want "$p"; done

if [ -n "$need_pkgs" ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need_pkgs
fi

# --- ipvs ---
sh scripts/fetch-test-kernel.sh
