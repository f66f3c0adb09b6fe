package runner

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// recorder is an Fn that records when each run started and ended. Assertions are
// about ordering and minimum gaps, which the runner guarantees however slow the
// machine is; lower bounds on counts only ever wait with a generous deadline.
type recorder struct {
	mu     sync.Mutex
	starts []time.Time
	ends   []time.Time
	fail   int // fail this many runs first
}

func (r *recorder) fn(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.starts = append(r.starts, time.Now())
	failing := len(r.starts) <= r.fail
	r.ends = append(r.ends, time.Now())
	if failing {
		return errors.New("boom")
	}
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.starts)
}

func (r *recorder) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d runs after 10s, want %d", r.count(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *recorder) gaps() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Duration
	for i := 1; i < len(r.starts); i++ {
		out = append(out, r.starts[i].Sub(r.ends[i-1]))
	}
	return out
}

func start(t *testing.T, o Options) *Runner {
	t.Helper()
	r := New(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Loop(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return r
}

func TestRunIsCoalescedAndBoundedByMinInterval(t *testing.T) {
	rec := &recorder{}
	const minInterval = 100 * time.Millisecond
	r := start(t, Options{Fn: rec.fn, MinInterval: minInterval})
	var lastRequest time.Time
	for i := 0; i < 150; i++ {
		lastRequest = time.Now()
		r.Run()
		time.Sleep(2 * time.Millisecond)
	}
	// The last request must be served by a run whose Fn starts after the request
	// was made (a run already under way when it arrived does not count).
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec.mu.Lock()
		served := len(rec.starts) > 0 && !rec.starts[len(rec.starts)-1].Before(lastRequest)
		rec.mu.Unlock()
		if served {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the last Run request was never served")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i, g := range rec.gaps() {
		if g < minInterval {
			t.Errorf("run %d started %v after the previous one ended, want >= %v", i+1, g, minInterval)
		}
	}
	if n := rec.count(); n >= 150 {
		t.Errorf("%d runs for 150 requests: not coalesced", n)
	}
}

func TestFirstRunStartsImmediately(t *testing.T) {
	rec := &recorder{}
	r := start(t, Options{Fn: rec.fn, MinInterval: time.Hour})
	r.Run()
	rec.waitFor(t, 1)
}

func TestPeriodicResync(t *testing.T) {
	rec := &recorder{}
	const maxInterval = 30 * time.Millisecond
	start(t, Options{Fn: rec.fn, MaxInterval: maxInterval})
	rec.waitFor(t, 3)
	for i, g := range rec.gaps() {
		if g < maxInterval {
			t.Errorf("periodic run %d came %v after the previous one, want >= %v", i+1, g, maxInterval)
		}
	}
}

func TestRetryWithBackoffAfterFailure(t *testing.T) {
	rec := &recorder{fail: 3}
	var mu sync.Mutex
	var retries []time.Duration
	r := start(t, Options{
		Fn: rec.fn, RetryMin: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond,
		OnResult: func(err error, in time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			retries = append(retries, in)
		},
	})
	r.Run()
	rec.waitFor(t, 4) // three failures, then the success
	want := []time.Duration{20 * time.Millisecond, 40 * time.Millisecond, 50 * time.Millisecond}
	gaps := rec.gaps()
	for i, w := range want {
		if gaps[i] < w {
			t.Errorf("retry %d came after %v, want >= %v", i+1, gaps[i], w)
		}
	}
	mu.Lock()
	got := append([]time.Duration(nil), retries...)
	mu.Unlock()
	if len(got) < 4 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != 0 {
		t.Errorf("OnResult retry intervals = %v, want %v then 0", got, want)
	}
	// After the success nothing is scheduled: no periodic interval, no request.
	time.Sleep(150 * time.Millisecond)
	if n := rec.count(); n != 4 {
		t.Errorf("%d runs, want 4: the runner kept retrying after a success", n)
	}
}

func TestRequestDuringRunCausesOneMoreRun(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	var n int
	var mu sync.Mutex
	fn := func(ctx context.Context) error {
		mu.Lock()
		n++
		mu.Unlock()
		entered <- struct{}{}
		<-release
		return nil
	}
	r := start(t, Options{Fn: fn})
	r.Run()
	<-entered
	for i := 0; i < 5; i++ {
		r.Run() // all while the first run is busy
	}
	release <- struct{}{}
	<-entered
	release <- struct{}{}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if n != 2 {
		t.Errorf("%d runs, want 2: requests during a run must coalesce into one", n)
	}
	close(release)
}

func TestLoopStopsOnCancel(t *testing.T) {
	r := New(Options{Fn: func(context.Context) error { return nil }, MaxInterval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Loop(ctx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Loop did not return after cancel")
	}
}

func TestBackoff(t *testing.T) {
	b := time.Duration(0)
	var got []time.Duration
	for i := 0; i < 5; i++ {
		b = nextBackoff(b, time.Second, 5*time.Second)
		got = append(got, b)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff = %v, want %v", got, want)
		}
	}
}
