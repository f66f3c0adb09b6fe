package metrics

import (
	"runtime"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"kproxy.dev/kproxy/internal/config"
)

// RegisterComponentMetrics registers what component-base adds to every
// Kubernetes component's /metrics: kubernetes_build_info (kproxy's version in
// git_version) and kubernetes_feature_enabled{name,stage} for each gate kproxy knows.
func RegisterComponentMetrics(reg prometheus.Registerer, version string, gates []config.FeatureState) {
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kubernetes_build_info",
		Help: "A metric with a constant '1' value labeled by major, minor, git version, git commit, git tree state, " +
			"build date, Go version, and compiler from which Kubernetes was built, and platform on which it is running."},
		[]string{"major", "minor", "git_version", "git_commit", "git_tree_state", "build_date", "go_version", "compiler", "platform"})
	major, minor := majorMinor(version)
	build.WithLabelValues(major, minor, version, "", "", "", runtime.Version(), runtime.Compiler,
		runtime.GOOS+"/"+runtime.GOARCH).Set(1)
	features := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "kubernetes", Name: "feature_enabled",
		Help: "This metric records the data about the stage and enablement of a k8s feature."}, []string{"name", "stage"})
	for _, g := range gates {
		v := 0.0
		if g.Enabled {
			v = 1
		}
		features.WithLabelValues(g.Name, g.Stage).Set(v)
	}
	reg.MustRegister(build, features)
}

// majorMinor splits "v1.2.3-dev" into "1" and "2".
func majorMinor(version string) (string, string) {
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	if len(parts) < 2 {
		return "", ""
	}
	return parts[0], parts[1]
}
