package kube

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
)

// The REST client asks for what client-go's generated clients ask for: the
// group's path, the tweaked selectors, protobuf first, and decodes the lists.
func TestRESTClientListsEachResourceAtItsPath(t *testing.T) {
	var mu sync.Mutex
	var got []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		meta := metav1.ListMeta{ResourceVersion: "7"}
		var body any
		switch r.URL.Path {
		case "/api/v1/services":
			body = corev1.ServiceList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceList"}, ListMeta: meta,
				Items: []corev1.Service{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}}}}
		case "/apis/discovery.k8s.io/v1/endpointslices":
			body = discoveryv1.EndpointSliceList{TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSliceList"}, ListMeta: meta,
				Items: []discoveryv1.EndpointSlice{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-1"}}}}
		case "/api/v1/nodes":
			body = corev1.NodeList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "NodeList"}, ListMeta: meta,
				Items: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}}}
		case "/apis/networking.k8s.io/v1/servicecidrs":
			body = networkingv1.ServiceCIDRList{TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "ServiceCIDRList"}, ListMeta: meta,
				Items: []networkingv1.ServiceCIDR{{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"}}}}
		case "/version":
			body = map[string]string{"gitVersion": "v1.37.2"}
		default:
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(body)
	}))
	defer srv.Close()
	c, err := BuildClientWith(ClientOptions{Master: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	proxied := func(o *metav1.ListOptions) { o.LabelSelector = proxyLabelSelector() }
	cases := []struct {
		resource, path, query, name string
		tweak                       func(*metav1.ListOptions)
	}{
		{ResourceServices, "/api/v1/services", "labelSelector=" + proxyLabelSelector(), "web", proxied},
		{ResourceEndpointSlices, "/apis/discovery.k8s.io/v1/endpointslices", "labelSelector=" + proxyLabelSelector(), "web-1", proxied},
		{ResourceNodes, "/api/v1/nodes", "fieldSelector=metadata.name=node-a", "node-a",
			func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=node-a" }},
		{ResourceServiceCIDRs, "/apis/networking.k8s.io/v1/servicecidrs", "", "kubernetes", nil},
	}
	for _, tc := range cases {
		mu.Lock()
		got = nil
		mu.Unlock()
		obj, err := cache.ToListerWatcherWithContext(c.ListerWatcher(tc.resource, tc.tweak)).ListWithContext(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			t.Fatalf("%s: list: %v", tc.resource, err)
		}
		items, err := metaItems(obj)
		if err != nil || len(items) != 1 || items[0] != tc.name {
			t.Errorf("%s: items %v (%v), want [%s]", tc.resource, items, err, tc.name)
		}
		mu.Lock()
		if len(got) != 1 {
			t.Fatalf("%s: %d requests", tc.resource, len(got))
		}
		r := got[0]
		mu.Unlock()
		if r.URL.Path != tc.path {
			t.Errorf("%s: path %s, want %s", tc.resource, r.URL.Path, tc.path)
		}
		q := r.URL.Query()
		if tc.query != "" {
			k, v, _ := strings.Cut(tc.query, "=")
			if q.Get(k) != v {
				t.Errorf("%s: %s=%q, want %q (query %s)", tc.resource, k, q.Get(k), v, r.URL.RawQuery)
			}
		}
		if q.Get("resourceVersion") != "0" {
			t.Errorf("%s: resourceVersion not passed: %s", tc.resource, r.URL.RawQuery)
		}
		if a := r.Header.Get("Accept"); !strings.HasPrefix(a, "application/vnd.kubernetes.protobuf") {
			t.Errorf("%s: Accept %q, want protobuf first", tc.resource, a)
		}
		if ua := r.Header.Get("User-Agent"); ua != "kproxy" {
			t.Errorf("%s: User-Agent %q", tc.resource, ua)
		}
	}
	if err := c.Version(ctx); err != nil {
		t.Errorf("Version: %v", err)
	}
}

func metaItems(obj runtime.Object) ([]string, error) {
	objs, err := meta.ExtractList(obj)
	var names []string
	for _, o := range objs {
		a, err := meta.Accessor(o)
		if err != nil {
			return nil, err
		}
		names = append(names, a.GetName())
	}
	return names, err
}
