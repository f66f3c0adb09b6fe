package kube

import (
	"context"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func serviceCIDR(name string, cidrs ...string) *networkingv1.ServiceCIDR {
	return &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: networkingv1.ServiceCIDRSpec{CIDRs: cidrs}}
}

func TestServiceCIDREvents(t *testing.T) {
	f := start(t, serviceCIDR("kubernetes", "10.96.0.0/16"))
	f.h.WaitFor(t, wait, "initial ServiceCIDR", func() bool { return f.h.ServiceCIDR("kubernetes") != nil })
	cidrs := f.client.NetworkingV1().ServiceCIDRs()
	ctx := context.Background()
	if _, err := cidrs.Create(ctx, serviceCIDR("extra", "10.97.0.0/16"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.h.WaitFor(t, wait, "ServiceCIDR added", func() bool { return f.h.ServiceCIDR("extra") != nil })
	if _, err := cidrs.Update(ctx, serviceCIDR("extra", "10.97.0.0/16", "fd00:97::/112"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.h.WaitFor(t, wait, "ServiceCIDR updated", func() bool {
		sc := f.h.ServiceCIDR("extra")
		return sc != nil && len(sc.Spec.CIDRs) == 2
	})
	if err := cidrs.Delete(ctx, "extra", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.h.WaitFor(t, wait, "ServiceCIDR deleted", func() bool { return f.h.ServiceCIDR("extra") == nil })
}
