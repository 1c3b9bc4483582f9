// Command kubetypes writes meshplan/kube_types.json: for every built-in Kubernetes kind, the JSON
// fields of its Go type, and which of them the typed round trip drops when empty.
//
// The kubernetes provider's Check normalizes a built-in object's inputs by converting them to the
// typed Go object and back (pulumi-kubernetes provider/pkg/clients/unstructured.go, Normalize, with
// the scheme of k8s.io/client-go/kubernetes/scheme), which drops unknown fields and `omitempty`
// fields that are empty (k8s.io/apimachinery/pkg/runtime/converter.go, isZero). meshplan repeats
// that in Python (meshplan/provider_check.py) from this table, so its plans show the inputs the
// engine records. The module versions in go.mod are the ones the provider build of
// hack/toolchain.versions requires; regenerate after changing them:
//
//	cd hack/kubetypes && go run . > ../../meshplan/kube_types.json
package main

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
)

type field struct {
	Name      string `json:"name"`
	OmitEmpty bool   `json:"omitEmpty,omitempty"`
	Type      any    `json:"type"`
}

type table struct {
	Source string             `json:"source"`
	Kinds  map[string]string  `json:"kinds"`
	Types  map[string][]field `json:"types"`
}

var (
	quantity    = reflect.TypeOf(resource.Quantity{})
	intOrString = reflect.TypeOf(intstr.IntOrString{})
	unmarshaler = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()
)

func typeName(t reflect.Type) string {
	path := strings.TrimPrefix(t.PkgPath(), "k8s.io/")
	path = strings.TrimPrefix(path, "api/")
	return path + "." + t.Name()
}

// spec describes t the way converter.go treats it: scalars by JSON kind, custom (un)marshalers as
// opaque values ("any", except the quantity's canonical form), structs by name.
func spec(t reflect.Type, types map[string][]field) any {
	switch {
	case t == quantity:
		return "quantity"
	case t == intOrString:
		return "any"
	case t.Kind() != reflect.Pointer && (t.Implements(unmarshaler) || reflect.PointerTo(t).Implements(unmarshaler)):
		return "any" // Time, Duration, RawExtension, JSON...: JSON round trip, kept as given
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "int"
	case reflect.Float32, reflect.Float64:
		return "float"
	case reflect.Interface:
		return "any"
	case reflect.Pointer:
		return map[string]any{"pointer": spec(t.Elem(), types)}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "bytes"
		}
		return map[string]any{"list": spec(t.Elem(), types)}
	case reflect.Map:
		return map[string]any{"map": spec(t.Elem(), types)}
	case reflect.Struct:
		name := typeName(t)
		if _, seen := types[name]; !seen {
			types[name] = nil // reserve, for recursive types
			types[name] = fields(t, types)
		}
		return name
	}
	panic("unexpected kind " + t.Kind().String() + " of " + t.String())
}

func fields(t reflect.Type, types map[string][]field) []field {
	var result []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, omitEmpty := f.Name, false
		if tag := f.Tag.Get("json"); tag != "" {
			items := strings.Split(tag, ",")
			name = items[0]
			for _, item := range items[1:] {
				omitEmpty = omitEmpty || item == "omitempty"
			}
		} else {
			name = strings.ToLower(name[:1]) + name[1:]
		}
		if name == "-" {
			continue
		}
		if name == "" { // inlined, as TypeMeta is
			result = append(result, fields(f.Type, types)...)
			continue
		}
		result = append(result, field{Name: name, OmitEmpty: omitEmpty, Type: spec(f.Type, types)})
	}
	return result
}

func main() {
	out := table{
		Source: "k8s.io/client-go/kubernetes/scheme of the versions in hack/kubetypes/go.mod",
		Kinds:  map[string]string{},
		Types:  map[string][]field{},
	}
	var gvks []string
	for gvk, t := range scheme.Scheme.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal || strings.HasSuffix(gvk.Kind, "List") || gvk.Kind == "WatchEvent" {
			continue
		}
		obj := reflect.New(t).Interface()
		if _, ok := obj.(metav1.Object); !ok {
			continue // not an object the provider's FromUnstructured accepts (options, events)
		}
		key := gvk.GroupVersion().String() + "/" + gvk.Kind
		out.Kinds[key] = spec(t, out.Types).(string)
		gvks = append(gvks, key)
	}
	sort.Strings(gvks)
	// One kind or type a line, in sorted order, so a regeneration reviews as a short diff.
	var b strings.Builder
	line := func(key string, value any, last bool) {
		encoded, err := json.Marshal(value)
		if err != nil {
			panic(err)
		}
		keyJSON, _ := json.Marshal(key)
		b.WriteString("  " + string(keyJSON) + ": " + string(encoded))
		if !last {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	source, _ := json.Marshal(out.Source)
	b.WriteString("{\n \"source\": " + string(source) + ",\n \"kinds\": {\n")
	for i, key := range gvks {
		line(key, out.Kinds[key], i == len(gvks)-1)
	}
	b.WriteString(" },\n \"types\": {\n")
	names := make([]string, 0, len(out.Types))
	for name := range out.Types {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		line(name, out.Types[name], i == len(names)-1)
	}
	b.WriteString(" }\n}\n")
	if _, err := os.Stdout.WriteString(b.String()); err != nil {
		panic(err)
	}
}
