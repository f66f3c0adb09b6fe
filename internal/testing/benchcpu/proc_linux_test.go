package benchcpu

import (
	"os"
	"os/exec"
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

// TestChildrenCountsEndedChildren runs a child that burns CPU and checks that
// Children grew by about its CPU time once it was waited for.
func TestChildrenCountsEndedChildren(t *testing.T) {
	before := Children()
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	used := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if used < 20*time.Millisecond {
		t.Fatalf("the child used only %v", used)
	}
	if d := Children() - before; d < used-10*time.Millisecond {
		t.Fatalf("Children grew by %v while a child used %v", d, used)
	}
}
