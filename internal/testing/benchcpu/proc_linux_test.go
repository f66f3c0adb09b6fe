package benchcpu

import (
	"os"
	"testing"
	"time"
)

// TestOfCountsThisProcess burns CPU and checks that Of(own pid) saw it, and
// agrees with Now within the 10 ms steps of /proc.
func TestOfCountsThisProcess(t *testing.T) {
	before, err := Of(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for start := Now(); Now()-start < 200*time.Millisecond; {
	}
	after, err := Of(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := after - before; d < 150*time.Millisecond {
		t.Fatalf("Of grew by %v while this process used 200ms of CPU", d)
	}
	if d := Now() - after; d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Fatalf("Of says %v, Now %v", after, Now())
	}
	if _, err := Of(1 << 30); err == nil {
		t.Fatal("Of of a process that does not exist: no error")
	}
}
