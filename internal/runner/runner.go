// Package runner runs a sync function with bounded frequency, like kube-proxy's
// BoundedFrequencyRunner: at most one run per MinInterval however often Run is
// called, a run at least every MaxInterval, and retries with exponential backoff
// after a failed run.
package runner

import (
	"context"
	"time"
)

// Options configure a Runner.
type Options struct {
	// Fn is the work to run. It is never called concurrently with itself.
	Fn func(ctx context.Context) error
	// MinInterval is the least time between the end of one run and the start of the
	// next; 0 runs every request as soon as the previous run ends.
	MinInterval time.Duration
	// MaxInterval is the longest time between two runs (the periodic resync); 0 disables it.
	MaxInterval time.Duration
	// RetryMin and RetryMax bound the backoff after a failed run; it starts at
	// RetryMin (default 1s) and doubles up to RetryMax (default MaxInterval, else 1m).
	RetryMin time.Duration
	RetryMax time.Duration
	// OnResult, if set, is told the outcome of each run (for logs).
	OnResult func(err error, retryIn time.Duration)
}

// Runner is a bounded-frequency runner. Create it with New and start Loop.
type Runner struct {
	o   Options
	req chan struct{}
}

// New returns a Runner; nothing runs until Loop is started.
func New(o Options) *Runner {
	if o.RetryMin <= 0 {
		o.RetryMin = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = o.MaxInterval
		if o.RetryMax <= 0 {
			o.RetryMax = time.Minute
		}
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = o.RetryMin
	}
	return &Runner{o: o, req: make(chan struct{}, 1)}
}

// Run asks for a run. It never blocks; requests made before the run starts are
// coalesced into one.
func (r *Runner) Run() {
	select {
	case r.req <- struct{}{}:
	default:
	}
}

// loopState is what Loop remembers between runs.
type loopState struct {
	lastEnd  time.Time // zero before the first run
	pending  bool      // a Run request waits for MinInterval
	retryAt  time.Time // zero unless the last run failed
	backoff  time.Duration
	periodic time.Time
}

// Loop runs until ctx is cancelled. The first requested run starts at once.
func (r *Runner) Loop(ctx context.Context) {
	st := &loopState{}
	st.periodic = r.nextPeriodic(time.Now())
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		due, ok := r.nextDue(st)
		if ok && !due.After(time.Now()) {
			r.runOnce(ctx, st)
			continue
		}
		wait := time.Hour
		if ok {
			wait = time.Until(due)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-r.req:
			st.pending = true
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// nextDue returns when the next run should start; false when nothing is scheduled.
func (r *Runner) nextDue(st *loopState) (time.Time, bool) {
	var due time.Time
	found := false
	set := func(t time.Time) {
		if !found || t.Before(due) {
			due, found = t, true
		}
	}
	if st.pending {
		set(st.lastEnd.Add(r.o.MinInterval))
	}
	if !st.retryAt.IsZero() {
		set(st.retryAt)
	}
	if !st.periodic.IsZero() {
		set(st.periodic)
	}
	return due, found
}

func (r *Runner) nextPeriodic(from time.Time) time.Time {
	if r.o.MaxInterval <= 0 {
		return time.Time{}
	}
	return from.Add(r.o.MaxInterval)
}

func (r *Runner) runOnce(ctx context.Context, st *loopState) {
	// A request that arrives while Fn runs is seen on the next loop turn and waits
	// MinInterval from this run's end; one that arrived before is satisfied now.
	select {
	case <-r.req:
	default:
	}
	st.pending = false
	err := r.o.Fn(ctx)
	st.lastEnd = time.Now()
	st.periodic = r.nextPeriodic(st.lastEnd)
	if err == nil {
		st.retryAt, st.backoff = time.Time{}, 0
	} else {
		st.backoff = nextBackoff(st.backoff, r.o.RetryMin, r.o.RetryMax)
		// Retries respect MinInterval too: they are syncs like any other.
		st.retryAt = st.lastEnd.Add(max(st.backoff, r.o.MinInterval))
	}
	if r.o.OnResult != nil {
		var in time.Duration
		if err != nil {
			in = st.retryAt.Sub(st.lastEnd)
		}
		r.o.OnResult(err, in)
	}
}

func nextBackoff(cur, lo, hi time.Duration) time.Duration {
	if cur <= 0 {
		return lo
	}
	return min(cur*2, hi)
}
