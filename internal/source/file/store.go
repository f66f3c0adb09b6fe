package file

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"sort"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"

	"kproxy.dev/kproxy/internal/source"
	"kproxy.dev/kproxy/internal/state"
)

// fileState is what one file last contributed.
type fileState struct {
	sum [sha256.Size]byte
	// objects are the last good version of every object the file defines.
	objects map[objKey]runtime.Object
	// docs are the decoded valid documents of the last version, for reuse.
	docs map[[sha256.Size]byte][]decoded
	// refused is set while the file is over MaxFileBytes (reported once).
	refused bool
}

// store turns file contents into Handler calls. It is used by one goroutine.
type store struct {
	rejects *source.Rejects
	log     *slog.Logger
	files   map[string]*fileState
	// delivered is what the Handler has been told, to diff against.
	delivered map[objKey]runtime.Object
	// crossIssues are problems that involve more than one file (duplicates, slices
	// of missing Services), remembered so that each is reported once, not per rescan.
	crossIssues map[string]bool
}

func newStore(rejects *source.Rejects, log *slog.Logger) *store {
	return &store{
		rejects:     rejects,
		log:         log,
		files:       map[string]*fileState{},
		delivered:   map[objKey]runtime.Object{},
		crossIssues: map[string]bool{},
	}
}

// load takes a file's new content; it reports whether anything changed.
func (s *store) load(path string, data []byte) bool {
	sum := sha256.Sum256(data)
	old := s.files[path]
	if old != nil && old.sum == sum {
		return false
	}
	if old == nil {
		old = &fileState{objects: map[objKey]runtime.Object{}}
	}
	s.forgetIssuesOf(path)
	res := parseFile(data, old.docs)
	for _, ig := range res.ignored {
		s.log.Debug("ignoring an object kproxy does not use", "file", path, "object", source.Clip(ig))
	}
	next := &fileState{sum: sum, objects: old.objects, docs: old.docs}
	if len(res.objects) == 0 && len(res.unidentified) > 0 {
		// Nothing in the file could be read: keep serving its last good objects.
		for _, e := range res.unidentified {
			s.rejects.RejectFile(path, e.object, fmt.Errorf("does not parse, keeping its last good objects: %v", e.err))
		}
		s.files[path] = next
		return true
	}
	next.objects = s.mergeFileObjects(path, old.objects, res)
	next.docs = res.docs
	s.files[path] = next
	return true
}

// refuse records that a file is over MaxFileBytes: it is reported once, and its last
// good objects keep serving until it fits again.
func (s *store) refuse(path string, err error) {
	old := s.files[path]
	if old == nil {
		old = &fileState{objects: map[objKey]runtime.Object{}}
		s.files[path] = old
	}
	if old.refused {
		return
	}
	old.refused = true
	old.sum = [sha256.Size]byte{} // read it again once it fits, whatever it holds
	s.rejects.RejectFile(path, "", fmt.Errorf("%v; keeping its last good objects", err))
}

// mergeFileObjects builds a file's new object set: its good objects, plus the last
// good version of each rejected one.
func (s *store) mergeFileObjects(path string, old map[objKey]runtime.Object, res parseResult) map[objKey]runtime.Object {
	objs := make(map[objKey]runtime.Object, len(res.objects))
	for _, e := range res.unidentified {
		s.rejects.RejectFile(path, e.object, e.err)
	}
	for _, d := range res.objects {
		if d.err == nil && d.key.Name != "" {
			if _, dup := objs[d.key]; dup {
				d.err = fmt.Errorf("metadata.name: defined twice in this file, keeping the first")
			} else {
				objs[d.key] = d.obj
				continue
			}
		}
		s.rejects.RejectFile(path, d.object(), d.err)
		if prev, ok := old[d.key]; ok && d.key.Name != "" {
			if _, taken := objs[d.key]; !taken {
				objs[d.key] = prev
			}
		}
	}
	if len(res.unidentified) > 0 {
		// A document we could not read may hold any of the old objects: keep them.
		for k, o := range old {
			if _, ok := objs[k]; !ok {
				objs[k] = o
			}
		}
	}
	return objs
}

// remove forgets a file that no longer exists; its objects are deleted.
func (s *store) remove(path string) bool {
	if _, ok := s.files[path]; !ok {
		return false
	}
	delete(s.files, path)
	s.forgetIssuesOf(path)
	return true
}

// paths lists the loaded files in a stable order, which decides which of two
// definitions of one object wins.
func (s *store) paths() []string {
	out := make([]string, 0, len(s.files))
	for p := range s.files {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// desired merges every file's objects and drops EndpointSlices of Services that no
// file defines.
func (s *store) desired() map[objKey]runtime.Object {
	want := map[objKey]runtime.Object{}
	owner := map[objKey]string{}
	issues := map[string]bool{}
	for _, path := range s.paths() {
		for k, o := range s.files[path].objects {
			if first, dup := owner[k]; dup {
				s.crossIssue(issues, path, k.String(), fmt.Errorf("metadata.name: also defined in %s, which wins", first))
				continue
			}
			owner[k] = path
			want[k] = o
		}
	}
	for k, o := range want {
		es, ok := o.(*discovery.EndpointSlice)
		if !ok {
			continue
		}
		svc := objKey{Kind: kindService, Namespace: es.Namespace, Name: state.SliceServiceName(es)}
		if _, ok := want[svc]; !ok {
			delete(want, k)
			s.crossIssue(issues, owner[k], k.String(), fmt.Errorf("metadata.labels[%s]: no valid %s in any file", discovery.LabelServiceName, svc))
		}
	}
	s.crossIssues = issues
	return want
}

func (s *store) crossIssue(now map[string]bool, path, object string, err error) {
	id := path + "\x00" + object + "\x00" + err.Error()
	now[id] = true
	if !s.crossIssues[id] {
		s.rejects.RejectFile(path, object, err)
	}
}

// forgetIssuesOf makes the cross-file problems of a reloaded file reportable again:
// saving a file that still has the problem is a new rejection.
func (s *store) forgetIssuesOf(path string) {
	for id := range s.crossIssues {
		if len(id) > len(path) && id[:len(path)+1] == path+"\x00" {
			delete(s.crossIssues, id)
		}
	}
}

// sync tells h what changed since the last sync. Nodes go first and deletes of
// slices before Services, so a Handler never sees a slice without its Service.
func (s *store) sync(h state.Handler) {
	want := s.desired()
	var deletes []objKey
	for k := range s.delivered {
		if _, ok := want[k]; !ok {
			deletes = append(deletes, k)
		}
	}
	sortKeys(deletes)
	for i := len(deletes) - 1; i >= 0; i-- {
		deleteObject(h, deletes[i])
	}
	var upserts []objKey
	for k, o := range want {
		if old, ok := s.delivered[k]; ok && (old == o || equality.Semantic.DeepEqual(old, o)) {
			want[k] = old
			continue
		}
		upserts = append(upserts, k)
	}
	// Only the changes are sorted: a large file with one edit costs map look-ups.
	sortKeys(upserts)
	for _, k := range upserts {
		upsertObject(h, want[k])
	}
	s.delivered = want
}

func upsertObject(h state.Handler, o runtime.Object) {
	switch o := o.(type) {
	case *v1.Service:
		h.UpsertService(o)
	case *discovery.EndpointSlice:
		h.UpsertEndpointSlice(o)
	case *v1.Node:
		h.UpsertNode(o)
	case *networkingv1.ServiceCIDR:
		if ch, ok := h.(state.ServiceCIDRHandler); ok {
			ch.UpsertServiceCIDR(o)
		}
	}
}

func deleteObject(h state.Handler, k objKey) {
	switch k.Kind {
	case kindService:
		h.DeleteService(k.Namespace, k.Name)
	case kindEndpointSlice:
		h.DeleteEndpointSlice(k.Namespace, k.Name)
	case kindNode:
		h.DeleteNode(k.Name)
	case kindServiceCIDR:
		if ch, ok := h.(state.ServiceCIDRHandler); ok {
			ch.DeleteServiceCIDR(k.Name)
		}
	}
}

// kindOrder puts Nodes first, then Services, then EndpointSlices for upserts; the
// reverse order is used for deletes.
var kindOrder = map[string]int{kindNode: 0, kindServiceCIDR: 0, kindService: 1, kindEndpointSlice: 2}

func sortKeys(keys []objKey) {
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.Kind != b.Kind {
			return kindOrder[a.Kind] < kindOrder[b.Kind]
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
}
