// Package file is the manifest source: Services, EndpointSlices, Nodes and
// ServiceCIDRs read from a YAML/JSON file or a directory of them (any `kubectl get
// svc,endpointslices -A -o yaml` dump works), watched with fsnotify and applied
// within a second.
//
// Bad input never stops the proxy: an object that does not decode or validate is
// reported (file, object, field) through source.Rejects and its last good version
// keeps serving; a file that does not parse at all keeps all its last good objects;
// other files are unaffected.
package file

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"kproxy.dev/kproxy/internal/source"
	"kproxy.dev/kproxy/internal/state"
)

// Options configure a file Source.
type Options struct {
	// Path is a manifest file or a directory of them (*.yaml, *.yml, *.json; hidden
	// files are skipped, so editors' swap files and ConfigMap "..data" links are too).
	Path string
	// Rejects reports unusable objects; nil reports nothing.
	Rejects *source.Rejects
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Debounce is how long the files must be quiet before they are read again, so an
	// editor's write-rename-chmod sequence is read once. Default 100ms.
	Debounce time.Duration
	// MaxDelay bounds the wait under a stream of writes. Default 500ms.
	MaxDelay time.Duration
	// Resync rereads everything periodically, in case an event was missed (or the
	// directory was replaced). Default 30s; negative disables it.
	Resync time.Duration
}

// Source reads manifests from Options.Path.
type Source struct {
	opts  Options
	isDir bool
	log   *slog.Logger
}

var _ source.Source = (*Source)(nil)

// New checks that the path exists.
func New(o Options) (*Source, error) {
	if o.Path == "" {
		return nil, errors.New("--services-from: a file or directory is required")
	}
	fi, err := os.Stat(o.Path)
	if err != nil {
		return nil, fmt.Errorf("--services-from %s: %w", o.Path, err)
	}
	if o.Debounce <= 0 {
		o.Debounce = 100 * time.Millisecond
	}
	if o.MaxDelay < o.Debounce {
		o.MaxDelay = max(500*time.Millisecond, o.Debounce)
	}
	if o.Resync == 0 {
		o.Resync = 30 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Source{opts: o, isDir: fi.IsDir(), log: log.With("source", "file")}, nil
}

// Run delivers the manifests, calls synced, then applies changes until ctx ends.
func (s *Source) Run(ctx context.Context, h state.Handler, synced func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", s.opts.Path, err)
	}
	defer w.Close()
	// Watch the directory, not the file: editors replace a file by renaming a new
	// one over it, which ends a watch on the file itself.
	if err := w.Add(s.watchDir()); err != nil {
		return fmt.Errorf("watching %s: %w", s.watchDir(), err)
	}
	st := newStore(s.opts.Rejects, s.log)
	s.rescan(st)
	st.sync(h)
	synced()
	return s.watch(ctx, w, st, h)
}

func (s *Source) watchDir() string {
	if s.isDir {
		return s.opts.Path
	}
	return filepath.Dir(s.opts.Path)
}

func (s *Source) watch(ctx context.Context, w *fsnotify.Watcher, st *store, h state.Handler) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var resync <-chan time.Time
	if s.opts.Resync > 0 {
		t := time.NewTicker(s.opts.Resync)
		defer t.Stop()
		resync = t.C
	}
	var pendingSince time.Time
	schedule := func() {
		now := time.Now()
		if pendingSince.IsZero() {
			pendingSince = now
		}
		timer.Reset(min(s.opts.Debounce, pendingSince.Add(s.opts.MaxDelay).Sub(now)))
	}
	apply := func() {
		pendingSince = time.Time{}
		if s.rescan(st) {
			st.sync(h)
		}
	}
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("file watcher closed")
			}
			if ev.Op != fsnotify.Chmod {
				schedule()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("file watcher closed")
			}
			s.log.Warn("file watch error; rereading everything", "path", s.opts.Path, "error", err)
			schedule()
		case <-timer.C:
			apply()
		case <-resync:
			if err := w.Add(s.watchDir()); err != nil {
				s.log.Warn("cannot watch", "path", s.watchDir(), "error", err)
			}
			apply()
		}
	}
}

// rescan reads every manifest and loads those whose content changed; it reports
// whether the store changed.
func (s *Source) rescan(st *store) bool {
	paths, err := s.list()
	if err != nil {
		s.log.Warn("cannot list manifests; keeping the last good state", "path", s.opts.Path, "error", err)
		return false
	}
	changed := false
	present := map[string]bool{}
	for _, p := range paths {
		data, err := readManifest(p)
		if err != nil {
			if s.isDir && errors.Is(err, os.ErrNotExist) {
				continue // removed since the listing: treated as deleted
			}
			present[p] = true
			if errors.Is(err, errTooBig) {
				st.refuse(p, err)
				continue
			}
			s.log.Warn("cannot read manifest; keeping its last good objects", "file", p, "error", err)
			continue
		}
		present[p] = true
		changed = st.load(p, data) || changed
	}
	for _, p := range st.paths() {
		if !present[p] {
			changed = st.remove(p) || changed
		}
	}
	return changed
}

// list returns the manifest files to read, sorted.
func (s *Source) list() ([]string, error) {
	if !s.isDir {
		return []string{s.opts.Path}, nil
	}
	entries, err := os.ReadDir(s.opts.Path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !isManifestName(e.Name()) {
			continue
		}
		p := filepath.Join(s.opts.Path, e.Name())
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			continue
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

func isManifestName(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}
