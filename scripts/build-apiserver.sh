#!/bin/sh
# Builds kube-apiserver, kubectl and etcd from the Go module proxy for the end-to-end tests
# (test/e2e/apiserver) and caches them by version. Needs only `go` and the module proxy.
#
#   KPROXY_E2E_CACHE  cache directory        (default /var/cache/kproxy-e2e)
#   KUBE_VERSION      k8s.io/kubernetes tag  (default: v1.X.Y matching k8s.io/api v0.X.Y in go.mod)
#   ETCD_VERSION      go.etcd.io/etcd tag    (default v3.7.3, the 3.7 line kube-apiserver 1.37 uses)
#
# Prints the binaries' paths (KUBE_APISERVER=..., KUBECTL=..., ETCD=...) on success. Skips a
# build whose binary is already cached. k8s.io/kubernetes cannot be built as a dependency
# as published: its go.mod requires every k8s.io staging module at v0.0.0 and replaces
# them with ./staging paths, which a dependency's replaces do not carry. The throwaway
# module here replaces each of them with the published v0.X.Y tag instead.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${KPROXY_E2E_CACHE:-/var/cache/kproxy-e2e}

if [ -z "${KUBE_VERSION:-}" ]; then
	api=$(awk '$1 == "k8s.io/api" { print $2; exit }' "$repo/go.mod")
	KUBE_VERSION="v1.${api#v0.}"
fi
ETCD_VERSION=${ETCD_VERSION:-v3.7.3}
staging="v0.${KUBE_VERSION#v1.}"

# Spare the shared cores: one package at a time, at low priority.
export GOFLAGS="-p=1 -mod=mod"
export CGO_ENABLED=0
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
build() { nice -n 10 go build -trimpath "$@"; }

mkdir -p "$cache/bin"
apiserver="$cache/bin/kube-apiserver-$KUBE_VERSION"
kubectl="$cache/bin/kubectl-$KUBE_VERSION"
etcd="$cache/bin/etcd-$ETCD_VERSION"
kubesrc="$cache/src/kube-$KUBE_VERSION"
ver="k8s.io/component-base/version"
minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
kubeflags="-s -w -X $ver.gitVersion=$KUBE_VERSION -X $ver.gitMajor=1 -X $ver.gitMinor=$minor"

# kube_module writes the throwaway module both Kubernetes binaries build in.
kube_module() {
	[ -f "$kubesrc/go.mod" ] && return 0
	rm -rf "$kubesrc" && mkdir -p "$kubesrc"
	cd "$kubesrc"
	# The published go.mod of k8s.io/kubernetes names the staging modules to replace.
	kmod=$(GOFLAGS= go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
	[ -f "$kmod" ] || { echo "build-apiserver: no go.mod for k8s.io/kubernetes@$KUBE_VERSION" >&2; exit 1; }
	{
		echo "module kproxy.dev/e2e-apiserver"
		echo
		echo "go $(awk '$1 == "go" { print $2; exit }' "$kmod")"
		echo
		echo "require k8s.io/kubernetes $KUBE_VERSION"
		echo
		awk -v tag="$staging" '
			$1 ~ /^k8s\.io\// && $2 == "v0.0.0" && !seen[$1]++ {
				printf "replace %s => %s %s\n", $1, $1, tag
			}' "$kmod"
	} >go.mod.tmp
	mv go.mod.tmp go.mod
}

if [ ! -x "$apiserver" ]; then
	kube_module
	cd "$kubesrc"
	echo "build-apiserver: building kube-apiserver $KUBE_VERSION (staging modules at $staging) in $kubesrc" >&2
	build -o "$apiserver.tmp" -ldflags "$kubeflags" k8s.io/kubernetes/cmd/kube-apiserver
	mv "$apiserver.tmp" "$apiserver"
fi

# kubectl runs docs/migration.md's commands in the end-to-end tests.
if [ ! -x "$kubectl" ]; then
	kube_module
	cd "$kubesrc"
	echo "build-apiserver: building kubectl $KUBE_VERSION in $kubesrc" >&2
	build -o "$kubectl.tmp" -ldflags "$kubeflags" k8s.io/kubernetes/cmd/kubectl
	mv "$kubectl.tmp" "$kubectl"
fi

if [ ! -x "$etcd" ]; then
	src="$cache/src/etcd-$ETCD_VERSION"
	rm -rf "$src" && mkdir -p "$src"
	cd "$src"
	# etcd's server module replaces its siblings with ../ paths; pin each to the same tag.
	cat >go.mod <<-EOF
		module kproxy.dev/e2e-etcd

		go 1.26.0

		require go.etcd.io/etcd/server/v3 $ETCD_VERSION

		replace (
			go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 $ETCD_VERSION
			go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
			go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 $ETCD_VERSION
			go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
		)
	EOF
	cat >main.go <<-'EOF'
		// Command etcd runs etcd's own main for the kproxy end-to-end tests.
		package main

		import (
			"os"

			"go.etcd.io/etcd/server/v3/etcdmain"
		)

		func main() { etcdmain.Main(os.Args) }
	EOF
	echo "build-apiserver: building etcd $ETCD_VERSION in $src" >&2
	build -o "$etcd.tmp" -ldflags "-s -w" .
	mv "$etcd.tmp" "$etcd"
fi

echo "KUBE_APISERVER=$apiserver"
echo "KUBECTL=$kubectl"
echo "ETCD=$etcd"
