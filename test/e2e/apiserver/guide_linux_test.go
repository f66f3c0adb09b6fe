//go:build linux && e2e_apiserver

package apiserver

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"kproxy.dev/kproxy/internal/config"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// guideSteps reads docs/migration.md's command blocks marked `<!-- e2e: NAME -->`.
func guideSteps(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(), "docs", "migration.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	marker := regexp.MustCompile(`^<!-- e2e: ([a-z-]+) -->$`)
	steps := map[string]string{}
	var name string
	var block *strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case marker.MatchString(l):
			name = marker.FindStringSubmatch(l)[1]
		case name != "" && block == nil && l == "```sh":
			block = &strings.Builder{}
		case block != nil && l == "```":
			steps[name] = block.String()
			name, block = "", nil
		case block != nil:
			block.WriteString(l + "\n")
		}
	}
	return steps
}

// runStep runs one block with sh -e in the node namespace, in a directory where
// deploy/ is the repository's, with kubectl on PATH as the admin.
func (cp *controlPlane) runStep(t *testing.T, dir, name, script string) {
	t.Helper()
	cmd := cp.node.Command("sh", "-ec", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cp.adminKubeconfig,
		"PATH="+filepath.Join(dir, "bin")+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docs/migration.md step %q failed: %v\n%s\n--- script:\n%s", name, err, out, script)
	}
	t.Logf("step %s:\n%s", name, out)
}

// kubeadmObjects creates what kubeadm installs for kube-proxy.
func kubeadmObjects(t *testing.T, cp *controlPlane) {
	t.Helper()
	ctx := context.Background()
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
    server: https://%s:6443
  name: default
contexts:
- context: {cluster: default, namespace: default, user: default}
  name: default
current-context: default
users:
- name: default
  user:
    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
`, cp.advertise)
	_, err := cp.admin.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy", Namespace: "kube-system", Labels: map[string]string{"app": "kube-proxy"}},
		Data:       map[string]string{"config.conf": kubeadmConfig, "kubeconfig.conf": kubeconfig},
	}, metav1.CreateOptions{})
	must(t, "create ConfigMap kube-proxy", err)
	var ds appsv1.DaemonSet
	must(t, "decode kube-proxy DaemonSet", yaml.UnmarshalStrict([]byte(kubeadmDaemonSet), &ds))
	_, err = cp.admin.AppsV1().DaemonSets("kube-system").Create(ctx, &ds, metav1.CreateOptions{})
	must(t, "create DaemonSet kube-proxy", err)
}

// runsOn reports whether the DaemonSet's pod would be placed on the node: its
// nodeSelector and required node affinity (the nodes here have no taints).
func runsOn(ds *appsv1.DaemonSet, n *corev1.Node) bool {
	spec := ds.Spec.Template.Spec
	for k, v := range spec.NodeSelector {
		if n.Labels[k] != v {
			return false
		}
	}
	if spec.Affinity == nil || spec.Affinity.NodeAffinity == nil ||
		spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	for _, term := range spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		if termMatches(term, n.Labels) {
			return true
		}
	}
	return false
}

func termMatches(term corev1.NodeSelectorTerm, labels map[string]string) bool {
	for _, e := range term.MatchExpressions {
		v, has := labels[e.Key]
		ok := false
		switch e.Operator {
		case corev1.NodeSelectorOpIn:
			ok = has && slices.Contains(e.Values, v)
		case corev1.NodeSelectorOpNotIn:
			ok = !has || !slices.Contains(e.Values, v)
		case corev1.NodeSelectorOpExists:
			ok = has
		case corev1.NodeSelectorOpDoesNotExist:
			ok = !has
		}
		if !ok {
			return false
		}
	}
	return true
}

// proxiesOn returns, per node, the proxy DaemonSets that would run there.
func proxiesOn(t *testing.T, cp *controlPlane) map[string][]string {
	t.Helper()
	ctx := context.Background()
	nodes, err := cp.admin.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	must(t, "list Nodes", err)
	out := map[string][]string{}
	for _, name := range []string{"kube-proxy", "kproxy"} {
		ds, err := cp.admin.AppsV1().DaemonSets("kube-system").Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		must(t, "get DaemonSet "+name, err)
		for i := range nodes.Items {
			if runsOn(ds, &nodes.Items[i]) {
				out[nodes.Items[i].Name] = append(out[nodes.Items[i].Name], name)
			}
		}
	}
	return out
}

func expectProxies(t *testing.T, cp *controlPlane, step string, want map[string]string) {
	t.Helper()
	got := proxiesOn(t, cp)
	for n, w := range want {
		if !slices.Equal(got[n], []string{w}) {
			t.Errorf("after step %q, node %s would run %v, want only %s", step, n, got[n], w)
		}
	}
}

// testMigrationGuide runs docs/migration.md's marked commands in order against the
// API server, and checks after each which proxy every node would run.
func testMigrationGuide(t *testing.T, cp *controlPlane) {
	ctx := context.Background()
	steps := guideSteps(t)
	order := []string{"install", "node-forward", "cluster-forward", "change-mode", "node-back", "cluster-back", "uninstall"}
	for _, name := range order {
		if steps[name] == "" {
			t.Fatalf("docs/migration.md has no `<!-- e2e: %s -->` command block", name)
		}
	}
	if len(steps) != len(order) {
		t.Errorf("docs/migration.md has %d e2e blocks, the test runs %d: %v", len(steps), len(order), order)
	}
	dir := t.TempDir()
	must(t, "mkdir bin", os.Mkdir(filepath.Join(dir, "bin"), 0o755))
	must(t, "link kubectl", os.Symlink(bins.kubectl, filepath.Join(dir, "bin", "kubectl")))
	must(t, "link deploy", os.Symlink(filepath.Join(repoRoot(), "deploy"), filepath.Join(dir, "deploy")))
	kubeadmObjects(t, cp)
	expectProxies(t, cp, "(kubeadm)", map[string]string{"node-a": "kube-proxy", "node-b": "kube-proxy"})

	cp.runStep(t, dir, "install", steps["install"])
	cm, err := cp.admin.CoreV1().ConfigMaps("kube-system").Get(ctx, "kproxy", metav1.GetOptions{})
	must(t, "get ConfigMap kproxy", err)
	if strings.TrimSpace(cm.Data["config.conf"]) != strings.TrimSpace(kubeadmConfig) {
		t.Errorf("kproxy's config.conf is not kube-proxy's:\n%s", cm.Data["config.conf"])
	}
	if _, _, err := config.Decode([]byte(cm.Data["config.conf"])); err != nil {
		t.Errorf("kproxy cannot read the copied config.conf: %v", err)
	}
	expectProxies(t, cp, "install", map[string]string{"node-a": "kube-proxy", "node-b": "kube-proxy"})

	cp.runStep(t, dir, "node-forward", steps["node-forward"])
	expectProxies(t, cp, "node-forward", map[string]string{"node-a": "kproxy", "node-b": "kube-proxy"})

	cp.runStep(t, dir, "cluster-forward", steps["cluster-forward"])
	expectProxies(t, cp, "cluster-forward", map[string]string{"node-a": "kproxy", "node-b": "kproxy"})

	cp.runStep(t, dir, "change-mode", steps["change-mode"])
	cm, err = cp.admin.CoreV1().ConfigMaps("kube-system").Get(ctx, "kproxy", metav1.GetOptions{})
	must(t, "get ConfigMap kproxy", err)
	if c, _, err := config.Decode([]byte(cm.Data["config.conf"])); err != nil || c.Mode != "nftables" {
		t.Errorf("after change-mode: config.conf mode %v (%v), want nftables:\n%s", c, err, cm.Data["config.conf"])
	}
	ds, err := cp.admin.AppsV1().DaemonSets("kube-system").Get(ctx, "kproxy", metav1.GetOptions{})
	must(t, "get DaemonSet kproxy", err)
	if ds.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] == "" {
		t.Error("after change-mode: the kproxy DaemonSet's pods were not restarted")
	}

	cp.runStep(t, dir, "node-back", steps["node-back"])
	expectProxies(t, cp, "node-back", map[string]string{"node-a": "kube-proxy", "node-b": "kproxy"})

	cp.runStep(t, dir, "cluster-back", steps["cluster-back"])
	expectProxies(t, cp, "cluster-back", map[string]string{"node-a": "kube-proxy", "node-b": "kube-proxy"})

	cp.runStep(t, dir, "uninstall", steps["uninstall"])
	if _, err := cp.admin.AppsV1().DaemonSets("kube-system").Get(ctx, "kproxy", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after uninstall: DaemonSet kproxy: %v, want NotFound", err)
	}
	kp, err := cp.admin.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	must(t, "get DaemonSet kube-proxy", err)
	if kp.Spec.Template.Spec.Affinity != nil {
		t.Errorf("after uninstall: kube-proxy keeps an affinity: %+v", kp.Spec.Template.Spec.Affinity)
	}
	expectProxies(t, cp, "uninstall", map[string]string{"node-a": "kube-proxy", "node-b": "kube-proxy"})
}

// testDeployManifests sends deploy/ to the API server (server-side dry run: full
// validation and admission, nothing stored), then runs the migration guide.
func testDeployManifests(t *testing.T, cp *controlPlane) {
	out, err := cp.kubectl("", "apply", "--dry-run=server", "-f", filepath.Join(repoRoot(), "deploy"))
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server -f deploy/: %v\n%s", err, out)
	}
	for _, want := range []string{"serviceaccount/kproxy", "clusterrolebinding.rbac.authorization.k8s.io/kproxy:node-proxier",
		"configmap/kproxy", "daemonset.apps/kproxy"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run did not accept %s:\n%s", want, out)
		}
	}
	t.Run("migration guide", func(t *testing.T) { testMigrationGuide(t, cp) })
}
