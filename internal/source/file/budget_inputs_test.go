package file

import (
	"fmt"
	"strings"
)

// Generators of inputs over (and just within) the budgets, shared by the tests.

// deepBlockMap nests n block mappings under spec.
func deepBlockMap(n int) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Service\nmetadata:\n  name: deep\nspec:\n")
	for i := 0; i < n; i++ {
		b.WriteString(strings.Repeat(" ", 2+i))
		b.WriteString("a:\n")
	}
	return b.String()
}

// deepFlow nests n flow collections under spec.
func deepFlow(n int) string {
	return "apiVersion: v1\nkind: Service\nmetadata: {name: deep}\nspec: " +
		strings.Repeat("{a: [", n/2) + "1" + strings.Repeat("]}", n/2) + "\n"
}

// deepDashes nests n block sequences on one line ("- - - - x").
func deepDashes(n int) string {
	return "apiVersion: v1\nkind: Service\nmetadata: {name: deep}\nspec:\n" + strings.Repeat("- ", n) + "x\n"
}

// aliasBomb is a "billion laughs": levels anchors, each aliasing the previous one
// nine times.
func aliasBomb(levels int, flow bool) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Service\nmetadata: {name: bomb}\n")
	b.WriteString(`a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]` + "\n")
	for i := 1; i <= levels; i++ {
		if flow {
			fmt.Fprintf(&b, "a%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d,", i-1), 9), ","))
			continue
		}
		fmt.Fprintf(&b, "a%d: &a%d\n", i, i)
		for j := 0; j < 9; j++ {
			fmt.Fprintf(&b, "- *a%d\n", i-1)
		}
	}
	return b.String()
}

// bigSlice is an EndpointSlice of n endpoints, keys sorted as kubectl prints them
// (endpoints before kind and metadata).
func bigSlice(name string, n int) string {
	var b strings.Builder
	b.WriteString("addressType: IPv4\napiVersion: discovery.k8s.io/v1\nendpoints:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "- addresses:\n  - 10.%d.%d.%d\n  conditions:\n    ready: true\n", i>>16&255, i>>8&255, i&255)
	}
	fmt.Fprintf(&b, "kind: EndpointSlice\nmetadata:\n  labels:\n    kubernetes.io/service-name: web\n  name: %s\n  namespace: default\nports:\n- port: 8080\n", name)
	return b.String()
}

// bigSliceJSON is bigSlice as one line of JSON.
func bigSliceJSON(name string, n int) string {
	eps := make([]string, n)
	for i := range eps {
		eps[i] = fmt.Sprintf(`{"addresses":["10.%d.%d.%d"],"conditions":{"ready":true}}`, i>>16&255, i>>8&255, i&255)
	}
	return `{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"` + name +
		`","namespace":"shop","labels":{"kubernetes.io/service-name":"web"}},"addressType":"IPv4","endpoints":[` +
		strings.Join(eps, ",") + `],"ports":[{"port":8080}]}`
}
