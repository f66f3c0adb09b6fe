package kube

import (
	"errors"
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// BuildClient returns a client from a kubeconfig file, or from the in-cluster
// service account when kubeconfig is "" (as kube-proxy does).
func BuildClient(kubeconfig string) (Client, error) {
	return BuildClientWith(ClientOptions{Kubeconfig: kubeconfig})
}

// ClientOptions are kube-proxy's clientConnection settings plus --master.
type ClientOptions struct {
	Kubeconfig string
	// Master overrides the kubeconfig's server address (--master).
	Master string
	// QPS and Burst rate-limit requests; 0 keeps client-go's defaults.
	QPS   float32
	Burst int
	// ContentType and AcceptContentTypes; "" means protobuf, as kube-proxy's defaults.
	ContentType        string
	AcceptContentTypes string
}

// BuildClientWith returns a client configured as kube-proxy configures its own.
func BuildClientWith(o ClientOptions) (Client, error) {
	cfg, err := restConfigFor(o.Kubeconfig, o.Master)
	if err != nil {
		return nil, err
	}
	applyClientOptions(cfg, o)
	c, err := newRESTClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("building a Kubernetes client: %w", err)
	}
	return c, nil
}

func applyClientOptions(cfg *rest.Config, o ClientOptions) {
	cfg.UserAgent = "kproxy"
	// Protobuf is what kube-proxy uses: far cheaper to decode for large clusters.
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	if o.AcceptContentTypes != "" {
		cfg.AcceptContentTypes = o.AcceptContentTypes
	}
	if o.ContentType != "" {
		cfg.ContentType = o.ContentType
	}
	if o.QPS != 0 {
		cfg.QPS = o.QPS
	}
	if o.Burst != 0 {
		cfg.Burst = o.Burst
	}
}

func restConfigFor(kubeconfig, master string) (*rest.Config, error) {
	if master == "" {
		return restConfig(kubeconfig)
	}
	cfg, err := clientcmd.BuildConfigFromFlags(master, kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--master %s: %w", master, err)
	}
	return cfg, nil
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if errors.Is(err, rest.ErrNotInCluster) {
		return nil, errors.New("no --kubeconfig given and not running in a cluster " +
			"(KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset): " +
			"pass --kubeconfig FILE to watch a cluster, or --services-from PATH to read manifests")
	}
	if err != nil {
		return nil, fmt.Errorf("in-cluster config: %w", err)
	}
	return cfg, nil
}
