package sysctl

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDirGetSet(t *testing.T) {
	d := Dir(t.TempDir())
	p := filepath.Join(string(d), "net/ipv4/conf/all")
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "route_localnet"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SetInt(d, "net.ipv4.conf.all.route_localnet", 1); err != nil {
		t.Fatal(err)
	}
	if v, err := GetInt(d, "net/ipv4/conf/all/route_localnet"); err != nil || v != 1 {
		t.Fatalf("GetInt = %d, %v; want 1", v, err)
	}
	if err := d.Set("net.ipv4.missing", "1"); err == nil {
		t.Fatal("setting a missing sysctl succeeded")
	}
}

func TestIsReadOnly(t *testing.T) {
	d := Dir(t.TempDir())
	f := filepath.Join(string(d), "ro")
	if err := os.WriteFile(f, []byte("1"), 0o444); err != nil {
		t.Fatal(err)
	}
	err := d.Set("ro", "2")
	if os.Geteuid() == 0 {
		// root ignores file modes; check the classification directly.
		err = &os.PathError{Op: "open", Path: f, Err: os.ErrPermission}
	}
	if !IsReadOnly(err) {
		t.Fatalf("IsReadOnly(%v) = false", err)
	}
	if IsReadOnly(os.ErrNotExist) {
		t.Fatal("a missing file is not read-only")
	}
}
