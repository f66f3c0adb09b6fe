package file

import (
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/source"
	"kproxy.dev/kproxy/internal/source/sourcetest"
	"kproxy.dev/kproxy/internal/testing/syncbuf"
)

type storeFixture struct {
	t       *testing.T
	st      *store
	h       *sourcetest.Recorder
	rejects *source.Rejects
	log     *syncbuf.Buffer
}

func newStoreFixture(t *testing.T) *storeFixture {
	r, lb := newRejects(t)
	return &storeFixture{t: t, st: newStore(r, slog.New(slog.DiscardHandler)), h: sourcetest.NewRecorder(), rejects: r, log: lb}
}

// write loads files (path -> content; "" removes the file) and syncs, returning the
// Handler calls made.
func (f *storeFixture) write(files map[string]string) []string {
	for p, c := range files {
		if c == "" {
			f.st.remove(p)
		} else {
			f.st.load(p, []byte(c))
		}
	}
	f.st.sync(f.h)
	return f.h.TakeCalls()
}

func (f *storeFixture) wantCalls(got []string, want ...string) {
	f.t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		f.t.Fatalf("calls:\n got %q\nwant %q", got, want)
	}
}

func (f *storeFixture) wantRejects(n float64) {
	f.t.Helper()
	if got := totalRejects(f.rejects); got != n {
		f.t.Fatalf("rejected %v, want %v; log:\n%s", got, n, f.log)
	}
}

func TestStoreDeliversAndCollapses(t *testing.T) {
	f := newStoreFixture(t)
	calls := f.write(map[string]string{"a.yaml": svcWeb + "---\n" + sliceWeb})
	f.wantCalls(calls, "upsert Service default/web", "upsert EndpointSlice default/web-1")
	// The same content, or equal objects written differently, change nothing.
	f.wantCalls(f.write(map[string]string{"a.yaml": svcWeb + "---\n" + sliceWeb}))
	f.wantCalls(f.write(map[string]string{"a.yaml": "# reformatted\n" + svcWeb + "---\n" + sliceWeb}))
	// Only the changed object is delivered.
	f.wantCalls(f.write(map[string]string{"a.yaml": svcWeb + "---\n" + sliceWebAt("127.0.0.2")}), "upsert EndpointSlice default/web-1")
	if ip := f.h.Slice("default/web-1").Endpoints[0].Addresses[0]; ip != "127.0.0.2" {
		t.Fatalf("endpoint %s", ip)
	}
	// Removing an object from the file deletes it.
	f.wantCalls(f.write(map[string]string{"a.yaml": svcWeb}), "delete EndpointSlice default/web-1")
	f.wantRejects(0)
}

func TestStoreRemovedFileDeletesItsObjects(t *testing.T) {
	f := newStoreFixture(t)
	f.write(map[string]string{"svc.yaml": svcWeb, "eps.yaml": sliceWeb})
	calls := f.write(map[string]string{"svc.yaml": "", "eps.yaml": ""})
	f.wantCalls(calls, "delete EndpointSlice default/web-1", "delete Service default/web")
	if len(f.h.Keys()) != 0 {
		t.Fatalf("left: %v", f.h.Keys())
	}
}

func TestStoreBadObjectKeepsLastGoodVersion(t *testing.T) {
	f := newStoreFixture(t)
	other := strings.ReplaceAll(svcWeb, "web", "api")
	other = strings.Replace(other, "10.96.0.10", "10.96.0.11", 1)
	f.write(map[string]string{"services.yaml": svcWeb + "---\n" + other})

	// web becomes invalid while api changes: api's change applies, web keeps serving.
	badWeb := strings.Replace(svcWeb, "port: 80", "port: 70000", 1)
	newAPI := strings.Replace(other, "port: 80", "port: 81", 1)
	calls := f.write(map[string]string{"services.yaml": badWeb + "---\n" + newAPI})
	f.wantCalls(calls, "upsert Service default/api")
	f.wantRejects(1)
	mustContain(t, f.log.String(), "services.yaml: Service default/web: spec.ports[0].port: 70000 out of range")
	mustContain(t, f.log.String(), `object="Service default/web"`)
	mustContain(t, f.log.String(), "file=services.yaml")
	if f.rejects.Count("Service") != 1 {
		t.Fatalf("kind label: Service=%v", f.rejects.Count("Service"))
	}
	if p := f.h.Service("default/web").Spec.Ports[0].Port; p != 80 {
		t.Fatalf("web port %d, want the last good 80", p)
	}
	// Fixing it applies the fix.
	fixed := strings.Replace(svcWeb, "port: 80", "port: 8000", 1)
	f.wantCalls(f.write(map[string]string{"services.yaml": fixed + "---\n" + newAPI}), "upsert Service default/web")
}

func TestStoreNewBadObjectIsNotDelivered(t *testing.T) {
	f := newStoreFixture(t)
	bad := strings.Replace(svcWeb, "port: 80", "port: 70000", 1)
	f.wantCalls(f.write(map[string]string{"a.yaml": bad}))
	f.wantRejects(1)
}

func TestStoreUnparseableFileKeepsEverything(t *testing.T) {
	f := newStoreFixture(t)
	f.write(map[string]string{"a.yaml": svcWeb + "---\n" + sliceWeb, "b.yaml": strings.ReplaceAll(svcWeb, "web", "b")})
	calls := f.write(map[string]string{"a.yaml": "kind: Service\n  apiVersion: [v1\n"})
	f.wantCalls(calls)
	f.wantRejects(1)
	if f.rejects.Count(source.KindFile) != 1 {
		t.Fatalf("want kind=File, log:\n%s", f.log)
	}
	mustContain(t, f.log.String(), "a.yaml: does not parse, keeping its last good objects")
	// Another file still applies.
	calls = f.write(map[string]string{"b.yaml": ""})
	f.wantCalls(calls, "delete Service default/b")
	// The same broken content again is not a new rejection (resyncs do not inflate the counter).
	f.write(map[string]string{"a.yaml": "kind: Service\n  apiVersion: [v1\n"})
	f.wantRejects(1)
	if got := f.h.Keys(); !reflect.DeepEqual(got, []string{"EndpointSlice default/web-1", "Service default/web"}) {
		t.Fatalf("objects %v", got)
	}
}

func TestStoreUnidentifiedDocumentKeepsOldObjects(t *testing.T) {
	f := newStoreFixture(t)
	f.write(map[string]string{"a.yaml": svcWeb + "---\n" + sliceWeb})
	// The slice's document is now broken beyond recognition: keep the old slice.
	calls := f.write(map[string]string{"a.yaml": svcWeb + "---\n" + "{{{ not yaml\n"})
	f.wantCalls(calls)
	f.wantRejects(1)
	if f.h.Slice("default/web-1") == nil {
		t.Fatal("slice was deleted")
	}
}

func TestStoreSliceWithoutService(t *testing.T) {
	f := newStoreFixture(t)
	f.wantCalls(f.write(map[string]string{"eps.yaml": sliceWeb}))
	f.wantRejects(1)
	mustContain(t, f.log.String(), "eps.yaml: EndpointSlice default/web-1: metadata.labels[kubernetes.io/service-name]: no valid Service default/web in any file")
	// Reported once, not on every rescan.
	f.write(map[string]string{"other.yaml": strings.ReplaceAll(svcWeb, "web", "other")})
	f.wantRejects(1)
	// Defining the Service in another file brings the slice in.
	calls := f.write(map[string]string{"svc.yaml": svcWeb})
	f.wantCalls(calls, "upsert Service default/web", "upsert EndpointSlice default/web-1")
	// Removing the Service removes its slice too, and reports it again.
	calls = f.write(map[string]string{"svc.yaml": ""})
	f.wantCalls(calls, "delete EndpointSlice default/web-1", "delete Service default/web")
	f.wantRejects(2)
}

func TestStoreDuplicateAcrossFiles(t *testing.T) {
	f := newStoreFixture(t)
	other := strings.Replace(svcWeb, "10.96.0.10", "10.96.0.99", 1)
	f.write(map[string]string{"a.yaml": svcWeb, "b.yaml": other})
	f.wantRejects(1)
	mustContain(t, f.log.String(), "b.yaml: Service default/web: metadata.name: also defined in a.yaml, which wins")
	if ip := f.h.Service("default/web").Spec.ClusterIP; ip != "10.96.0.10" {
		t.Fatalf("clusterIP %s, want a.yaml's", ip)
	}
	// When a.yaml goes, b.yaml's definition takes over.
	f.wantCalls(f.write(map[string]string{"a.yaml": ""}), "upsert Service default/web")
	if ip := f.h.Service("default/web").Spec.ClusterIP; ip != "10.96.0.99" {
		t.Fatalf("clusterIP %s, want b.yaml's", ip)
	}
}

func TestStoreDuplicateInOneFile(t *testing.T) {
	f := newStoreFixture(t)
	f.write(map[string]string{"a.yaml": svcWeb + "---\n" + strings.Replace(svcWeb, "port: 80", "port: 81", 1)})
	f.wantRejects(1)
	if p := f.h.Service("default/web").Spec.Ports[0].Port; p != 80 {
		t.Fatalf("port %d, want the first definition", p)
	}
}

func TestStoreKubectlDump(t *testing.T) {
	f := newStoreFixture(t)
	data := mustRead(t, "testdata/kubectl-dump.yaml")
	f.write(map[string]string{"dump.yaml": data})
	f.wantRejects(0)
	if n := len(f.h.Keys()); n != 8 {
		t.Fatalf("objects %v", f.h.Keys())
	}
}

func TestStoreReusesUnchangedDocuments(t *testing.T) {
	f := newStoreFixture(t)
	api := strings.Replace(strings.ReplaceAll(svcWeb, "web", "api"), "10.96.0.10", "10.96.0.11", 1)
	bad := strings.Replace(strings.ReplaceAll(svcWeb, "web", "bad"), "port: 80", "port: 0", 1)
	f.write(map[string]string{"a.yaml": api + "---\n" + svcWeb + "---\n" + bad})
	f.wantRejects(1)
	apiKey := objKey{Kind: kindService, Namespace: "default", Name: "api"}
	before := f.st.files["a.yaml"].objects[apiKey]

	calls := f.write(map[string]string{"a.yaml": api + "---\n" + strings.Replace(svcWeb, "port: 80", "port: 81", 1) + "---\n" + bad})
	f.wantCalls(calls, "upsert Service default/web")
	if f.st.files["a.yaml"].objects[apiKey] != before {
		t.Fatal("an unchanged document was decoded again")
	}
	// A rejected document is never cached: saving the file reports it again.
	f.wantRejects(2)
}
