package vm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// xtablesDir holds the iptables extensions that xtables-nft-multi dlopens.
const xtablesDir = "/usr/lib/x86_64-linux-gnu/xtables"

// carryPrograms copies host programs with the shared libraries ldd lists, plus the
// iptables extensions and the few /etc files these programs read.
func carryPrograms(c *cpioWriter, progs []string) error {
	libs := map[string]bool{}
	for _, p := range progs {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("carry %s: %w (install it: scripts/install-test-deps.sh)", p, err)
		}
		if err := c.copyHost(p); err != nil {
			return fmt.Errorf("carry %s: %w", p, err)
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return err
		}
		deps, err := sharedLibs(real)
		if err != nil {
			return fmt.Errorf("ldd %s: %w", real, err)
		}
		for _, l := range deps {
			libs[l] = true
		}
		if strings.Contains(real, "xtables") {
			if err := carryDir(c, xtablesDir); err != nil {
				return err
			}
		}
	}
	for l := range libs {
		if err := c.copyHost(l); err != nil {
			return fmt.Errorf("carry library %s: %w", l, err)
		}
	}
	for _, f := range []string{"/etc/protocols", "/etc/services", "/etc/ethertypes", "/etc/iproute2/rt_tables"} {
		if _, err := os.Stat(f); err == nil {
			if err := c.copyHost(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// sharedLibs lists the absolute library paths (and the loader) ldd prints.
func sharedLibs(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		// "not a dynamic executable" is fine: a static program needs nothing.
		return nil, nil
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				libs = append(libs, f)
			}
		}
	}
	return libs, nil
}

func carryDir(c *cpioWriter, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // no extensions: iptables will say what is missing
	}
	for _, e := range entries {
		if err := c.copyHost(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
