package file

import (
	"strings"
	"testing"
)

// validationError decodes one manifest and validates it, returning the problem.
func validationError(t *testing.T, doc string) string {
	t.Helper()
	res := parseFile([]byte(doc), nil)
	if len(res.objects) != 1 {
		t.Fatalf("want one object, got %+v %v", res.objects, res.unidentified)
	}
	d := res.objects[0]
	if d.err != nil {
		return d.object() + ": " + d.err.Error()
	}
	return ""
}

func TestValidateService(t *testing.T) {
	twoPorts := strings.Replace(svcWeb, "  ports:\n", "  ports:\n  - port: 81\n", 1)
	cases := []struct{ name, doc, want string }{
		{"valid", svcWeb, ""},
		{"port out of range", strings.Replace(svcWeb, "port: 80", "port: 70000", 1), "Service default/web: spec.ports[0].port: 70000 out of range"},
		{"port zero", strings.Replace(svcWeb, "port: 80", "port: 0", 1), "spec.ports[0].port: 0 out of range"},
		{"target port out of range", strings.Replace(svcWeb, "targetPort: 8080", "targetPort: 65536", 1), "spec.ports[0].targetPort: 65536 out of range"},
		{"named target port", strings.Replace(svcWeb, "targetPort: 8080", "targetPort: http", 1), ""},
		{"bad target port name", strings.Replace(svcWeb, "targetPort: 8080", "targetPort: Not_Valid", 1), "spec.ports[0].targetPort"},
		{"unknown protocol", strings.Replace(svcWeb, "targetPort: 8080", "targetPort: 8080\n    protocol: QUIC", 1), `spec.ports[0].protocol: unknown protocol "QUIC"`},
		{"bad cluster IP", strings.Replace(svcWeb, "10.96.0.10", "10.96.0.300", 1), `spec.clusterIP: invalid IP address "10.96.0.300"`},
		{"missing cluster IP", strings.Replace(svcWeb, "  clusterIP: 10.96.0.10\n", "", 1), "spec.clusterIP: required"},
		{"headless without ports", "apiVersion: v1\nkind: Service\nmetadata: {name: h}\nspec: {clusterIP: None}\n", ""},
		{"no ports", "apiVersion: v1\nkind: Service\nmetadata: {name: h}\nspec: {clusterIP: 10.0.0.1}\n", "spec.ports: required"},
		{"missing name", strings.Replace(svcWeb, "  name: web\n", "", 1), "Service in document 1: metadata.name: required"},
		{"bad name", strings.Replace(svcWeb, "name: web", "name: Web_1", 1), `metadata.name: "Web_1"`},
		{"two unnamed ports", twoPorts, "spec.ports[0].name: required when a Service has more than one port; spec.ports[1].name: required"},
		{"duplicate port", strings.Replace(twoPorts, "port: 81", "port: 80", 1), "duplicate port 80/TCP"},
		{"bad external IP", strings.Replace(svcWeb, "  ports:", "  externalIPs: [1.2.3]\n  ports:", 1), `spec.externalIPs[0]: invalid IP address "1.2.3"`},
		{"bad source range", strings.Replace(svcWeb, "  ports:", "  type: LoadBalancer\n  loadBalancerSourceRanges: [10.0.0.0/33]\n  ports:", 1), "spec.loadBalancerSourceRanges[0]: invalid CIDR"},
		{"node port on ClusterIP", strings.Replace(svcWeb, "targetPort: 8080", "targetPort: 8080\n    nodePort: 30000", 1), "spec.ports[0].nodePort: not allowed for type ClusterIP"},
		{"node port out of range", strings.Replace(svcWeb, "targetPort: 8080", "targetPort: 8080\n    nodePort: 70000", 1) + "  type: NodePort\n", "spec.ports[0].nodePort: 70000 out of range"},
		{"unknown type", svcWeb + "  type: Magic\n", `spec.type: unknown type "Magic"`},
		{"external name without name", "apiVersion: v1\nkind: Service\nmetadata: {name: e}\nspec: {type: ExternalName}\n", "spec.externalName: required"},
		{"external name", "apiVersion: v1\nkind: Service\nmetadata: {name: e}\nspec: {type: ExternalName, externalName: example.com}\n", ""},
		{"bad policy", svcWeb + "  externalTrafficPolicy: Nearby\n", `spec.externalTrafficPolicy: unknown policy "Nearby"`},
		{"bad internal policy", svcWeb + "  internalTrafficPolicy: Nearby\n", `spec.internalTrafficPolicy: unknown policy "Nearby"`},
		{"bad affinity", svcWeb + "  sessionAffinity: Sticky\n", `spec.sessionAffinity: unknown affinity "Sticky"`},
		{"bad affinity timeout", svcWeb + "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}\n", "spec.sessionAffinityConfig.clientIP.timeoutSeconds: 0 out of range"},
		{"clusterIPs mismatch", strings.Replace(svcWeb, "  ports:", "  clusterIPs: [10.96.0.11]\n  ports:", 1), "spec.clusterIPs[0]: \"10.96.0.11\" must equal spec.clusterIP"},
		{"dual stack", strings.Replace(svcWeb, "  ports:", "  clusterIPs: [10.96.0.10, \"fd00::10\"]\n  ports:", 1), ""},
		{"same family twice", strings.Replace(svcWeb, "  ports:", "  clusterIPs: [10.96.0.10, 10.96.0.11]\n  ports:", 1), "different IP families"},
		{"bad ingress IP", svcWeb + "status: {loadBalancer: {ingress: [{ip: nope}]}}\n", `status.loadBalancer.ingress[0].ip: invalid IP address "nope"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := validationError(t, c.doc)
			if c.want == "" {
				if got != "" {
					t.Fatalf("unexpected error: %s", got)
				}
				return
			}
			mustContain(t, got, c.want)
		})
	}
}

func TestValidateEndpointSlice(t *testing.T) {
	cases := []struct{ name, doc, want string }{
		{"valid", sliceWeb, ""},
		{"bad address", sliceWebAt("127.0.0.300"), `EndpointSlice default/web-1: endpoints[0].addresses[0]: invalid IP address "127.0.0.300"`},
		{"wrong family", sliceWebAt("::1"), `endpoints[0].addresses[0]: "::1" is not an IPv4 address`},
		{"no addresses", strings.Replace(sliceWeb, `- addresses: ["127.0.0.1"]`, "- addresses: []", 1), "endpoints[0].addresses: required"},
		{"port out of range", strings.Replace(sliceWeb, "port: 8080", "port: 99999", 1), "ports[0].port: 99999 out of range"},
		{"unknown protocol", strings.Replace(sliceWeb, "port: 8080", "port: 8080\n  protocol: tcp", 1), `ports[0].protocol: unknown protocol "tcp"`},
		{"no service label", strings.Replace(sliceWeb, "kubernetes.io/service-name: web", "app: web", 1), "metadata.labels[kubernetes.io/service-name]: required"},
		{"no address type", strings.Replace(sliceWeb, "addressType: IPv4\n", "", 1), "addressType: required"},
		{"bad weights", strings.Replace(sliceWeb, "  labels:", "  annotations: {kproxy.dev/weights: \"127.0.0.1=x\"}\n  labels:", 1), "metadata.annotations[kproxy.dev/weights]"},
		{"good weights", strings.Replace(sliceWeb, "  labels:", "  annotations: {kproxy.dev/weights: \"127.0.0.1=3\"}\n  labels:", 1), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := validationError(t, c.doc)
			if c.want == "" {
				if got != "" {
					t.Fatalf("unexpected error: %s", got)
				}
				return
			}
			mustContain(t, got, c.want)
		})
	}
}

func TestValidateNode(t *testing.T) {
	good := "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus:\n  addresses:\n  - {type: Hostname, address: n1}\n  - {type: InternalIP, address: 192.0.2.1}\n"
	if got := validationError(t, good); got != "" {
		t.Fatalf("unexpected error: %s", got)
	}
	bad := strings.Replace(good, "192.0.2.1", "192.0.2", 1)
	mustContain(t, validationError(t, bad), `Node n1: status.addresses[1].address: invalid IP address "192.0.2"`)
}
