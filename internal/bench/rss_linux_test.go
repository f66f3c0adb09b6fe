package bench

import "testing"

func TestParseVmHWM(t *testing.T) {
	got, err := parseVmHWM([]byte("Name:\tkproxy\nVmPeak:\t  900000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t  100 kB\n"))
	if err != nil || got != 123456*1024 {
		t.Fatalf("parseVmHWM = %d, %v; want %d", got, err, 123456*1024)
	}
	if _, err := parseVmHWM([]byte("VmRSS:\t100 kB\n")); err == nil {
		t.Fatal("a status without VmHWM parsed")
	}
}

// TestPeakRSSOfThisProcess reads a plausible figure from the real file.
func TestPeakRSSOfThisProcess(t *testing.T) {
	got, err := peakRSS()
	if err != nil || got < 1<<20 {
		t.Fatalf("peakRSS = %d, %v; want at least 1 MiB", got, err)
	}
}
