//go:build tools

// Package deps pins the project's dependencies while packages are being written.
package deps

import (
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/google/nftables"
	_ "github.com/moby/ipvs"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/spf13/cobra"
	_ "github.com/vishvananda/netlink"
	_ "k8s.io/api/core/v1"
	_ "k8s.io/client-go/informers"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/client-go/kubernetes/fake"
	_ "k8s.io/kube-proxy/config/v1alpha1"
	_ "sigs.k8s.io/knftables"
	_ "sigs.k8s.io/yaml"
)
