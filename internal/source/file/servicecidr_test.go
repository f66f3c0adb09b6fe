package file

import (
	"strings"
	"testing"
)

const cidrDefault = `apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata:
  name: kubernetes
spec:
  cidrs: ["10.96.0.0/16", "fd00:96::/112"]
`

func TestValidateServiceCIDR(t *testing.T) {
	cases := []struct{ name, doc, want string }{
		{"valid", cidrDefault, ""},
		{"namespace ignored", strings.Replace(cidrDefault, "  name: kubernetes\n", "  name: kubernetes\n  namespace: kube-system\n", 1), ""},
		{"bad prefix", strings.Replace(cidrDefault, "10.96.0.0/16", "10.96.0.0/33", 1), `ServiceCIDR kubernetes: spec.cidrs[0]: invalid CIDR "10.96.0.0/33"`},
		{"not canonical", strings.Replace(cidrDefault, "10.96.0.0/16", "10.96.1.0/16", 1), `spec.cidrs[0]: "10.96.1.0/16" is not in canonical form (want 10.96.0.0/16)`},
		{"same family twice", strings.Replace(cidrDefault, "fd00:96::/112", "10.97.0.0/16", 1), "spec.cidrs: the two prefixes must be of different IP families"},
		{"none", strings.Replace(cidrDefault, `["10.96.0.0/16", "fd00:96::/112"]`, "[]", 1), "spec.cidrs: required"},
		{"three", strings.Replace(cidrDefault, `"fd00:96::/112"]`, `"fd00:96::/112", "10.97.0.0/16"]`, 1), "spec.cidrs: at most two prefixes"},
		{"mapped", strings.Replace(cidrDefault, "fd00:96::/112", "::ffff:10.0.0.0/104", 1), "spec.cidrs[1]: \"::ffff:10.0.0.0/104\": IPv4-mapped"},
		{"old API version", strings.Replace(cidrDefault, "networking.k8s.io/v1", "networking.k8s.io/v1beta1", 1), "apiVersion: ServiceCIDR networking.k8s.io/v1beta1 not supported, want networking.k8s.io/v1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := validationError(t, c.doc)
			if c.want == "" && got != "" || !strings.Contains(got, c.want) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestStoreServiceCIDRs(t *testing.T) {
	f := newStoreFixture(t)
	f.wantCalls(f.write(map[string]string{"cidr.yaml": cidrDefault}), "upsert ServiceCIDR kubernetes")
	if sc := f.h.ServiceCIDR("kubernetes"); sc == nil || sc.Namespace != "" || len(sc.Spec.CIDRs) != 2 {
		t.Fatalf("delivered %+v", sc)
	}
	// An invalid edit keeps the last good version and is reported once.
	bad := strings.Replace(cidrDefault, "10.96.0.0/16", "10.96.0.0/99", 1)
	f.wantCalls(f.write(map[string]string{"cidr.yaml": bad}))
	f.wantRejects(1)
	mustContain(t, f.log.String(), `cidr.yaml: ServiceCIDR kubernetes: spec.cidrs[0]: invalid CIDR \"10.96.0.0/99\"`)
	if got := f.h.ServiceCIDR("kubernetes").Spec.CIDRs[0]; got != "10.96.0.0/16" {
		t.Fatalf("after a bad edit the handler has %s, want the last good 10.96.0.0/16", got)
	}
	f.wantCalls(f.write(map[string]string{"cidr.yaml": ""}), "delete ServiceCIDR kubernetes")
}
