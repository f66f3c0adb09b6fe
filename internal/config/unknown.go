package config

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

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
