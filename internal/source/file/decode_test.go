package file

import (
	"os"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

func TestParseKubectlDump(t *testing.T) {
	data, err := os.ReadFile("testdata/kubectl-dump.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res := parseFile(data, nil)
	if len(res.unidentified) > 0 {
		t.Fatalf("unidentified: %v", res.unidentified)
	}
	var keys []string
	for _, d := range res.objects {
		if d.err != nil {
			t.Errorf("%s: %v", d.object(), d.err)
		}
		if err := validateObject(d.obj); err != nil {
			t.Errorf("%s: validate: %v", d.object(), err)
		}
		keys = append(keys, d.key.String())
	}
	want := "Service default/kubernetes,Service kube-system/kube-dns,Service shop/db,Service shop/web," +
		"EndpointSlice default/kubernetes,EndpointSlice kube-system/kube-dns-x7k2p,EndpointSlice shop/db-abcde,EndpointSlice shop/web-1"
	if got := strings.Join(keys, ","); got != want {
		t.Fatalf("objects:\n got %s\nwant %s", got, want)
	}
	dns := res.objects[1].obj.(*v1.Service)
	if len(dns.Spec.Ports) != 3 || dns.Spec.Ports[0].Protocol != v1.ProtocolUDP {
		t.Fatalf("kube-dns ports decoded wrong: %+v", dns.Spec.Ports)
	}
	es := res.objects[5].obj.(*discovery.EndpointSlice)
	if len(es.Endpoints) != 2 || *es.Endpoints[1].NodeName != "kind-control-plane" {
		t.Fatalf("kube-dns slice decoded wrong: %+v", es.Endpoints)
	}
}

func TestParseMultiDocumentYAMLAndJSON(t *testing.T) {
	node := "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus:\n  addresses:\n  - {type: InternalIP, address: 192.0.2.1}\n"
	yml := "# leading comment\n---\n" + svcWeb + "---\n" + sliceWeb + "---\n" + node + "---\n"
	res := parseFile([]byte(yml), nil)
	if len(res.objects) != 3 || len(res.unidentified) != 0 {
		t.Fatalf("got %d objects, unidentified %v", len(res.objects), res.unidentified)
	}
	if _, ok := res.objects[2].obj.(*v1.Node); !ok || res.objects[2].key.Namespace != "" {
		t.Fatalf("node: %#v", res.objects[2])
	}
	js := `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"},"spec":{"clusterIP":"10.0.0.1","ports":[{"port":1}]}}]}`
	res = parseFile([]byte(js), nil)
	if len(res.objects) != 1 || res.objects[0].err != nil {
		t.Fatalf("json: %+v %v", res.objects, res.unidentified)
	}
	svc := res.objects[0].obj.(*v1.Service)
	if svc.Namespace != "default" || res.objects[0].key.String() != "Service default/a" {
		t.Fatalf("namespace not defaulted: %q %s", svc.Namespace, res.objects[0].key)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, doc  string
		object     string // "" when the document cannot be identified
		wantErrHas string
	}{
		{"unknown field", strings.Replace(svcWeb, "targetPort", "targetPrt", 1), "Service default/web", `unknown field "spec.ports[0].targetPrt"`},
		{"wrong type", strings.Replace(svcWeb, "port: 80", "port: eighty", 1), "Service default/web", "port"},
		{"unknown kind", strings.Replace(svcWeb, "kind: Service", "kind: Servce", 1), "Servce default/web", `kind: unknown kind "Servce" in v1`},
		{"old slice version", strings.Replace(sliceWeb, "discovery.k8s.io/v1", "discovery.k8s.io/v1beta1", 1), "EndpointSlice default/web-1", "want discovery.k8s.io/v1"},
		{"no kind", "apiVersion: v1\nmetadata: {name: x}\n", "", "apiVersion and kind are required"},
		{"bad yaml", "kind: Service\n  apiVersion: [v1\n", "", "document 1"},
		{"not an object", "- a\n- b\n", "", "not a Kubernetes object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := parseFile([]byte(c.doc), nil)
			if c.object == "" {
				if len(res.unidentified) != 1 || len(res.objects) != 0 {
					t.Fatalf("want one unidentified document, got %+v %v", res.objects, res.unidentified)
				}
				mustContain(t, res.unidentified[0].Error(), c.wantErrHas)
				return
			}
			if len(res.objects) != 1 || res.objects[0].err == nil {
				t.Fatalf("want one rejected object, got %+v %v", res.objects, res.unidentified)
			}
			if got := res.objects[0].object(); got != c.object {
				t.Fatalf("object %q, want %q", got, c.object)
			}
			mustContain(t, res.objects[0].err.Error(), c.wantErrHas)
		})
	}
}

func TestParseIgnoresOtherKinds(t *testing.T) {
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i}]}\n"
	res := parseFile([]byte(pod+"---\n"+svcWeb), nil)
	if len(res.objects) != 1 || len(res.ignored) != 1 || len(res.unidentified) != 0 {
		t.Fatalf("objects %d ignored %v unidentified %v", len(res.objects), res.ignored, res.unidentified)
	}
}
