// Package deploy checks the manifests in deploy/ against the Kubernetes API types
// (strict decoding: a misspelt or misplaced field fails) and against what a kubeadm
// node needs from a kube-proxy replacement. test/e2e/apiserver sends the same
// manifests to a real kube-apiserver.
package deploy
