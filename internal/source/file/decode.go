package file

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/yaml"

	"kproxy.dev/kproxy/internal/source"
	"kproxy.dev/kproxy/internal/source/kubescheme"
)

// Kinds this source delivers.
const (
	kindService       = "Service"
	kindEndpointSlice = "EndpointSlice"
	kindNode          = "Node"
	kindServiceCIDR   = "ServiceCIDR"
)

// Strict decoding turns a misspelt field into an error naming it, as kubectl's
// default --validate=strict does, instead of silently dropping it. The scheme
// holds only the groups kproxy reads; other built-in kinds are told from unknown
// ones by isBuiltinKind.
var deserializer = serializer.NewCodecFactory(kubescheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// objKey identifies an object across files.
type objKey struct {
	Kind, Namespace, Name string
}

func (k objKey) String() string {
	if k.Namespace == "" {
		return k.Kind + " " + k.Name
	}
	return k.Kind + " " + k.Namespace + "/" + k.Name
}

// decoded is one object found in a file: usable (err nil) or rejected.
type decoded struct {
	key objKey
	// where names the document (and List item) for objects without a usable name.
	where string
	obj   runtime.Object
	err   error
}

// object is the name used in reports: the key, or the kind and position when the
// object has no name.
func (d decoded) object() string {
	if d.key.Name == "" {
		kind := d.key.Kind
		if kind == "" {
			kind = "object"
		}
		return kind + " in " + d.where
	}
	return d.key.String()
}

// parseResult is everything found in one file.
type parseResult struct {
	objects []decoded
	// unidentified are documents so broken (or so far over a budget) that not even
	// their objects are known; the objects they held cannot be told apart from
	// deleted ones.
	unidentified []docError
	ignored      []string
	// docs caches the decoded objects of each fully valid document by its content,
	// so that editing one object of a large file does not decode all the others.
	docs map[[sha256.Size]byte][]decoded
}

// docError is a document that could not be read; object names the object at fault
// when it is known ("" otherwise).
type docError struct {
	object string
	err    error
}

func (e docError) Error() string { return e.err.Error() }

func (res *parseResult) unreadable(object, where string, err error) {
	res.unidentified = append(res.unidentified, docError{object: object, err: fmt.Errorf("%s: %v", where, err)})
}

// parseFile splits a file into YAML (or JSON) documents, checks each against the
// budgets (prescan), then decodes and validates it; documents found in prev (the
// previous version's cache) are reused as they are.
func parseFile(data []byte, prev map[[sha256.Size]byte][]decoded) parseResult {
	res := parseResult{docs: make(map[[sha256.Size]byte][]decoded, len(prev))}
	err := splitDocuments(data, func(n int, doc []byte) {
		sum := sha256.Sum256(doc)
		if objs, ok := prev[sum]; ok {
			res.objects = append(res.objects, objs...)
			res.docs[sum] = objs
			return
		}
		where := fmt.Sprintf("document %d", n)
		if object, err := prescan(doc); err != nil {
			res.unreadable(object, where, err)
			return
		}
		before, unidentified := len(res.objects), len(res.unidentified)
		res.parseDocument(doc, where)
		if len(res.unidentified) == unidentified && allGood(res.objects[before:]) {
			res.docs[sum] = res.objects[before:len(res.objects):len(res.objects)]
		}
	})
	if err != nil {
		res.unidentified = append(res.unidentified, docError{err: err})
	}
	return res
}

func allGood(objs []decoded) bool {
	for _, d := range objs {
		if d.err != nil {
			return false
		}
	}
	return true
}

type typeAndName struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

func (res *parseResult) parseDocument(doc []byte, where string) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		res.unreadable("", where, err)
		return
	}
	if s := string(bytes.TrimSpace(js)); s == "null" || s == "" {
		return // empty document, comments only
	}
	var id typeAndName
	if err := json.Unmarshal(js, &id); err != nil {
		res.unreadable("", where, fmt.Errorf("not a Kubernetes object: %v", err))
		return
	}
	if id.Kind == "" || id.APIVersion == "" {
		res.unreadable("", where, errors.New("apiVersion and kind are required"))
		return
	}
	res.decodeObject(js, id, where)
}

func (res *parseResult) decodeObject(js []byte, id typeAndName, where string) {
	d := decoded{key: keyOf(id), where: where}
	obj, gvk, err := deserializer.Decode(js, nil, nil)
	if err != nil {
		if gvk := schema.FromAPIVersionAndKind(id.APIVersion, id.Kind); runtime.IsNotRegisteredError(err) && isBuiltinKind(gvk.GroupVersion().String()+" "+gvk.Kind) {
			res.unsupported(d, &gvk, where)
			return
		}
		if runtime.IsNotRegisteredError(err) {
			d.err = fmt.Errorf("kind: unknown kind %q in %s (want Service, EndpointSlice, Node, ServiceCIDR or List)", source.Clip(id.Kind), source.Clip(id.APIVersion))
			res.add(d)
			return
		}
		if obj == nil || !runtime.IsStrictDecodingError(err) {
			d.err = err
			res.add(d)
			return
		}
		d.err = err // unknown or duplicate field: decoded, but rejected
	}
	switch o := obj.(type) {
	case *v1.List:
		if d.err != nil {
			res.unreadable("", where, d.err)
			return
		}
		res.decodeListItems(o, where)
	case *v1.Service, *discovery.EndpointSlice, *v1.Node, *networkingv1.ServiceCIDR:
		d.obj = obj
		res.add(d)
	default:
		res.unsupported(d, gvk, where)
	}
}

func (res *parseResult) decodeListItems(list *v1.List, where string) {
	for i, item := range list.Items {
		itemWhere := fmt.Sprintf("%s item %d", where, i+1)
		var id typeAndName
		if err := json.Unmarshal(item.Raw, &id); err != nil || id.Kind == "" || id.APIVersion == "" {
			res.unreadable("", itemWhere, errors.New("apiVersion and kind are required"))
			continue
		}
		res.decodeObject(item.Raw, id, itemWhere)
	}
}

// unsupported rejects a Service, EndpointSlice or Node of an API version kproxy does
// not read (silently ignoring it would drop a Service), and ignores other kinds, so
// that a wider kubectl dump still works.
func (res *parseResult) unsupported(d decoded, gvk *schema.GroupVersionKind, where string) {
	want := map[string]string{
		kindService:       "v1",
		kindEndpointSlice: "discovery.k8s.io/v1",
		kindNode:          "v1",
		kindServiceCIDR:   "networking.k8s.io/v1",
		"List":            "v1",
	}
	if v, ours := want[d.key.Kind]; ours {
		d.err = fmt.Errorf("apiVersion: %s %s not supported, want %s", d.key.Kind, gvk.GroupVersion(), v)
		res.add(d)
		return
	}
	res.ignored = append(res.ignored, fmt.Sprintf("%s (%s)", d.object(), where))
}

func (res *parseResult) add(d decoded) {
	if d.obj != nil && d.err == nil {
		setDefaultNamespace(d.obj)
		d.err = validateObject(d.obj)
	}
	res.objects = append(res.objects, d)
}

func keyOf(id typeAndName) objKey {
	k := objKey{Kind: id.Kind, Namespace: id.Metadata.Namespace, Name: id.Metadata.Name}
	if k.Kind == kindNode || k.Kind == kindServiceCIDR {
		k.Namespace = ""
	} else if k.Namespace == "" {
		k.Namespace = v1.NamespaceDefault
	}
	return k
}

// setDefaultNamespace puts namespaced objects without one in "default", as kubectl
// apply does.
func setDefaultNamespace(obj runtime.Object) {
	switch o := obj.(type) {
	case *v1.Service:
		if o.Namespace == "" {
			o.Namespace = v1.NamespaceDefault
		}
	case *discovery.EndpointSlice:
		if o.Namespace == "" {
			o.Namespace = v1.NamespaceDefault
		}
	case *v1.Node:
		o.Namespace = ""
	case *networkingv1.ServiceCIDR:
		o.Namespace = ""
	}
}
