package procstat

import (
	"testing"
	"time"
)

// TestParseCPUCountsFromTheLastParenthesis: utime and stime are fields 14 and
// 15, counted after a command name that holds spaces and parentheses.
func TestParseCPUCountsFromTheLastParenthesis(t *testing.T) {
	stat := "4242 (qemu (x) 1 2) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 3 0 100 0 0\n"
	d, err := ParseCPU(stat)
	if err != nil || d != 18010*time.Millisecond {
		t.Fatalf("ParseCPU = %v, %v; want 18.01s (1234+567 ticks of 10 ms)", d, err)
	}
	for _, bad := range []string{"", "4242 qemu S 1", "4242 (qemu) S 1 2 3", "4242 (q) S 1 2 3 4 5 6 7 8 9 10 x 5 0"} {
		if _, err := ParseCPU(bad); err == nil {
			t.Errorf("ParseCPU(%q) accepted a malformed line", bad)
		}
	}
}
