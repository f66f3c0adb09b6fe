package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// Object is one decoded manifest document.
type Object struct {
	File string
	GVK  schema.GroupVersionKind
	// Obj is a typed object: *corev1.ConfigMap, *appsv1.DaemonSet, ...
	Obj any
	// Raw is the document as written, for sending to an API server.
	Raw []byte
}

// newTyped maps the kinds deploy/ may hold to their API types; any other kind is
// an error, so a new kind gets checked before it ships.
var newTyped = map[schema.GroupVersionKind]func() any{
	{Version: "v1", Kind: "ConfigMap"}:                                              func() any { return &corev1.ConfigMap{} },
	{Version: "v1", Kind: "ServiceAccount"}:                                         func() any { return &corev1.ServiceAccount{} },
	{Group: "apps", Version: "v1", Kind: "DaemonSet"}:                               func() any { return &appsv1.DaemonSet{} },
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding"}: func() any { return &rbacv1.ClusterRoleBinding{} },
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}:        func() any { return &rbacv1.ClusterRole{} },
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"}:               func() any { return &rbacv1.Role{} },
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"}:        func() any { return &rbacv1.RoleBinding{} },
}

// Dir is the repository's deploy/ directory.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "deploy")
}

// Load strictly decodes every document of every *.yaml file in dir, in file order.
func Load(dir string) ([]Object, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []Object
	for _, f := range files {
		objs, err := loadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

func loadFile(path string) ([]Object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Object
	for i, doc := range splitDocuments(data) {
		o, err := decode(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", filepath.Base(path), i+1, err)
		}
		o.File = filepath.Base(path)
		out = append(out, o)
	}
	return out, nil
}

// splitDocuments splits a YAML stream at "---" lines, dropping empty documents.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(data, []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripComments(d []byte) []byte {
	var b bytes.Buffer
	for _, l := range bytes.Split(d, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' && !bytes.Equal(t, []byte("---")) {
			b.Write(l)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func decode(doc []byte) (Object, error) {
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return Object{}, err
	}
	gv, err := schema.ParseGroupVersion(tm.APIVersion)
	if err != nil {
		return Object{}, fmt.Errorf("apiVersion: %w", err)
	}
	gvk := gv.WithKind(tm.Kind)
	mk, ok := newTyped[gvk]
	if !ok {
		return Object{}, fmt.Errorf("kind %s: not a kind deploy/ is checked for", gvk)
	}
	obj := mk()
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return Object{}, fmt.Errorf("%s: %w", gvk.Kind, err)
	}
	return Object{GVK: gvk, Obj: obj, Raw: doc}, nil
}
