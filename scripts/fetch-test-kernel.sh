#!/bin/sh
# Fetches the Debian kernel that the IPVS VM tests boot under qemu (the host kernel has
# no IPVS). Idempotent: does nothing when the cache already holds an extracted kernel.
# The cache is $KPROXY_VM_CACHE, default /var/cache/kproxy-vm; internal/vm reads
# the same place.
set -eu
CACHE=${KPROXY_VM_CACHE:-/var/cache/kproxy-vm}
if [ -s "$CACHE/kernel-version" ] && [ -d "$CACHE/root/lib/modules/$(cat "$CACHE/kernel-version")" ]; then
	exit 0
fi
mkdir -p "$CACHE"
cd "$CACHE"
# linux-image-amd64 is a meta package; the image is the package it depends on.
PKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$PKG" ]; then
	apt-get update -qq
	PKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
[ -n "$PKG" ] || { echo "fetch-test-kernel: cannot resolve linux-image-amd64" >&2; exit 1; }
rm -f ./*.deb
apt-get download "$PKG" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
rm -rf root
mkdir root
dpkg -x ./"$PKG"_*.deb root
VERSION=$(ls root/lib/modules | head -n1)
depmod -b root "$VERSION"
rm -f ./*.deb
echo "$VERSION" > kernel-version
echo "fetch-test-kernel: kernel $VERSION in $CACHE"
