package daemon

import (
	"errors"
	"fmt"
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
func buildSource(o Options, nodeName string, rejects *source.Rejects, log *slog.Logger,
	health watchHealth) (source.Source, error) {
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
	case kubeconfig != "" || o.Master != "" || inCluster():
		if err := checkKubeconfig(kubeconfig); err != nil {
			return nil, err
		}
		cc := o.Config.ClientConnection
		client, err := kube.BuildClientWith(kube.ClientOptions{Kubeconfig: kubeconfig, Master: o.Master,
			QPS: cc.QPS, Burst: int(cc.Burst), ContentType: cc.ContentType, AcceptContentTypes: cc.AcceptContentTypes})
		if err != nil {
			return nil, err
		}
		ko := kube.Options{Client: client, NodeName: nodeName, Resync: o.Config.ConfigSyncPeriod.Duration, Logger: log}
		if health != nil {
			ko.OnWatchError, ko.OnWatchRestored = health.SourceError, health.SourceRestored
		}
		return kube.New(ko)
	default:
		return nil, ErrNoSource
	}
}

// watchHealth is where the kube source reports its watches (healthz.Server).
type watchHealth interface {
	SourceError(error)
	SourceRestored()
}

// checkKubeconfig names the field and the path when the kubeconfig file is not
// there (kubeadm's config.conf points at /var/lib/kube-proxy/kubeconfig.conf,
// which must be mounted from the kube-proxy ConfigMap).
func checkKubeconfig(path string) error {
	if path == "" {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("clientConnection.kubeconfig (--kubeconfig): %s: %w", path, unwrapPathError(err))
	}
	return nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
