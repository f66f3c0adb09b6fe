#!/bin/sh
# Builds the iptables-nft tools kproxy's image ships: iptables 1.8.9 (Debian
# bookworm's version) from its release tarball, with the two hash tables of chain
# names that iptables-nft-restore walks for every rule sized for large nodes.
#
# iptables 1.8.9 hashes chain names into 512 buckets, in libxtables (names that
# are not targets: every declared chain, looked up for every -j) and in
# iptables-nft's chain cache (looked up for every -A and every declaration), and
# walks a bucket's list comparing names. With one KUBE-SVC chain per Service,
# 100,000 Services make every -j DNAT walk about 200 names: the tool's CPU grows
# with the square of the Services (user CPU 1.23 s at 10,000 x 5, 24.1 s at
# 100,000 x 5), and so does kproxy's cold sync in iptables mode. With 65,536
# buckets the same inputs take 1.22 s and 10.9 s (docs/performance.md, "iptables:
# the tool's chain-name hashes sized for 100,000 Services"). Nothing else changes:
# same source, same rules, same netlink messages.
#
# Usage: scripts/build-iptables.sh [DEST]   (root on Debian; installs build deps)
# Prints DEST, whose sbin/ holds xtables-nft-multi and the iptables-nft,
# iptables-nft-restore, iptables-nft-save links (and the ip6tables ones). Without
# DEST it builds into $KPROXY_IPTABLES_CACHE (default /var/cache/kproxy-iptables),
# and a second run with the same version and sizes only prints the path.
set -eu

VERSION=1.8.9
SHA256=ef6639a43be8325a4f8ea68123ffac236cb696e8c78501b64e8106afb008c87f
URL=${KPROXY_IPTABLES_URL:-http://deb.debian.org/debian/pool/main/i/iptables/iptables_$VERSION.orig.tar.xz}
BUCKETS=65536
DEST=${1:-${KPROXY_IPTABLES_CACHE:-/var/cache/kproxy-iptables}/$VERSION-h$BUCKETS}
STAMP="$VERSION buckets=$BUCKETS sha256=$SHA256"

log() { echo "build-iptables: $*" >&2; }

if [ -x "$DEST/sbin/xtables-nft-multi" ] && [ "$(cat "$DEST/.built" 2>/dev/null)" = "$STAMP" ]; then
	echo "$DEST"
	exit 0
fi

need=""
for p in gcc make pkg-config libmnl-dev libnftnl-dev xz-utils curl ca-certificates; do
	dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
	log "installing build dependencies:$need"
	apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "fetching $URL"
curl -fsSL --retry 3 -o "$work/src.tar.xz" "$URL"
echo "$SHA256  $work/src.tar.xz" | sha256sum -c - >/dev/null || {
	log "checksum mismatch for $URL"
	exit 1
}
mkdir "$work/src"
tar xf "$work/src.tar.xz" -C "$work/src" --strip-components=1
cd "$work/src"

# resize FILE NAME: the one "#define NAME 512" of FILE becomes BUCKETS; fails
# unless exactly one line changes, so a different source cannot slip through.
resize() {
	n=$(grep -Ec "^#define[[:space:]]+$2[[:space:]]+512$" "$1" || true)
	if [ "$n" != 1 ]; then
		log "$1: expected one '#define $2 512', found $n"
		exit 1
	fi
	sed -Ei "s/^(#define[[:space:]]+$2[[:space:]]+)512$/\\1$BUCKETS/" "$1"
	grep -Eq "^#define[[:space:]]+$2[[:space:]]+$BUCKETS$" "$1"
}
resize libxtables/xtables.c NOTARGET_HSIZE
resize iptables/nft-chain.h CHAIN_NAME_HSIZE

# Static libxtables with every extension built in: the binary does not load the
# host's libxt_*.so, which were built against the unchanged libxtables.
log "building iptables $VERSION with $BUCKETS buckets"
if ! { ./configure --disable-shared --enable-static --disable-bpf-compiler \
	--disable-nfsynproxy --disable-libipq --disable-connlabel &&
	make -j"$(nproc)"; } >"$work/build.log" 2>&1; then
	tail -n 30 "$work/build.log" >&2
	exit 1
fi

rm -rf "$DEST"
mkdir -p "$DEST/sbin"
install -m 0755 iptables/xtables-nft-multi "$DEST/sbin/xtables-nft-multi"
for t in iptables ip6tables; do
	for s in "" -restore -save; do
		ln -s xtables-nft-multi "$DEST/sbin/$t-nft$s"
	done
done
"$DEST/sbin/iptables-nft-restore" --version >&2
echo "$STAMP" >"$DEST/.built"
echo "$DEST"
