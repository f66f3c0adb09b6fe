package file

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/source"
	"kproxy.dev/kproxy/internal/source/sourcetest"
	"kproxy.dev/kproxy/internal/testing/syncbuf"
)

// applyWithin is the promise the source makes for a change on disk.
const applyWithin = time.Second

type runFixture struct {
	t       *testing.T
	h       *sourcetest.Recorder
	rejects *source.Rejects
	log     *syncbuf.Buffer
	synced  chan struct{}
	done    chan error
}

// startSource runs a file Source on path until the test ends.
func startSource(t *testing.T, path string) *runFixture {
	t.Helper()
	r, lb := newRejects(t)
	src, err := New(Options{Path: path, Rejects: r, Resync: -1, Logger: slog.New(slog.NewTextHandler(lb, nil))})
	if err != nil {
		t.Fatal(err)
	}
	f := &runFixture{t: t, h: sourcetest.NewRecorder(), rejects: r, log: lb, synced: make(chan struct{}), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	syncedCalls := 0
	go func() {
		f.done <- src.Run(ctx, f.h, func() {
			syncedCalls++
			close(f.synced)
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-f.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
		if syncedCalls != 1 {
			t.Errorf("synced called %d times", syncedCalls)
		}
	})
	select {
	case <-f.synced:
	case <-time.After(5 * time.Second):
		t.Fatal("synced not called")
	}
	return f
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// saveLikeAnEditor writes a temporary file and renames it over path.
func saveLikeAnEditor(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".swp")
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func (f *runFixture) endpointIs(ip string) func() bool {
	return func() bool {
		es := f.h.Slice("default/web-1")
		return es != nil && es.Endpoints[0].Addresses[0] == ip
	}
}

func TestRunDeliversInitialStateBeforeSynced(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "svc.yaml"), svcWeb)
	writeFile(t, filepath.Join(dir, "eps.json"), `{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"web-1","labels":{"kubernetes.io/service-name":"web"}},"addressType":"IPv4","endpoints":[{"addresses":["127.0.0.1"]}],"ports":[{"port":8080}]}`)
	writeFile(t, filepath.Join(dir, "README.md"), "not a manifest")
	writeFile(t, filepath.Join(dir, ".hidden.yaml"), "garbage: [")
	f := startSource(t, dir)
	want := []string{"EndpointSlice default/web-1", "Service default/web"}
	if got := f.h.Keys(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after synced: %v, want %v", got, want)
	}
	if n := totalRejects(f.rejects); n != 0 {
		t.Fatalf("rejects %v:\n%s", n, f.log)
	}
}

func TestWatchDirectory(t *testing.T) {
	dir := t.TempDir()
	svc := filepath.Join(dir, "services.yaml")
	eps := filepath.Join(dir, "endpoints.yaml")
	writeFile(t, svc, svcWeb)
	f := startSource(t, dir)

	// A new file is picked up.
	writeFile(t, eps, sliceWeb)
	f.h.WaitFor(t, applyWithin, "new file applied", f.endpointIs("127.0.0.1"))

	// An in-place change is applied.
	writeFile(t, eps, sliceWebAt("127.0.0.2"))
	f.h.WaitFor(t, applyWithin, "change applied", f.endpointIs("127.0.0.2"))

	// Corrupt it: the old state keeps serving and the counter goes up.
	writeFile(t, eps, "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-1\n")
	f.h.WaitFor(t, applyWithin, "rejection counted", func() bool { return totalRejects(f.rejects) == 1 })
	if !f.endpointIs("127.0.0.2")() {
		t.Fatal("corrupt file changed the served state")
	}
	mustContain(t, f.log.String(), filepath.Base(eps)+": does not parse")

	// A bad value in a valid document: also rejected with file, object and field.
	writeFile(t, eps, sliceWebAt("127.0.0.999"))
	f.h.WaitFor(t, applyWithin, "second rejection", func() bool { return totalRejects(f.rejects) == 2 })
	mustContain(t, f.log.String(), "endpoints.yaml: EndpointSlice default/web-1: endpoints[0].addresses[0]: invalid IP address")
	if !f.endpointIs("127.0.0.2")() {
		t.Fatal("bad object replaced the last good one")
	}

	// Fix it, with an editor's rename-on-save: applied.
	saveLikeAnEditor(t, eps, sliceWebAt("127.0.0.3"))
	f.h.WaitFor(t, applyWithin, "fix applied", f.endpointIs("127.0.0.3"))

	// Deleting the file deletes its objects.
	if err := os.Remove(eps); err != nil {
		t.Fatal(err)
	}
	f.h.WaitFor(t, applyWithin, "slice deleted", func() bool { return f.h.Slice("default/web-1") == nil })
	if f.h.Service("default/web") == nil {
		t.Fatal("service of another file deleted")
	}
}

func TestWatchSingleFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "all.yaml")
	writeFile(t, path, svcWeb+"---\n"+sliceWeb)
	writeFile(t, filepath.Join(dir, "unrelated.yaml"), strings.ReplaceAll(svcWeb, "web", "unrelated"))
	f := startSource(t, path)
	if got := f.h.Keys(); len(got) != 2 {
		t.Fatalf("single-file mode read other files: %v", got)
	}
	saveLikeAnEditor(t, path, svcWeb+"---\n"+sliceWebAt("127.0.0.5"))
	f.h.WaitFor(t, applyWithin, "rename-on-save applied", f.endpointIs("127.0.0.5"))
	// A vanished single file keeps the last good state; its return is applied.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // longer than the debounce: the removal was seen
	if len(f.h.Keys()) != 2 {
		t.Fatalf("removal of the only file dropped state: %v", f.h.Keys())
	}
	writeFile(t, path, svcWeb+"---\n"+sliceWebAt("127.0.0.6"))
	f.h.WaitFor(t, applyWithin, "recreated file applied", f.endpointIs("127.0.0.6"))
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "--services-from") {
		t.Fatalf("empty path: %v", err)
	}
	_, err := New(Options{Path: filepath.Join(t.TempDir(), "missing.yaml")})
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("missing path: %v", err)
	}
}

// A ConfigMap volume updates by writing a new timestamped directory and swapping
// the "..data" symlink the visible files point through.
func TestWatchConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name, content string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name, "services.yaml"), content)
	}
	version("..2026_01", svcWeb+"---\n"+sliceWeb)
	mustSymlink(t, "..2026_01", filepath.Join(dir, "..data"))
	mustSymlink(t, "..data/services.yaml", filepath.Join(dir, "services.yaml"))
	f := startSource(t, dir)
	if !f.endpointIs("127.0.0.1")() {
		t.Fatalf("initial state %v", f.h.Keys())
	}
	version("..2026_02", svcWeb+"---\n"+sliceWebAt("127.0.0.7"))
	mustSymlink(t, "..2026_02", filepath.Join(dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	f.h.WaitFor(t, applyWithin, "swapped ConfigMap applied", f.endpointIs("127.0.0.7"))
	if n := totalRejects(f.rejects); n != 0 {
		t.Fatalf("rejects %v:\n%s", n, f.log)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
