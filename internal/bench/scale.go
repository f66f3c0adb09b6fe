package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// The scale series (`kproxy bench scale`) measures each point, one mode at one
// size, in its own child process, and keeps each finished point's row in its
// own file, so a series that takes hours can be stopped and resumed.

// Series names which of the two scale series a point belongs to.
type Series string

const (
	// SeriesServices varies the number of Services at a few endpoints each.
	SeriesServices Series = "services"
	// SeriesEndpoints varies the endpoints of one single Service.
	SeriesEndpoints Series = "endpoints"
)

// ScalePoint is one measurement of the scale series.
type ScalePoint struct {
	Series    Series
	Mode      string
	Services  int
	Endpoints int
}

func (p ScalePoint) String() string {
	if p.Series == SeriesEndpoints {
		return fmt.Sprintf("%s, one Service x %s endpoints", p.Mode, FormatCount(p.Endpoints))
	}
	return fmt.Sprintf("%s, %s Services x %d endpoints", p.Mode, FormatCount(p.Services), p.Endpoints)
}

// File is the name of the point's row in the output directory.
func (p ScalePoint) File() string {
	return fmt.Sprintf("%s-%s-%dx%d.json", p.Series, p.Mode, p.Services, p.Endpoints)
}

// ScalePoints lists the points of both series in the order they run: the
// services series mode by mode, small sizes first (a broken mode shows early),
// then the endpoints series likewise.
func ScalePoints(modes []string, services, endpoints, oneServiceEndpoints []int) []ScalePoint {
	var out []ScalePoint
	for _, e := range endpoints {
		for _, m := range modes {
			for _, n := range sortedInts(services) {
				out = append(out, ScalePoint{Series: SeriesServices, Mode: m, Services: n, Endpoints: e})
			}
		}
	}
	for _, m := range modes {
		for _, e := range sortedInts(oneServiceEndpoints) {
			out = append(out, ScalePoint{Series: SeriesEndpoints, Mode: m, Services: 1, Endpoints: e})
		}
	}
	return out
}

func sortedInts(s []int) []int {
	out := append([]int(nil), s...)
	sort.Ints(out)
	return out
}

// ScaleStore keeps one JSON file per finished point in Dir.
type ScaleStore struct{ Dir string }

// Load returns the saved row of p, or nil when p has not finished.
func (s ScaleStore) Load(p ScalePoint) (*Result, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, p.File()))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", p.File(), err)
	}
	return &r, nil
}

// Save writes p's row atomically (temporary file, then rename), so an
// interrupted run never leaves a half-written row that a re-run would skip on.
func (s ScaleStore) Save(p ScalePoint, r *Result) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.Dir, ".tmp-"+p.File())
	if err != nil {
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(s.Dir, p.File()))
}

// ScaleRow is one point and its row, as the series' summary JSON lists them.
type ScaleRow struct {
	Series Series `json:"series"`
	Result
}

// ScaleRun is what RunScale did: every finished row (measured now or before)
// and the points that failed.
type ScaleRun struct {
	Rows   []ScaleRow
	Failed []ScaleFailure
}

// ScaleFailure is a point that did not finish, and why.
type ScaleFailure struct {
	Point ScalePoint
	Err   error
}

// ScaleOptions drive RunScale.
type ScaleOptions struct {
	Store ScaleStore
	// Force measures points again that already have a row.
	Force bool
	// Measure runs one point (in a child process of its own, so peak RSS is the
	// point's); tests pass a fake.
	Measure func(context.Context, ScalePoint) (*Result, error)
	// Progress gets one line when a point starts and one when it ends.
	Progress io.Writer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// RunScale measures every point that has no row yet (all of them with Force),
// saving each row as soon as it is measured. A failed point is reported and
// the series goes on; a mode that failed at a size is not measured at larger
// sizes of the same series and endpoint count (they would fail the same way,
// slower). It stops early only when ctx is done.
func RunScale(ctx context.Context, points []ScalePoint, o ScaleOptions) (*ScaleRun, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	run := &ScaleRun{}
	broken := map[ScalePoint]bool{}
	begin := now()
	for i, p := range points {
		tag := fmt.Sprintf("[%d/%d]", i+1, len(points))
		if !o.Force {
			r, err := o.Store.Load(p)
			if err != nil {
				return run, err
			}
			if r != nil {
				fmt.Fprintf(progress, "%s %s: done before, skipped (%s; --force measures again)\n", tag, p, p.File())
				run.Rows = append(run.Rows, ScaleRow{Series: p.Series, Result: *r})
				continue
			}
		}
		family := ScalePoint{Series: p.Series, Mode: p.Mode, Endpoints: p.Endpoints}
		if p.Series == SeriesEndpoints {
			family.Endpoints = 0
		}
		if broken[family] {
			fmt.Fprintf(progress, "%s %s: not measured, a smaller size of it failed\n", tag, p)
			run.Failed = append(run.Failed, ScaleFailure{Point: p, Err: errors.New("not measured: a smaller size failed")})
			continue
		}
		if err := ctx.Err(); err != nil {
			return run, err
		}
		fmt.Fprintf(progress, "%s %s: start (series running %s)\n", tag, p, now().Sub(begin).Round(time.Second))
		start := now()
		r, err := o.Measure(ctx, p)
		took := now().Sub(start).Round(time.Millisecond)
		if err != nil {
			if ctx.Err() != nil {
				return run, ctx.Err()
			}
			fmt.Fprintf(progress, "%s %s: FAILED after %s: %v\n", tag, p, took, err)
			run.Failed = append(run.Failed, ScaleFailure{Point: p, Err: err})
			broken[family] = true
			continue
		}
		if err := o.Store.Save(p, r); err != nil {
			return run, err
		}
		fmt.Fprintf(progress, "%s %s: done in %s, saved %s\n", tag, p, took, p.File())
		run.Rows = append(run.Rows, ScaleRow{Series: p.Series, Result: *r})
	}
	return run, nil
}
