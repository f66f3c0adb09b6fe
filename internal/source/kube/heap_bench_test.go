package kube

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakekube"
)

// heapObjects is n Services with e endpoints each, shaped like what an apiserver
// serves: managedFields, kubectl's last-applied annotation, a selector, pod
// references on endpoints, the trigger time, the slices' owner reference.
func heapObjects(n, e int) []k8sruntime.Object {
	objs := make([]k8sruntime.Object, 0, 2*n)
	applied := `{"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"labels":{"app":"svc"},"name":"svc","namespace":"bench"},"spec":{"ports":[{"name":"http","port":80,"protocol":"TCP","targetPort":8080}],"selector":{"app":"svc"}}}`
	fields := metav1.ManagedFieldsEntry{Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate,
		APIVersion: "v1", FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(strings.Repeat(`{"f:spec":{"f:ports":{}}}`, 12))}
	for i := range n {
		name := fmt.Sprintf("svc-%06d", i)
		objs = append(objs, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name, Labels: map[string]string{"app": name},
				Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": applied},
				ManagedFields: []metav1.ManagedFieldsEntry{fields}},
			Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, ClusterIP: fmt.Sprintf("10.96.%d.%d", (i+1)>>8, (i+1)&255),
				ClusterIPs: []string{fmt.Sprintf("10.96.%d.%d", (i+1)>>8, (i+1)&255)}, Selector: map[string]string{"app": name},
				Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}},
		})
		es := &discovery.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name + "-abcde",
				Labels:       map[string]string{discovery.LabelServiceName: name, discovery.LabelManagedBy: "endpointslice-controller.k8s.io"},
				GenerateName: name + "-",
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: name,
					UID: "7d3e1f2a-9b8c-4d5e-a6f7-0123456789ab", Controller: ptr(true), BlockOwnerDeletion: ptr(true)}},
				Annotations:   map[string]string{state.TriggerTimeAnnotation: "2026-12-06T19:00:00Z"},
				ManagedFields: []metav1.ManagedFieldsEntry{fields}},
			AddressType: discovery.AddressTypeIPv4,
			Ports:       []discovery.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080)), Protocol: ptr(v1.ProtocolTCP)}},
		}
		for j := range e {
			k := i*e + j
			es.Endpoints = append(es.Endpoints, discovery.Endpoint{
				Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", 128+k>>16, (k>>8)&255, k&255)},
				Conditions: discovery.EndpointConditions{Ready: ptr(true), Serving: ptr(true), Terminating: ptr(false)},
				NodeName:   ptr(fmt.Sprintf("node-%d", k%100)), Zone: ptr("zone-a"),
				TargetRef: &v1.ObjectReference{Kind: "Pod", Namespace: "bench", Name: fmt.Sprintf("%s-%d-xyz12", name, j),
					UID: "0f2c5a3e-1d2b-4c5d-9e8f-0123456789ab"},
			})
		}
		objs = append(objs, es)
	}
	return objs
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkInformerHeap is the heap the informers and the Tracker hold for 10,000
// Services x 3 endpoints from the fake clientset, with and without the transforms
// (the fake clientset's own copies are measured before the source starts and
// subtracted).
//
//	go test ./internal/source/kube -run '^$' -bench InformerHeap -benchtime 1x -count 3
func BenchmarkInformerHeap(b *testing.B) {
	objs := heapObjects(10000, 3)
	for _, mode := range []string{"whole", "transformed"} {
		b.Run(mode, func(b *testing.B) {
			for range b.N {
				client := fake.NewClientset(objs...)
				before := heapInUse()
				src, err := New(Options{Client: fakekube.New(client), Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				src.noTransform = mode == "whole"
				tr := state.NewTracker(state.Options{NodeName: "node-a"})
				ctx, cancel := context.WithCancel(context.Background())
				synced := make(chan struct{})
				done := make(chan error, 1)
				go func() { done <- src.Run(ctx, tr, func() { close(synced) }) }()
				select {
				case <-synced:
				case <-time.After(5 * time.Minute):
					b.Fatal("not synced")
				}
				snap, _ := tr.Snapshot()
				if snap.Len() != 10000 {
					b.Fatalf("%d ServicePorts", snap.Len())
				}
				after := heapInUse()
				b.ReportMetric(float64(after-before)/(1<<20), "heap-MiB")
				runtime.KeepAlive(snap)
				cancel()
				<-done
				runtime.KeepAlive(client)
			}
		})
	}
}
