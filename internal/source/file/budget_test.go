package file

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/source"
	"kproxy.dev/kproxy/internal/source/sourcetest"
)

// rejectAllocBudget is the documented bound (docs/sources.md): rejecting a file for a
// budget allocates the bytes read (none for a file over MaxFileBytes) plus at most
// this much.
const rejectAllocBudget = 1 << 20

// Each bad input replaces a good file: it is rejected once, naming the file and the
// budget; the good objects keep serving; and rejecting it allocates no more than
// the file's bytes plus rejectAllocBudget.
func TestOverBudgetFilesAreRejectedWithinMemoryBound(t *testing.T) {
	const huge = 64 << 20
	for _, c := range []struct {
		name, bad, reason string
		kind              string
		size              int // of the file on disk, when more than len(bad)
		read              bool
	}{
		{name: "deep map", bad: deepBlockMap(4000), reason: "nesting deeper than 64 levels", kind: source.KindFile, read: true},
		{name: "deep flow", bad: deepFlow(9000), reason: "nesting deeper than 64 levels", kind: source.KindFile, read: true},
		{name: "alias bomb", bad: aliasBomb(12, true), reason: "aliases expand to more than 10000 nodes", kind: source.KindFile, read: true},
		{name: "64 MiB file", bad: svcWeb, size: huge, reason: "67108864 bytes, more than the 16 MiB budget (not read); keeping its last good objects", kind: source.KindFile},
		{name: "32 MiB name", bad: strings.Replace(svcWeb, "name: web", "name: "+strings.Repeat("w", 32<<20), 1), reason: "more than the 16 MiB budget", kind: source.KindFile},
		{name: "100,000 endpoints", bad: bigSlice("web-1", 100_000), reason: "EndpointSlice default/web-1: does not parse, keeping its last good objects: document 1: endpoints: 100000 entries, more than the 1000", kind: "EndpointSlice", read: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.yaml")
			writeFile(t, path, svcWeb+"---\n"+sliceWeb)
			r, lb := newRejects(t)
			src, err := New(Options{Path: path, Rejects: r, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			st, h := newStore(r, src.log), sourcetest.NewRecorder()
			src.rescan(st)
			st.sync(h)
			good := h.Keys()

			writeFile(t, path, c.bad)
			if c.size > 0 {
				if err := os.Truncate(path, int64(c.size)); err != nil {
					t.Fatal(err)
				}
			}
			limit := uint64(rejectAllocBudget)
			if c.read {
				limit += uint64(len(c.bad))
			}
			alloc := allocated(func() {
				src.rescan(st)
				st.sync(h)
			})
			if alloc > limit {
				t.Errorf("rejecting allocated %d KiB, want at most %d KiB", alloc>>10, limit>>10)
			}
			if got := h.Keys(); strings.Join(got, ",") != strings.Join(good, ",") {
				t.Errorf("serving %v, want the last good %v", got, good)
			}
			if n := h.Slice("default/web-1"); n == nil || len(n.Endpoints) != 1 {
				t.Errorf("the last good slice is not serving: %+v", n)
			}
			// Rescanning the same bad file reports nothing new.
			src.rescan(st)
			st.sync(h)
			lines := strings.Split(strings.TrimSpace(lb.String()), "\n")
			if len(lines) != 1 || r.Count(c.kind) != 1 || totalRejects(r) != 1 {
				t.Fatalf("want one rejection of kind %s, counted %v; log:\n%.2000s", c.kind, r.Count(c.kind), lb.String())
			}
			mustContain(t, lines[0], path)
			mustContain(t, lines[0], c.reason)
			if len(lines[0]) > 2*source.MaxLoggedErrorBytes {
				t.Errorf("log line of %d bytes", len(lines[0]))
			}
		})
	}
}

// A name far over any limit, in a file within the size budget, is rejected with a
// short log line that still names the file, the field and the length.
func TestHugeNameMakesAShortLogLine(t *testing.T) {
	f := newStoreFixture(t)
	name := strings.Repeat("w", 1<<20)
	f.write(map[string]string{"a.yaml": strings.Replace(svcWeb, "name: web", "name: "+name, 1)})
	f.wantRejects(1)
	line := f.log.String()
	if len(line) > 2*source.MaxLoggedErrorBytes {
		t.Fatalf("log line of %d bytes:\n%.3000s", len(line), line)
	}
	mustContain(t, line, "a.yaml: Service default/www")
	mustContain(t, line, "…(1048592 bytes)") // "Service default/" + the name
	mustContain(t, line, "metadata.name")
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
