package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	kpconfig "k8s.io/kube-proxy/config/v1alpha1"
	"sigs.k8s.io/yaml"
)

// removedFields are fields older kube-proxy versions took that v1alpha1 no longer
// has (or keeps unused): kube-proxy decodes them leniently and goes on.
var removedFields = map[string]string{
	"resourceContainer": "removed in kube-proxy 1.16; ignored",
	"udpIdleTimeout":    "removed with the userspace proxier in kube-proxy 1.26; ignored",
	"portRange":         "unused since the userspace proxier was removed in kube-proxy 1.26; ignored",
}

// fieldWarnings names every field of the document kproxy ignores: unknown ones,
// removed ones and keys given twice (the last one wins, as in kube-proxy's lenient
// decoding).
func fieldWarnings(data []byte, doc map[string]any) []Warning {
	var out []Warning
	for _, path := range unknownFields(data, reflect.TypeOf(&kpconfig.KubeProxyConfiguration{})) {
		if _, removed := removedFields[path]; removed {
			continue
		}
		out = append(out, Warning{Field: truncate(path, 128), Msg: "unknown field; ignored"})
	}
	for name, msg := range removedFields {
		if v, ok := doc[name]; ok && !isZero(v) {
			out = append(out, Warning{Field: name, Msg: msg})
		}
	}
	if err := yaml.UnmarshalStrict(data, &kpconfig.KubeProxyConfiguration{}); err != nil {
		for _, key := range duplicateKeys(err.Error()) {
			out = append(out, Warning{Field: truncate(key, 128), Msg: "given more than once; the last value is used"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

var duplicateKey = regexp.MustCompile(`key "([^"]*)" already set`)

func duplicateKeys(msg string) []string {
	var keys []string
	for _, m := range duplicateKey.FindAllStringSubmatch(msg, -1) {
		keys = append(keys, m[1])
	}
	return keys
}

func isZero(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case float64:
		return x == 0
	case bool:
		return !x
	}
	return false
}

// zeroDefaulted lists the sync periods given as 0, which are out of range
// (they must be greater than 0) and take kube-proxy's default instead.
func zeroDefaulted(doc map[string]any) []string {
	var out []string
	check := func(path string, v any, def fmt.Stringer) {
		if s, ok := v.(string); ok && isZeroDuration(s) {
			out = append(out, path+"="+def.String())
		}
	}
	for _, section := range []string{"iptables", "ipvs", "nftables"} {
		if m, ok := doc[section].(map[string]any); ok {
			check(section+".syncPeriod", m["syncPeriod"], DefaultSyncPeriod)
		}
	}
	check("configSyncPeriod", doc["configSyncPeriod"], DefaultConfigSyncPeriod)
	return out
}

func isZeroDuration(s string) bool {
	d, err := time.ParseDuration(s)
	return err == nil && d == 0
}

// unknownFields lists the dotted paths of fields in data that target has no place
// for. encoding/json's strict mode names only the last path element, which is not
// enough to find "syncPeriodd" in a long file.
func unknownFields(data []byte, target reflect.Type) []string {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil // the strict decoder reports the syntax error
	}
	var doc any
	if err := json.Unmarshal(js, &doc); err != nil {
		return nil
	}
	var out []string
	walkUnknown(doc, target, "", &out)
	sort.Strings(out)
	return out
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func walkUnknown(v any, t reflect.Type, path string, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return // decodes itself, e.g. metav1.Duration
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return
		}
		fields := jsonFields(t)
		for k, child := range obj {
			ft, known := fields[k]
			if !known {
				*out = append(*out, join(path, k))
				continue
			}
			walkUnknown(child, ft, join(path, k), out)
		}
	case reflect.Slice, reflect.Array:
		if list, ok := v.([]any); ok {
			for _, item := range list {
				walkUnknown(item, t.Elem(), path+"[]", out)
			}
		}
	case reflect.Map:
		if obj, ok := v.(map[string]any); ok {
			for k, child := range obj {
				walkUnknown(child, t.Elem(), join(path, k), out)
			}
		}
	}
}

// jsonFields maps JSON names to field types, flattening embedded structs the way
// encoding/json does.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}
