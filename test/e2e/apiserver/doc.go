// Package apiserver runs kproxy against a real kube-apiserver and etcd, built from
// the Go module proxy by scripts/build-apiserver.sh and cached by version. The
// control plane runs inside the test's node network namespace (so it touches no
// host address), with RBAC on and TLS from certificates generated here; kproxy runs
// as a user bound to system:node-proxier only. The tests need root (namespaces);
// `make e2e` runs them, and CI runs `make e2e` after `make test`.
package apiserver
