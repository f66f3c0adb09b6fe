package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
)

// peakRSS is this process's peak resident set size (VmHWM of /proc/self/status),
// in bytes.
func peakRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	return parseVmHWM(b)
}

// parseVmHWM reads the "VmHWM:   1234 kB" line of a /proc/PID/status text.
func parseVmHWM(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmHWM: unexpected %q", rest)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmHWM: %w", err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no VmHWM line in /proc/self/status")
}

// memoryNow is the memory lines of /proc/self/status worth a progress line: the
// peak (VmHWM) and the current resident set, anonymous (heap, stacks) and mapped
// from files (the binary's pages the process touched), for example
// "VmHWM 175.6 MiB, VmRSS 160.2 MiB, RssAnon 120.1 MiB, RssFile 40.1 MiB".
func memoryNow() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err.Error()
	}
	var parts []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		f := strings.Fields(rest)
		if !ok || len(f) != 2 || f[1] != "kB" {
			continue
		}
		switch name {
		case "VmHWM", "VmRSS", "RssAnon", "RssFile":
			if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				parts = append(parts, fmt.Sprintf("%s %.1f MiB", name, float64(kb)/1024))
			}
		}
	}
	// What of RssAnon the Go runtime accounts for: the heap's spans in use
	// (live objects and garbage not yet collected), goroutine stacks, and all
	// it holds from the OS.
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	parts = append(parts, fmt.Sprintf("Go heap in use %.1f MiB, stacks %.1f MiB, runtime total %.1f MiB",
		float64(ms.HeapInuse)/(1<<20), float64(ms.StackInuse)/(1<<20), float64(ms.Sys-ms.HeapReleased)/(1<<20)))
	return strings.Join(parts, ", ")
}

// writeHeapProfile writes a pprof heap profile to path (inuse_space and
// alloc_space, after a GC so the live heap is current).
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	return errors.Join(pprof.Lookup("heap").WriteTo(f, 0), f.Close())
}
