package kube

import (
	"context"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"kproxy.dev/kproxy/internal/source/sourcetest"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakekube"
)

const wait = 5 * time.Second

func service(ns, name string, labels map[string]string) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: v1.ServiceSpec{
			ClusterIP: "10.96.0.10",
			Ports:     []v1.ServicePort{{Port: 80, Protocol: v1.ProtocolTCP}},
		},
	}
}

func slice(ns, name, svc string, extra map[string]string) *discovery.EndpointSlice {
	labels := map[string]string{discovery.LabelServiceName: svc}
	for k, v := range extra {
		labels[k] = v
	}
	port := int32(8080)
	return &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		AddressType: discovery.AddressTypeIPv4,
		Endpoints:   []discovery.Endpoint{{Addresses: []string{"10.0.0.1"}}},
		Ports:       []discovery.EndpointPort{{Port: &port}},
	}
}

func node(name, ip string) *v1.Node {
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status:     v1.NodeStatus{Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: ip}}},
	}
}

type fixture struct {
	t      *testing.T
	client *fake.Clientset
	h      *sourcetest.Recorder
}

// start runs a kube Source on a fake clientset holding objs, until the test ends.
// It returns once synced was called and every informer's watch is open, so that
// later changes cannot fall between the initial list and the watch (the fake
// clientset's watch does not replay from a resourceVersion).
func start(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objs...)
	var watches atomic.Int32
	// Open the watch here, so that it is registered before it is counted.
	client.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w, err := client.Tracker().Watch(a.GetResource(), a.GetNamespace(), metav1.ListOptions{})
		watches.Add(1)
		return true, w, err
	})
	src, err := New(Options{Client: fakekube.New(client), NodeName: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, client: client, h: sourcetest.NewRecorder()}
	ctx, cancel := context.WithCancel(context.Background())
	synced := make(chan struct{})
	var syncedCalls atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx, f.h, func() {
			syncedCalls.Add(1)
			close(synced)
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(wait):
			t.Error("Run did not return after cancel")
		}
		if n := syncedCalls.Load(); n != 1 {
			t.Errorf("synced called %d times", n)
		}
	})
	select {
	case <-synced:
	case <-time.After(wait):
		t.Fatal("synced not called")
	}
	// Services, EndpointSlices, the Node and ServiceCIDRs.
	f.h.WaitFor(t, wait, "four watches", func() bool { return watches.Load() >= 4 })
	return f
}

func TestInitialStateBeforeSynced(t *testing.T) {
	f := start(t,
		service("default", "web", nil),
		service("default", "other-proxy", map[string]string{state.LabelServiceProxyName: "other"}),
		slice("default", "web-1", "web", nil),
		slice("default", "headless-1", "headless", map[string]string{v1.IsHeadlessService: ""}),
		slice("default", "other-proxy-1", "other-proxy", map[string]string{state.LabelServiceProxyName: "other"}),
		node("node-a", "192.0.2.1"),
		node("node-b", "192.0.2.2"),
	)
	want := []string{"EndpointSlice default/web-1", "Node node-a", "Service default/web"}
	// Everything the handler holds was delivered before synced returned.
	if got := f.h.Keys(); !reflect.DeepEqual(got, want) {
		t.Fatalf("initial objects %v, want %v", got, want)
	}
}

func TestServiceEvents(t *testing.T) {
	f := start(t)
	svcs := f.client.CoreV1().Services("default")
	ctx := context.Background()
	if _, err := svcs.Create(ctx, service("default", "web", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.h.WaitFor(t, wait, "service added", func() bool { return f.h.Service("default/web") != nil })

	upd := service("default", "web", nil)
	upd.Spec.Ports[0].Port = 81
	if _, err := svcs.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.h.WaitFor(t, wait, "service updated", func() bool {
		s := f.h.Service("default/web")
		return s != nil && s.Spec.Ports[0].Port == 81
	})

	// Gaining the service-proxy-name label hands the Service to another proxy.
	claimed := upd.DeepCopy()
	claimed.Labels = map[string]string{state.LabelServiceProxyName: "other"}
	if _, err := svcs.Update(ctx, claimed, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.h.WaitFor(t, wait, "claimed service removed", func() bool { return f.h.Service("default/web") == nil })

	if _, err := svcs.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.h.WaitFor(t, wait, "released service back", func() bool { return f.h.Service("default/web") != nil })
	if err := svcs.Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.h.WaitFor(t, wait, "service deleted", func() bool { return f.h.Service("default/web") == nil })
}

func TestEndpointSliceEvents(t *testing.T) {
	f := start(t)
	slices := f.client.DiscoveryV1().EndpointSlices("default")
	ctx := context.Background()
	if _, err := slices.Create(ctx, slice("default", "web-1", "web", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.h.WaitFor(t, wait, "slice added", func() bool { return f.h.Slice("default/web-1") != nil })

	upd := slice("default", "web-1", "web", nil)
	upd.Endpoints[0].Addresses = []string{"10.0.0.2"}
	if _, err := slices.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.h.WaitFor(t, wait, "slice updated", func() bool {
		es := f.h.Slice("default/web-1")
		return es != nil && es.Endpoints[0].Addresses[0] == "10.0.0.2"
	})

	headless := slice("default", "web-1", "web", map[string]string{v1.IsHeadlessService: ""})
	if _, err := slices.Update(ctx, headless, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.h.WaitFor(t, wait, "headless slice removed", func() bool { return f.h.Slice("default/web-1") == nil })

	if _, err := slices.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.h.WaitFor(t, wait, "slice back", func() bool { return f.h.Slice("default/web-1") != nil })
	if err := slices.Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.h.WaitFor(t, wait, "slice deleted", func() bool { return f.h.Slice("default/web-1") == nil })
}

func TestNodeEvents(t *testing.T) {
	f := start(t)
	nodes := f.client.CoreV1().Nodes()
	ctx := context.Background()
	if _, err := nodes.Create(ctx, node("node-b", "192.0.2.2"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes.Create(ctx, node("node-a", "192.0.2.1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.h.WaitFor(t, wait, "node added", func() bool { return f.h.Node("node-a") != nil })
	if _, err := nodes.Update(ctx, node("node-a", "192.0.2.9"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.h.WaitFor(t, wait, "node updated", func() bool {
		n := f.h.Node("node-a")
		return n != nil && n.Status.Addresses[0].Address == "192.0.2.9"
	})
	if err := nodes.Delete(ctx, "node-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.h.WaitFor(t, wait, "node deleted", func() bool { return f.h.Node("node-a") == nil })
	if f.h.Node("node-b") != nil {
		t.Fatal("another node reached the handler")
	}
}

func TestProxyLabelSelector(t *testing.T) {
	want := "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name"
	if got := proxyLabelSelector(); got != want {
		t.Fatalf("selector %q, want %q", got, want)
	}
}

func TestNewRequiresClient(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("no error without a client")
	}
}
