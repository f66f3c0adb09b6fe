package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"kproxy.dev/kproxy/internal/config"
)

// manifests is what deploy/ holds, decoded strictly.
type manifests struct {
	ds         *appsv1.DaemonSet
	configMaps map[string]*corev1.ConfigMap
	sas        map[string]*corev1.ServiceAccount
	bindings   []*rbacv1.ClusterRoleBinding
}

func load(t *testing.T) manifests {
	t.Helper()
	objs, err := Load(Dir())
	if err != nil {
		t.Fatal(err)
	}
	m := manifests{configMaps: map[string]*corev1.ConfigMap{}, sas: map[string]*corev1.ServiceAccount{}}
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *appsv1.DaemonSet:
			if m.ds != nil {
				t.Fatalf("%s: a second DaemonSet %s", o.File, v.Name)
			}
			m.ds = v
		case *corev1.ConfigMap:
			m.configMaps[v.Namespace+"/"+v.Name] = v
		case *corev1.ServiceAccount:
			m.sas[v.Namespace+"/"+v.Name] = v
		case *rbacv1.ClusterRoleBinding:
			m.bindings = append(m.bindings, v)
		}
	}
	if m.ds == nil {
		t.Fatal("deploy/: no DaemonSet")
	}
	return m
}

func TestStrictDecodeRejectsUnknownField(t *testing.T) {
	dir := t.TempDir()
	bad := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  nmespace: kube-system\n"
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "nmespace") || !strings.Contains(err.Error(), "bad.yaml") {
		t.Fatalf("Load = %v, want an error naming bad.yaml and the field nmespace", err)
	}
}

func TestManifestsDecodeStrictly(t *testing.T) {
	objs, err := Load(Dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if !strings.Contains(string(o.Raw), "kind: "+o.GVK.Kind) {
			t.Errorf("%s: %s decoded from a document without its kind", o.File, o.GVK)
		}
	}
	if len(objs) < 4 {
		t.Errorf("deploy/ holds %d objects, want at least ServiceAccount, ClusterRoleBinding, ConfigMap, DaemonSet", len(objs))
	}
}

func kproxyContainer(t *testing.T, ds *appsv1.DaemonSet) corev1.Container {
	t.Helper()
	for _, c := range ds.Spec.Template.Spec.Containers {
		if c.Name == "kproxy" {
			return c
		}
	}
	t.Fatal("DaemonSet: no container named kproxy")
	return corev1.Container{}
}

// TestDaemonSetRunsOnEveryLinuxNode checks what kube-proxy's kubeadm DaemonSet has
// and a kube-proxy replacement needs on every node.
func TestDaemonSetRunsOnEveryLinuxNode(t *testing.T) {
	ds := load(t).ds
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork {
		t.Error("spec.template.spec.hostNetwork: want true (kproxy programs the node's network namespace)")
	}
	if got := spec.NodeSelector["kubernetes.io/os"]; got != "linux" {
		t.Errorf("spec.template.spec.nodeSelector[kubernetes.io/os] = %q, want linux", got)
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("spec.template.spec.priorityClassName = %q, want system-node-critical", spec.PriorityClassName)
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tl corev1.Toleration) bool {
		return tl.Operator == corev1.TolerationOpExists && tl.Key == "" && tl.Effect == ""
	}) {
		t.Errorf("spec.template.spec.tolerations = %v, want one {operator: Exists} (every taint)", spec.Tolerations)
	}
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("spec.selector.matchLabels[%s]=%s does not select the template's labels %v", k, v, ds.Spec.Template.Labels)
		}
	}
	if spec.DNSPolicy == corev1.DNSClusterFirstWithHostNet {
		t.Error("spec.template.spec.dnsPolicy: ClusterFirstWithHostNet makes the API server's name depend on cluster DNS, behind a Service kproxy programs")
	}
	c := kproxyContainer(t, ds)
	if sc := c.SecurityContext; sc == nil || sc.Privileged == nil || !*sc.Privileged {
		t.Error("containers[kproxy].securityContext.privileged: want true (netfilter, sysctls, modules)")
	}
}

func TestDaemonSetImageIsVersioned(t *testing.T) {
	c := kproxyContainer(t, load(t).ds)
	tag := c.Image[strings.LastIndex(c.Image, ":")+1:]
	if !strings.Contains(c.Image, ":") || !regexp.MustCompile(`^v\d+\.\d+\.\d+$`).MatchString(tag) {
		t.Fatalf("containers[kproxy].image = %q, want a vX.Y.Z tag", c.Image)
	}
	mk, err := os.ReadFile(filepath.Join(Dir(), "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mk), "VERSION ?= "+tag) {
		t.Errorf("image tag %s is not the Makefile's VERSION (make image builds a different tag)", tag)
	}
	if len(c.Command) == 0 || c.Command[0] != "/usr/local/bin/kproxy" {
		t.Errorf("containers[kproxy].command[0] = %v, want /usr/local/bin/kproxy (where the Dockerfile installs it)", c.Command)
	}
}

// hostPathMounts maps each hostPath volume's host path to the container's mount.
func hostPathMounts(spec corev1.PodSpec, c corev1.Container) map[string]corev1.VolumeMount {
	out := map[string]corev1.VolumeMount{}
	for _, v := range spec.Volumes {
		if v.HostPath == nil {
			continue
		}
		for _, m := range c.VolumeMounts {
			if m.Name == v.Name {
				out[v.HostPath.Path] = m
			}
		}
	}
	return out
}

func TestDaemonSetMountsHostPaths(t *testing.T) {
	ds := load(t).ds
	mounts := hostPathMounts(ds.Spec.Template.Spec, kproxyContainer(t, ds))
	for host, want := range map[string]bool{"/lib/modules": true, "/run/xtables.lock": false} {
		m, ok := mounts[host]
		if !ok {
			t.Errorf("hostPath %s is not mounted", host)
			continue
		}
		if m.MountPath != host {
			t.Errorf("hostPath %s mounted at %s, want the same path", host, m.MountPath)
		}
		if m.ReadOnly != want {
			t.Errorf("hostPath %s readOnly=%v, want %v", host, m.ReadOnly, want)
		}
	}
}

// flagValue returns --name=value from the container's command and args.
func flagValue(c corev1.Container, name string) string {
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// projected returns, for a file path in the container, the ConfigMap and key it
// comes from.
func projected(spec corev1.PodSpec, c corev1.Container, path string) (cm, key string) {
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(path, m.MountPath+"/")
		if !ok {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name != m.Name {
				continue
			}
			var srcs []corev1.VolumeProjection
			if v.Projected != nil {
				srcs = v.Projected.Sources
			} else if v.ConfigMap != nil {
				srcs = []corev1.VolumeProjection{{ConfigMap: &corev1.ConfigMapProjection{
					LocalObjectReference: v.ConfigMap.LocalObjectReference, Items: v.ConfigMap.Items}}}
			}
			for _, s := range srcs {
				if s.ConfigMap == nil {
					continue
				}
				for _, it := range s.ConfigMap.Items {
					if it.Path == rel {
						return s.ConfigMap.Name, it.Key
					}
				}
			}
		}
	}
	return "", ""
}

// TestKubeconfigFromKubeProxyConfigMap: kproxy reaches the API server at its real
// address through kubeadm's kube-proxy kubeconfig (never the kubernetes ClusterIP
// kproxy itself programs), and its config file comes from deploy/'s ConfigMap.
func TestKubeconfigFromKubeProxyConfigMap(t *testing.T) {
	m := load(t)
	spec := m.ds.Spec.Template.Spec
	c := kproxyContainer(t, m.ds)

	confPath := flagValue(c, "config")
	cmName, key := projected(spec, c, confPath)
	cm := m.configMaps[m.ds.Namespace+"/"+cmName]
	if cm == nil || cm.Data[key] == "" {
		t.Fatalf("--config=%s comes from ConfigMap %q key %q, which deploy/ does not hold", confPath, cmName, key)
	}
	conf, notes, err := config.Decode([]byte(cm.Data[key]))
	if err != nil {
		t.Fatalf("ConfigMap %s[%s]: %v", cmName, key, err)
	}
	if len(notes.Warnings) > 0 {
		t.Errorf("ConfigMap %s[%s]: fields kproxy ignores: %v", cmName, key, notes.Warnings)
	}

	kc := flagValue(c, "kubeconfig")
	if kc == "" || kc != conf.ClientConnection.Kubeconfig {
		t.Errorf("--kubeconfig=%q and clientConnection.kubeconfig=%q: want both set and equal", kc, conf.ClientConnection.Kubeconfig)
	}
	if cmName, key := projected(spec, c, kc); cmName != "kube-proxy" || key != "kubeconfig.conf" {
		t.Errorf("kubeconfig %s comes from ConfigMap %q key %q, want kubeadm's kube-proxy kubeconfig.conf", kc, cmName, key)
	}
	if confPath != "/var/lib/kube-proxy/config.conf" || kc != "/var/lib/kube-proxy/kubeconfig.conf" {
		t.Errorf("config %s, kubeconfig %s: want kube-proxy's paths, so kubeadm's config.conf works unchanged", confPath, kc)
	}
}

func TestServiceAccountBoundToNodeProxier(t *testing.T) {
	m := load(t)
	sa := m.ds.Namespace + "/" + m.ds.Spec.Template.Spec.ServiceAccountName
	if m.sas[sa] == nil {
		t.Fatalf("serviceAccountName %s: deploy/ holds no such ServiceAccount", sa)
	}
	for _, b := range m.bindings {
		if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != "system:node-proxier" {
			continue
		}
		for _, s := range b.Subjects {
			if s.Kind == rbacv1.ServiceAccountKind && s.Namespace+"/"+s.Name == sa {
				return
			}
		}
	}
	t.Errorf("no ClusterRoleBinding binds %s to ClusterRole system:node-proxier", sa)
}
