package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDecode: any input is decoded, warned about or refused with an error; it
// never panics, and what it accepts validates or fails with field errors. The seed
// corpus is in testdata/fuzz/FuzzDecode; `go test -fuzz FuzzDecode` explores more.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(kubeadmConfig))
	f.Add([]byte(header + "mode: ipvs\nipvs:\n  excludeCIDRs: [10.0.0.0/8]\n"))
	f.Add([]byte(header + "a: &a [*a, *a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, notes, err := Decode(data)
		if err != nil {
			if c != nil {
				t.Fatal("an error with a config")
			}
			return
		}
		for _, w := range notes.Warnings {
			if len(w.Field) > 256 {
				t.Fatalf("unbounded field name in a warning: %d bytes", len(w.Field))
			}
		}
		if err := Validate(c); err != nil {
			if _, ok := AsErrorList(err); !ok {
				t.Fatalf("validation error without fields: %v", err)
			}
		}
		_ = Ignored(c)
	})
}

func TestLoadRefusesLargeFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(p, []byte(header+"# "+strings.Repeat("x", MaxFileBytes)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(p); err == nil || !strings.Contains(err.Error(), "larger than") || !strings.Contains(err.Error(), p) {
		t.Errorf("err = %v", err)
	}
}
