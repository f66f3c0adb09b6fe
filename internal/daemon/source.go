package daemon

import (
	"errors"
	"log/slog"
	"os"

	"kproxy.dev/kproxy/internal/source"
	"kproxy.dev/kproxy/internal/source/file"
	"kproxy.dev/kproxy/internal/source/kube"
)

// ErrNoSource explains the two ways to tell kproxy what to proxy.
var ErrNoSource = errors.New("no source of Services: give --services-from PATH (a file or directory of " +
	"Service and EndpointSlice manifests, e.g. `kubectl get svc,endpointslices -A -o yaml` output) to run " +
	"without a cluster, or --kubeconfig FILE (or run inside a cluster) to watch a Kubernetes API server")

func inCluster() bool {
	return os.Getenv("KUBERNETES_SERVICE_HOST") != "" && os.Getenv("KUBERNETES_SERVICE_PORT") != ""
}

// buildSource picks the source: manifests when --services-from is set, else the
// cluster from --kubeconfig (or the config file's clientConnection.kubeconfig, as
// kube-proxy reads it) or the in-cluster service account.
func buildSource(o Options, nodeName string, rejects *source.Rejects, log *slog.Logger) (source.Source, error) {
	kubeconfig := o.Kubeconfig
	if kubeconfig == "" && o.Config != nil {
		kubeconfig = o.Config.ClientConnection.Kubeconfig
	}
	switch {
	case o.Source != nil:
		return o.Source, nil
	case o.ServicesFrom != "" && o.Kubeconfig != "":
		return nil, errors.New("--services-from and --kubeconfig are alternatives: give one of them")
	case o.ServicesFrom != "":
		return file.New(file.Options{Path: o.ServicesFrom, Rejects: rejects, Logger: log})
	case kubeconfig != "" || inCluster():
		client, err := kube.BuildClient(kubeconfig)
		if err != nil {
			return nil, err
		}
		return kube.New(kube.Options{Client: client, NodeName: nodeName,
			Resync: o.Config.ConfigSyncPeriod.Duration, Logger: log})
	default:
		return nil, ErrNoSource
	}
}
