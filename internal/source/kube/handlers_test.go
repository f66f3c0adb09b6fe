package kube

import (
	"log/slog"
	"reflect"
	"testing"

	"k8s.io/client-go/tools/cache"

	"kproxy.dev/kproxy/internal/source/sourcetest"
)

func TestDeleteTombstones(t *testing.T) {
	h := sourcetest.NewRecorder()
	log := slog.New(slog.DiscardHandler)
	svcs := serviceHandler(h, log)
	slices := sliceHandler(h, log)
	nodes := nodeHandler(h, "node-a", log)

	svcs.onDelete(service("default", "plain", nil))
	svcs.onDelete(cache.DeletedFinalStateUnknown{Key: "default/with-obj", Obj: service("default", "with-obj", nil)})
	svcs.onDelete(cache.DeletedFinalStateUnknown{Key: "default/key-only"})
	slices.onDelete(cache.DeletedFinalStateUnknown{Key: "ns/web-1", Obj: slice("ns", "web-1", "web", nil)})
	slices.onDelete(cache.DeletedFinalStateUnknown{Key: "ns/web-2"})
	nodes.onDelete(cache.DeletedFinalStateUnknown{Key: "node-a"})
	nodes.onDelete(cache.DeletedFinalStateUnknown{Key: "node-b"}) // not ours
	svcs.onDelete("garbage")                                      // logged, ignored

	want := []string{
		"delete Service default/plain",
		"delete Service default/with-obj",
		"delete Service default/key-only",
		"delete EndpointSlice ns/web-1",
		"delete EndpointSlice ns/web-2",
		"delete Node node-a",
	}
	if got := h.TakeCalls(); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls\n got %q\nwant %q", got, want)
	}
}
